import Admin
import Certificates
import Foundation
import Glibc
import Metrics

/// `GET /status` and `GET /certificates/NAME`: what `edgeproxy status` and `certs show` print.
extension Control {
    func statusResponse() -> AdminResponse {
        // The loops and listeners running, not what the file says since a reload (those need a restart).
        let serving = server?.serving ?? (workers: settings.workers, listen: settings.listen)
        var status = NodeStatus(version: BuildInfo.version, commit: BuildInfo.commit, openssl: BuildInfo.openssl, nghttp2: BuildInfo.nghttp2,
                                pid: getpid(), started: started, uptimeSeconds: Int(Date().timeIntervalSince(started)),
                                config: URL(fileURLWithPath: configPath).standardizedFileURL.path, workers: serving.workers,
                                https: serving.listen.https.map(\.description), http: serving.listen.http.map(\.description),
                                certificates: transaction.read { $0.count }, openConnections: Metrics.shared.totals()[.openConnections])
        status.acme = acme.map { parts in
            let statuses = parts.manager.statuses
            return NodeStatus.ACME(managed: statuses.count, failing: statuses.filter { $0.failures > 0 }.count)
        }
        status.cluster = cluster.map { parts in
            let sync = parts.sync.status
            return NodeStatus.Cluster(node: parts.settings.node, etcdConnected: sync.connected, certificates: sync.certificates)
        }
        return .json(status)
    }

    /// By the name `GET /certificates` lists; else the first (by id) serving `name`.
    func showCertificate(_ name: String) -> AdminResponse {
        let found = transaction.read { catalog -> (id: String, item: CertificateCatalog.Item)? in
            let items = catalog.items.sorted { $0.key < $1.key }
            let served = name.lowercased()
            return (items.first { CertificateListing.displayName($0.key) == name } ?? items.first { $0.value.bundle.names.contains(served) })
                .map { ($0.key, $0.value) }
        }
        guard let found else {
            return .error(404, "no certificate named \(name), nor one serving \(name) (GET /certificates lists them)")
        }
        return .json(CertificateListing.describe(id: found.id, item: found.item, ocsp: ocspListing(found.id)))
    }
}
