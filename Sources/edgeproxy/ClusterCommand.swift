import ArgumentParser
import Cluster
import Config
import Foundation

/// `edgeproxy cluster status` asks a running node; `import` and `reseal` are one-shot maintenance
/// against the cluster's etcd itself, with this node's configuration.
struct ClusterCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "cluster",
        abstract: "The fleet sharing certificates through etcd.",
        subcommands: [Status.self, Import.self, Reseal.self])

    struct Status: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "A running node's view of the cluster: etcd, the revision it applied, the leader and the live nodes.")

        @OptionGroup var options: AdminOptions

        func run() throws {
            guard let c = try options.answer("GET", "/cluster") else { return }
            var fields = [("node", Table.cell(c["node"])), ("prefix", Table.cell(c["prefix"])),
                          ("etcd", (c["etcd_connected"] as? Bool == true ? "connected" : "unreachable")
                              + ((c["last_error"] as? String).map { " (last error: \($0))" } ?? "")),
                          ("revision", Table.cell(c["revision"])), ("certificates", Table.cell(c["certificates"])),
                          ("refused", Table.cell(c["refused"])), ("leader", Table.cell(c["leader"]))]
            let endpoints = (c["endpoints"] as? [[String: Any]] ?? []).map { "\(Table.cell($0["url"])) (\($0["healthy"] as? Bool == true ? "healthy" : "down"))" }
            fields.append(("endpoints", endpoints.isEmpty ? "-" : endpoints.joined(separator: ", ")))
            print(Table.fields(fields))
            if let nodes = c["nodes"] as? [[String: Any]] {
                print("")
                print(Table.render(["NODE", "STARTED", "REVISION", "CERTIFICATES", "UPDATED"], nodes.map { n in
                    [Table.cell(n["node"]), Table.cell(n["started"]), Table.cell(n["revision"]), Table.cell(n["certificates"]), Table.cell(n["updated"])]
                }))
            } else {
                print("nodes: cannot be listed now (\(Table.cell(c["nodes_error"])))")
            }
        }
    }

    struct Import: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Store this node's ACME account and certificates (acme.storage, tls.certificate_dir, tls.certificates) in etcd.")

        @Option(name: [.short, .long], help: ArgumentHelp("The node's configuration file.", valueName: "file"))
        var config = defaultConfigPath

        func run() throws {
            let settings = try AdminOptions.load(config)
            let c = try clusterSettings(settings)
            var files = settings.tls.certificates.map { (cert: $0.cert, key: $0.key) }
            if let dir = settings.tls.certificateDirectory {
                for file in (try? FileManager.default.contentsOfDirectory(atPath: dir))?.sorted() ?? [] where file.hasSuffix(".crt") {
                    files.append((cert: dir + "/" + file, key: dir + "/" + file.dropLast(4) + ".key"))
                }
            }
            let r: ClusterMaintenance.ImportReport
            do throws(ClusterError) {
                r = try maintenance(c).importNode(acmeStorage: settings.acme?.storage, directoryURL: settings.acme?.directory,
                                                  certificateFiles: files)
            } catch {
                throw CommandError(.refused, "cluster import: \(error)")
            }
            print("imported \(r.certificates.count) certificate(s) into \(c.prefix)certificates/: \(r.certificates.joined(separator: ", "))")
            if !r.accounts.isEmpty { print("imported the ACME account for \(r.accounts.joined(separator: ", "))") }
            if !r.skipped.isEmpty { print("kept \(r.skipped.count) newer certificate(s) already in etcd: \(r.skipped.joined(separator: ", "))") }
            guard r.refused.isEmpty else { throw CommandError(.partial, "not imported: " + r.refused.joined(separator: "; ")) }
        }
    }

    struct Reseal: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Seal every key in etcd again under the first sealing key (after adding a new one).")

        @Option(name: [.short, .long], help: ArgumentHelp("The node's configuration file.", valueName: "file"))
        var config = defaultConfigPath

        func run() throws {
            let c = try clusterSettings(try AdminOptions.load(config))
            do throws(ClusterError) {
                let r = try maintenance(c).reseal()
                print("re-sealed \(r.resealed) record(s) under \(c.sealingKeys[0].path); \(r.current) already were; "
                      + "the other sealing keys can now be removed from the configuration")
            } catch {
                throw CommandError(.refused, "cluster reseal: \(error)")
            }
        }
    }

    static func clusterSettingsMissing() -> CommandError {
        CommandError(.config, "the configuration has no cluster section: add one (endpoints, sealing_keys) first")
    }
}

private func clusterSettings(_ settings: Settings) throws(CommandError) -> ClusterSettings {
    guard let c = settings.cluster else { throw ClusterCommand.clusterSettingsMissing() }
    return c
}

private func maintenance(_ c: ClusterSettings) throws(ClusterError) -> ClusterMaintenance {
    ClusterMaintenance(store: try EtcdStore(c), layout: KeyLayout(prefix: c.prefix),
                       sealer: try Sealer(keyBytes: c.sealingKeys.map(\.bytes)), node: c.node)
}
