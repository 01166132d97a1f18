import Foundation
import Locking
import Logs

/// This node's membership: one etcd lease, kept alive every third of its TTL, to which its locks
/// and its entry under `nodes/` are attached. The entry (sync revision, certificate count) is
/// rewritten on each keep-alive, so `GET /cluster` on any node lists the live nodes and how far
/// each has synced. A node that dies drops out, and loses its locks, one TTL later.
public final class ClusterNode: @unchecked Sendable {  // mutable state is in `state`
    public struct Member: Codable, Sendable, Equatable {
        public var node: String
        public var started: Date
        /// The store revision the node had applied when it last wrote this.
        public var revision: Int64
        public var certificates: Int
        public var updated: Date
    }

    private let sync: ClusterSync
    /// The store this node's own calls go through: its deadline is a third of the TTL, so a slow
    /// etcd cannot hold one keep-alive past the lease's expiry.
    private let store: SharedStore
    private let ttl: Int
    private let started = Date()
    private struct State {
        var lease: Int64?
        var stopped = false
    }
    private let state = Locked(State())
    private let wake = NSCondition()

    public init(sync: ClusterSync, ttl: Double, store: SharedStore? = nil) {
        self.sync = sync
        self.store = store ?? sync.store
        self.ttl = max(2, Int(ttl.rounded()))
    }

    /// The lease locks attach to; granted on first use (throws while etcd is unreachable).
    public func lease() throws(ClusterError) -> Int64 {
        if let lease = state.withLock({ $0.lease }) { return lease }
        // One grant at a time: two threads granting two leases would leave locks on one that
        // nobody keeps alive.
        granting.lock()
        defer { granting.unlock() }
        if let lease = state.withLock({ $0.lease }) { return lease }
        let granted = try store.grantLease(ttl: ttl)
        state.withLock { $0.lease = granted }
        if let other = try? store.get(sync.layout.node(sync.node)), other.lease != 0, other.lease != granted {
            // This node before a restart (its lease not yet expired), or another node with the same name.
            Log.warning("cluster: \(sync.layout.node(sync.node)) is registered under another lease; if this node did not just "
                        + "restart, another node uses the name \(sync.node): give each node its own cluster.node")
        }
        _ = try? register(granted)
        return granted
    }
    private let granting = NSLock()

    public func start() {
        let thread = Thread { [self] in run() }
        thread.name = "edgeproxy-cluster-node"
        thread.start()
    }

    /// Leaves the cluster: the lease is revoked, so its locks and entry go at once.
    public func stop() {
        let lease = state.withLock { s -> Int64? in
            s.stopped = true
            return s.lease
        }
        wake.lock(); wake.broadcast(); wake.unlock()
        if let lease { try? store.revoke(lease: lease) }
    }

    /// The live nodes, this one included; read through `store` when given (a shorter deadline).
    public func members(from store: SharedStore? = nil) throws(ClusterError) -> [Member] {
        let decoder = RecordCoding.decoder()
        return try (store ?? self.store).list(prefix: sync.layout.nodes).values.compactMap { try? decoder.decode(Member.self, from: Data($0.value)) }
            .sorted { $0.node < $1.node }
    }

    private func run() {
        let interval = Double(ttl) / 3
        var lastWrite: Int64?
        while !state.withLock({ $0.stopped }) {
            do throws(ClusterError) {
                let lease = try self.lease()
                if try store.keepAlive(lease: lease) {
                    let written = try register(lease)
                    // This node's own write is under the watched prefix: a watch that has not
                    // delivered the previous one by now has gone silent; one ahead of it is
                    // watching another etcd's history (a restore).
                    if let last = lastWrite, sync.status.connected, sync.status.revision < last {
                        sync.restartWatch(reason: "the watch has not delivered revision \(last) after \(interval) s")
                    } else if let written, sync.status.connected, written < sync.status.revision {
                        sync.restartWatch(reason: "etcd wrote revision \(written), behind the \(sync.status.revision) applied here", reread: true)
                    }
                    lastWrite = written
                    try leadTickets(lease)
                } else {
                    // Expired (etcd was out of reach longer than the TTL): locks under it are gone.
                    Log.warning("cluster: this node's lease \(lease) expired; taking a new one")
                    state.withLock { $0.lease = nil }
                    continue
                }
            } catch {
                Log.debug("cluster: lease keep-alive failed: \(error)")
            }
            wake.lock()
            _ = wake.wait(until: Date().addingTimeInterval(interval))
            wake.unlock()
        }
    }

    /// The node holding `leader` (under its lease) publishes the fleet's ticket keys; when it
    /// dies, another node takes `leader` one TTL later and carries on from what is published.
    private func leadTickets(_ lease: Int64) throws(ClusterError) {
        guard let tickets = sync.tickets else { return }
        let (created, existing, _) = try store.create(sync.layout.leader, Array(sync.node.utf8), lease: lease)
        guard created || existing.map({ String(decoding: $0.value, as: UTF8.self) == sync.node }) == true else { return }
        if created { Log.info("cluster: this node leads (publishes the session-ticket keys)") }
        try tickets.maintain()
    }

    /// The node publishing ticket keys now (nil: none yet).
    public func leader(from store: SharedStore? = nil) throws(ClusterError) -> String? {
        try (store ?? self.store).get(sync.layout.leader).map { String(decoding: $0.value, as: UTF8.self) }
    }

    @discardableResult
    private func register(_ lease: Int64) throws(ClusterError) -> Int64? {
        let status = sync.status
        let member = Member(node: sync.node, started: started, revision: status.revision, certificates: status.certificates, updated: Date())
        let encoder = RecordCoding.encoder()
        guard let bytes = try? encoder.encode(member) else { return nil }
        return try store.put(sync.layout.node(sync.node), [UInt8](bytes), lease: lease)
    }
}
