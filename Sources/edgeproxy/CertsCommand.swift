import Admin
import ArgumentParser
import Foundation

struct CertsCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "certs",
        abstract: "List, show, add and remove the certificates a running node serves.",
        subcommands: [List.self, Show.self, Add.self, Remove.self])

    struct List: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List every certificate the node serves, from every source.")

        @OptionGroup var options: AdminOptions

        func run() throws {
            let (raw, value) = try options.client().json("GET", "/certificates")
            if options.json { return JSONOutput.print(raw) }
            let rows = (value as? [[String: Any]] ?? []).map { c in
                [Table.cell(c["name"]), Table.cell(c["names"]), Table.cell(c["key_type"]), Table.cell(c["not_after"]),
                 Table.daysLeft(c["not_after"]), Table.cell(c["source"])]
            }
            print(Table.render(["NAME", "SERVES", "KEY", "NOT AFTER", "DAYS LEFT", "SOURCE"], rows))
        }
    }

    struct Show: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Show one certificate: names, issuer, validity, serial, where it came from, OCSP.",
            discussion: "NAME is the name `certs list` shows; a name the certificate serves finds it too.")

        @Argument(help: "The certificate's name.")
        var name: String

        @OptionGroup var options: AdminOptions

        func run() throws {
            try validName(name)
            guard let c = try options.answer("GET", "/certificates/\(name)") else { return }
            var fields = [("name", Table.cell(c["name"])), ("serves", Table.cell(c["names"])), ("key", Table.cell(c["key_type"])),
                          ("subject", Table.cell(c["subject"])), ("issuer", Table.cell(c["issuer"])),
                          ("not before", Table.cell(c["not_before"])),
                          ("not after", "\(Table.cell(c["not_after"])) (\(Table.daysLeft(c["not_after"])) days left)"),
                          ("serial", Table.cell(c["serial"])), ("source", Table.cell(c["source"])), ("path", Table.cell(c["path"]))]
            if let ocsp = c["ocsp"] as? [String: Any] {
                fields.append(("ocsp", "\(Table.cell(ocsp["status"])) from \(Table.cell(ocsp["responder"])), next update "
                               + "\(Table.cell(ocsp["next_update"]))" + (ocsp["error"] is String ? ", error: \(Table.cell(ocsp["error"]))" : "")))
            }
            print(Table.fields(fields))
        }
    }

    struct Add: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Add or replace a certificate on the node (served at once, kept across restarts).",
            discussion: "The node checks the chain and the key before serving them; a refused certificate changes nothing. "
                + "With a certificate directory the files are written there as NAME.crt and NAME.key; in a cluster the "
                + "certificate goes to every node.")

        @Argument(help: "The name to store it under (letters, digits, '.', '-', '_', '*').")
        var name: String

        @Option(help: ArgumentHelp("The PEM certificate chain, leaf first.", valueName: "file"))
        var cert: String

        @Option(help: ArgumentHelp("The PEM private key.", valueName: "file"))
        var key: String

        @OptionGroup var options: AdminOptions

        func run() throws {
            try validName(name)
            var pem = try readPEM(cert, "--cert")
            if pem.last != UInt8(ascii: "\n") { pem.append(UInt8(ascii: "\n")) }
            pem += try readPEM(key, "--key")
            guard let c = try options.answer("PUT", "/certificates/\(name)", body: pem, timeout: 60) else { return }
            print("added \(name): serves \(Table.cell(c["names"])), \(Table.cell(c["key_type"])), "
                  + "not after \(Table.cell(c["not_after"])), serial \(Table.cell(c["serial"]))")
        }

        func readPEM(_ path: String, _ option: String) throws(CommandError) -> [UInt8] {
            guard let data = FileManager.default.contents(atPath: path) else {
                throw CommandError(.badInput, "\(option) \(path): cannot read the file (does it exist, and may this user read it?)")
            }
            guard String(decoding: data, as: UTF8.self).contains("-----BEGIN ") else {
                throw CommandError(.badInput, "\(option) \(path): not a PEM file (no -----BEGIN line)")
            }
            return Array(data)
        }
    }

    struct Remove: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Remove a certificate added through the API or the certificate directory.",
            discussion: "The node refuses to remove its last certificate.")

        @Argument(help: "The certificate's name.")
        var name: String

        @OptionGroup var options: AdminOptions

        func run() throws {
            try validName(name)
            guard try options.answer("DELETE", "/certificates/\(name)") != nil else { return }
            print("removed \(name)")
        }
    }
}

/// Names become URL paths and file names: refused here with the rule, not as a 404 from the node.
func validName(_ name: String) throws(CommandError) {
    guard AdminRouter.isValidName(name) else {
        throw CommandError(.badInput, "\(name) is not a certificate name: use letters, digits, '.', '-', '_' and '*', not starting with '.'")
    }
}
