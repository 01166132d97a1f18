import Admin
import ArgumentParser
import Foundation

struct StatusCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "status",
        abstract: "Show a running node: version, uptime, listeners, certificates, ACME and the cluster.")

    @OptionGroup var options: AdminOptions

    func run() throws {
        let raw = try options.client().call("GET", "/status")
        if options.json { return JSONOutput.print(raw) }
        let s: NodeStatus
        do { s = try NodeStatus.decode(raw) } catch {
            throw CommandError(.badAnswer, "the node's GET /status answer cannot be read (\(error)); is the node older than this command?")
        }
        let acme = s.acme.map { "\($0.managed) managed, \($0.failing) failing" } ?? "off"
        let cluster = s.cluster.map { "node \($0.node), etcd \($0.etcdConnected ? "connected" : "unreachable"), \($0.certificates) certificate(s)" } ?? "off"
        print(Table.fields([
            ("version", "edgeproxy \(s.version) (commit \(s.commit))"),
            ("libraries", "\(s.openssl), nghttp2 \(s.nghttp2)"),
            ("pid", String(s.pid)),
            ("uptime", Table.duration(s.uptimeSeconds)),
            ("config", s.config),
            ("workers", String(s.workers)),
            ("https", Table.cell(s.https)),
            ("http", Table.cell(s.http)),
            ("connections", String(s.openConnections)),
            ("certificates", String(s.certificates)),
            ("acme", acme),
            ("cluster", cluster),
        ]))
    }
}

struct ReloadCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "reload",
        abstract: "Reload the node's configuration and certificates (as SIGHUP does).",
        discussion: "A configuration with an error changes nothing: the node keeps running the previous one, and this exits 1 "
            + "with the reason. Certificates the node refused are listed, and also exit 1.")

    @OptionGroup var options: AdminOptions

    func run() throws {
        let client = try options.client()
        let (raw, value) = try client.json("POST", "/reload", timeout: 120)
        let report = value as? [String: Any] ?? [:]
        let refused = report["refused"] as? [[String: Any]] ?? []
        if options.json {
            JSONOutput.print(raw)
        } else {
            print("reloaded: \(Table.cell(report["applied"])) new or changed, \(Table.cell(report["removed"])) removed, "
                  + "\(Table.cell(report["unchanged"])) unchanged, \(refused.count) refused")
            if !refused.isEmpty {
                print(Table.render(["REFUSED", "REASON"], refused.map { [Table.cell($0["source"]), Table.cell($0["reason"])] }))
            }
        }
        if !refused.isEmpty {
            throw CommandError(.partial, "\(refused.count) certificate(s) refused; their previous versions (if any) keep serving")
        }
    }
}
