import Admin
import Certificates
import Cluster
import Config
import EventLoop
import Foundation
import Logs
import TLS

/// The cluster (etcd): a fourth certificate source (`ClusterSync`), ACME's shared storage, and
/// this node's membership. Off (nil) without a `cluster:` section.
struct ClusterParts {
    let sync: ClusterSync
    let node: ClusterNode
    let storage: ClusterACMEStorage
    let store: EtcdStore
    /// The same etcd with a one-second deadline, for `GET /cluster` (answered even while etcd is down).
    let quick: EtcdStore
    let settings: ClusterSettings
    /// TLS-ALPN-01 answers a validator asks this node for before its watch delivered them, read from etcd.
    let alpnLookups: ALPNChallengeLookups
}

extension Control {
    /// Before the first snapshot: connects nothing yet, serves what the local cache holds.
    func prepareCluster(http: ChallengeTable, alpn: ALPNChallengeTable) throws {
        guard let c = settings.cluster else { return }
        let sealer = try Sealer(keyBytes: c.sealingKeys.map(\.bytes))
        let store = try EtcdStore(c)
        let sync = ClusterSync(store: store, layout: KeyLayout(prefix: c.prefix), node: c.node, sealer: sealer, sink: transaction,
                               http: http, alpn: alpn, cache: LocalCache(directory: c.cacheDirectory),
                               ticketRotation: settings.tls.sessionTickets > 0 ? settings.tls.ticketKeyRotation : nil)
        let node = ClusterNode(sync: sync, ttl: c.leaseTTL, store: try EtcdStore(c, deadline: max(1, c.leaseTTL / 3)))
        // A held validator waits 2 s at most: a lookup that takes longer frees its slot soon after.
        let reader = try EtcdStore(c, deadline: 1.5)
        let alpnLookups = ALPNChallengeLookups(maxWait: 2) { [sync] name in sync.lookUpTLSALPN01(name, via: reader) }
        cluster = ClusterParts(sync: sync, node: node, storage: ClusterACMEStorage(sync: sync) { () throws(ClusterError) in try node.lease() },
                               store: store, quick: try EtcdStore(c, deadline: 1), settings: c, alpnLookups: alpnLookups)
        http.setLookup { [sync] token, done in sync.lookUpHTTP01(token, done) }
        sync.loadCache()
        Log.info("cluster: node \(c.node), etcd \(c.endpoints.joined(separator: ", ")), prefix \(c.prefix)")
    }

    func startCluster() {
        cluster?.sync.start()
        cluster?.node.start()
    }

    /// `PUT /certificates/NAME` with a cluster: stored in etcd for every node, installed here at once.
    func putClusterCertificate(_ parts: ClusterParts, _ name: String, pem: [UInt8]) -> AdminResponse {
        do {
            let (chain, key) = CertificateDirectory.splitPEM(pem)
            try parts.sync.publish(name: name, chainPEM: chain, keyPEM: key, source: "api")
        } catch {
            switch error.code {
            case .badRecord: return .error(422, "\(error.reason); the previous certificate for this name keeps serving")
            default:
                return .error(503, error.mayHaveBeenApplied
                    ? "\(error.reason); it may have been stored: GET /certificates on any node tells"
                    : "\(error.reason); nothing changed (etcd must be reachable to store a certificate for the fleet)")
            }
        }
        let id = "cluster:\(name.lowercased())"
        guard let item = transaction.read({ $0.items[id] }) else { return .error(500, "stored in etcd, but not applied here; see the log") }
        Log.info("certificate \(name) (\(item.bundle.names.joined(separator: ","))) stored for the cluster through the admin API")
        return .json(CertificateListing.describe(id: id, item: item))
    }

    func deleteClusterCertificate(_ parts: ClusterParts, _ name: String) -> AdminResponse? {
        guard transaction.read({ $0.items["cluster:\(name.lowercased())"] != nil }) else { return nil }
        do {
            guard try parts.sync.remove(name: name) else { return nil }
        } catch {
            return .error(503, error.mayHaveBeenApplied
                ? "\(error.reason); it may have been deleted: GET /certificates on any node tells"
                : "\(error.reason); nothing changed (etcd must be reachable to delete a certificate for the fleet)")
        }
        Log.info("certificate \(name) deleted for the cluster through the admin API")
        return .json(DeletedAnswer(deleted: name, cluster: true))
    }

    func clusterStatusJSON() -> AdminResponse {
        guard let parts = cluster else {
            return .error(404, "no cluster is configured (no cluster section in the configuration)")
        }
        let s = parts.sync.status, c = parts.settings
        var members: [ClusterReport.Member]?, membersError: String?
        do {
            members = try parts.node.members(from: parts.quick).map {
                ClusterReport.Member(node: $0.node, started: $0.started, revision: $0.revision, certificates: $0.certificates, updated: $0.updated)
            }
        } catch {
            membersError = error.description
        }
        let leader = (try? parts.node.leader(from: parts.quick)).flatMap { $0 }
        return .json(ClusterReport(node: c.node, prefix: c.prefix, etcdConnected: s.connected, revision: s.revision, certificates: s.certificates,
                                   refused: s.refused, outages: s.outages, lastError: s.lastError, lastApplied: s.lastApplied,
                                   lastLagSeconds: s.lastLag.map(Self.milliseconds), leader: leader, nodes: members, nodesError: membersError,
                                   endpoints: parts.store.endpointHealth().map { ClusterReport.Endpoint(url: $0.url, healthy: $0.healthy) }))
    }

    /// Seconds kept to the millisecond, as people read them.
    static func milliseconds(_ seconds: Double) -> Double { (seconds * 1000).rounded() / 1000 }

    var clusterMetrics: PrometheusText.Cluster? {
        guard let parts = cluster else { return nil }
        let s = parts.sync.status, a = parts.alpnLookups.status
        return PrometheusText.Cluster(connected: s.connected, revision: s.revision, lastLag: s.lastLag, certificates: s.certificates,
                                      refused: s.refused, outages: s.outages,
                                      locksAcquired: ClusterCounters.locksAcquired.load(ordering: .relaxed),
                                      locksLost: ClusterCounters.locksLost.load(ordering: .relaxed),
                                      requests: parts.store.requestCount,
                                      alpnLookups: .init(held: a.held, found: a.found, missed: a.missed, busy: a.busy))
    }
}
