import Cluster
import Config
import Foundation

/// `edgeproxy cluster import|reseal`: one-shot operator commands against the cluster's etcd.
enum ClusterCommand {
    static func run(_ command: String, settings: Settings) -> Int32 {
        guard let c = settings.cluster else {
            fail("the configuration has no cluster section: add one (endpoints, sealing_keys) first")
            return 1
        }
        do throws(ClusterError) {
            let maintenance = ClusterMaintenance(store: try EtcdStore(c), layout: KeyLayout(prefix: c.prefix),
                                                 sealer: try Sealer(keyBytes: c.sealingKeys.map(\.bytes)), node: c.node)
            switch command {
            case "import":
                var files = settings.tls.certificates.map { (cert: $0.cert, key: $0.key) }
                if let dir = settings.tls.certificateDirectory {
                    for file in (try? FileManager.default.contentsOfDirectory(atPath: dir))?.sorted() ?? [] where file.hasSuffix(".crt") {
                        files.append((cert: dir + "/" + file, key: dir + "/" + file.dropLast(4) + ".key"))
                    }
                }
                let r = try maintenance.importNode(acmeStorage: settings.acme?.storage, directoryURL: settings.acme?.directory,
                                                   certificateFiles: files)
                print("imported \(r.certificates.count) certificate(s) into \(c.prefix)certificates/: \(r.certificates.joined(separator: ", "))")
                if !r.accounts.isEmpty { print("imported the ACME account for \(r.accounts.joined(separator: ", "))") }
                if !r.skipped.isEmpty { print("kept \(r.skipped.count) newer certificate(s) already in etcd: \(r.skipped.joined(separator: ", "))") }
                for refusal in r.refused { fail("not imported: \(refusal)") }
                return r.refused.isEmpty ? 0 : 1
            default:
                let r = try maintenance.reseal()
                print("re-sealed \(r.resealed) record(s) under \(c.sealingKeys[0].path); \(r.current) already were; "
                      + "the other sealing keys can now be removed from the configuration")
                return 0
            }
        } catch {
            fail("cluster \(command): \(error)")
            return 1
        }
    }
}

/// A one-shot command's error, on stderr.
func fail(_ message: String) {
    FileHandle.standardError.write(Data("\(message)\n".utf8))
}
