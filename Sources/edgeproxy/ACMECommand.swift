import ArgumentParser
import Foundation

/// `edgeproxy acme status|renew|revoke`: asks the running node, through its admin API. The node
/// does the work, so its schedule, store and the fleet's lock see the change at once.
struct ACMECommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "acme",
        abstract: "The certificates a running node obtains from its ACME CAs.",
        subcommands: [Status.self, Renew.self, Revoke.self])

    struct Status: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Each managed certificate: expiry, planned renewal, next attempt, failures and the last error.")

        @OptionGroup var options: AdminOptions

        func run() throws {
            guard let acme = try options.answer("GET", "/acme") else { return }
            let certificates = acme["certificates"] as? [[String: Any]] ?? []
            print(Table.render(["NAME", "SERIAL", "NOT AFTER", "RENEW AT", "NEXT ATTEMPT", "ISSUED", "FAILURES", "LAST ERROR"],
                               certificates.map { c in
                                   [Table.cell(c["name"]), Table.cell(c["serial"]), Table.cell(c["not_after"]), Table.cell(c["renew_at"]),
                                    Table.cell(c["next_attempt"]), Table.cell(c["issued"]), Table.cell(c["failures"]), Table.cell(c["last_error"])]
                               }))
        }
    }

    struct Renew: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Obtain a new certificate for NAME now, whatever its renewal schedule says.",
            discussion: "Returns once the node has started; `edgeproxy acme status` shows the new serial, or the error.")

        @Argument(help: "The certificate's first name, as `acme status` lists it.")
        var name: String

        @OptionGroup var options: AdminOptions

        func run() throws {
            try validName(name)
            guard let answer = try options.answer("POST", "/acme/renew/\(name)") else { return }
            print("renewing \(name) (serial \(Table.cell(answer["serial"])) until now); `edgeproxy acme status` shows the new one")
        }
    }

    struct Revoke: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Revoke the certificate the node serves for NAME at its CA, and obtain a new one at once.")

        @Argument(help: "The certificate's first name, as `acme status` lists it.")
        var name: String

        @Option(help: ArgumentHelp("The RFC 5280 reason: unspecified, keyCompromise, affiliationChanged, superseded, "
                                   + "cessationOfOperation, privilegeWithdrawn.", valueName: "reason"))
        var reason: String?

        @OptionGroup var options: AdminOptions

        func run() throws {
            try validName(name)
            var path = "/acme/revoke/\(name)"
            if let reason { path += "?reason=" + (reason.addingPercentEncoding(withAllowedCharacters: .alphanumerics) ?? reason) }
            // The CA answers a revocation within seconds; the node asks it before answering.
            guard let answer = try options.answer("POST", path, timeout: 60) else { return }
            print("revoked \(name), serial \(Table.cell(answer["revoked"])) (\(Table.cell(answer["reason"]))); a replacement is being obtained")
        }
    }
}
