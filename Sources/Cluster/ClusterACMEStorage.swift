import ACME
import Foundation
import Locking
import Logs

/// ACME's storage shared by the fleet (the `ACMEStorage` contract, in etcd):
/// - the account, sealed, at `acme/CA/account`, created under the account lock, so nodes started
///   at the same instant register exactly one;
/// - certificates as `CertificateRecord`s through `ClusterSync.publish` (every node installs them);
/// - challenge answers written before the CA is told to validate, so any node answers;
/// - locks: create-if-absent on `locks/NAME` attached to this node's lease, waited for by polling;
///   a node that dies loses its locks when its lease expires. The lock's create revision fences
///   the certificate write made under it: a node whose lock expired cannot store its result.
public final class ClusterACMEStorage: ACMEStorage, @unchecked Sendable {  // `held` is guarded by its lock; the rest is immutable
    private let sync: ClusterSync
    private let lease: @Sendable () throws(ClusterError) -> Int64
    private var store: SharedStore { sync.store }
    private var layout: KeyLayout { sync.layout }
    /// Locks held, by thread: the fence for certificate writes made inside `withLock`.
    private let held = Locked<[UInt: (key: String, revision: Int64)]>([:])
    /// How often a waiting node looks at a lock held elsewhere, and for how long at most (an
    /// order takes seconds; one that holds its lock longer than this is someone else's problem).
    static let pollInterval = 0.25
    static let lockWait = 600.0

    /// `lease`: this node's current lease (`ClusterNode`), to which locks are attached.
    public init(sync: ClusterSync, lease: @escaping @Sendable () throws(ClusterError) -> Int64) {
        self.sync = sync
        self.lease = lease
    }

    public func loadAccount(ca: String) throws -> StoredAccount? {
        let key = layout.account(ca: ca)
        guard let value = try store.get(key) else { return nil }
        return try AccountRecord.decode(value.value, etcdKey: key, sealer: sync.sealer)
    }

    public func saveAccount(_ account: StoredAccount, ca: String) throws {
        let key = layout.account(ca: ca)
        try store.put(key, try AccountRecord.encode(account, etcdKey: key, sealer: sync.sealer), lease: nil)
    }

    public func loadCertificate(name: String) throws -> StoredCertificate? {
        let key = layout.certificate(name)
        guard let value = try store.get(key) else { return nil }
        let (record, chain, keyPEM) = try CertificateRecord.decode(value.value, etcdKey: key, sealer: sync.sealer)
        return StoredCertificate(names: record.names, chainPEM: chain, keyPEM: keyPEM)
    }

    public func saveCertificate(_ certificate: StoredCertificate) throws {
        let fence = held.withLock { $0[Self.thread] }
        try sync.publish(name: certificate.primaryName, chainPEM: certificate.chainPEM, keyPEM: certificate.keyPEM,
                         source: "acme", fence: fence)
    }

    public func saveChallenge(token: String, keyAuthorization: String) throws {
        try present(layout.http01(token), keyAuthorization)
    }

    public func deleteChallenge(token: String) throws {
        try takeDown(layout.http01(token))
    }

    public func loadChallenge(token: String) throws -> String? {
        try store.get(layout.http01(token)).map { String(decoding: $0.value, as: UTF8.self) }
    }

    public func saveALPNChallenge(name: String, keyAuthorization: String) throws {
        try present(layout.tlsALPN01(name), keyAuthorization)
    }

    /// Each answer lives under a lease of its own (the nodes' acknowledgements too), revoked when
    /// the authorization ends: an answer whose clean-up failed, or whose node died, expires by
    /// itself within `challengeTTL` instead of living as long as the node.
    private func present(_ key: String, _ keyAuthorization: String) throws {
        let lease = try store.grantLease(ttl: Self.challengeTTL)
        challengeLeases.withLock { $0[key] = lease }
        try store.put(key, Array(keyAuthorization.utf8), lease: lease)
        waitForAcks(key)
    }

    private func takeDown(_ key: String) throws {
        if let lease = challengeLeases.withLock({ $0.removeValue(forKey: key) }) {
            try store.revoke(lease: lease)  // the answer and its acknowledgements go with it
        } else {
            _ = try? store.deletePrefix(layout.acks(for: key))
            try store.delete(key)
        }
    }

    /// Seconds an answer may outlive a failed clean-up (an order is over long before).
    static let challengeTTL = 600
    private let challengeLeases = Locked<[String: Int64]>([:])

    /// Until every live node says it answers the challenge at `key`, at most `ackTimeout`: the
    /// CA's validation may reach any of them the moment it is told to validate. A node that does
    /// not answer in time is logged; the order goes ahead (HTTP-01 misses are also read from etcd).
    private func waitForAcks(_ key: String) {
        let deadline = Date().addingTimeInterval(Self.ackTimeout)
        var missing: [String] = []
        repeat {
            guard let live = try? store.list(prefix: layout.nodes).values.map({ String($0.key.dropFirst(layout.nodes.count)) }),
                  let acked = try? store.list(prefix: layout.acks(for: key)).values.map({ String($0.key.split(separator: "/").last ?? "") })
            else { return }
            missing = live.filter { !acked.contains($0) && $0 != sync.node }
            if missing.isEmpty { return }
            Thread.sleep(forTimeInterval: 0.05)
        } while Date() < deadline
        Log.warning("cluster: \(missing.joined(separator: ", ")) did not confirm \(key) within \(Self.ackTimeout) s; asking the CA to validate anyway")
    }

    /// How long the ordering node waits for the other nodes to answer a challenge.
    static let ackTimeout = 3.0

    public func deleteALPNChallenge(name: String) throws {
        try takeDown(layout.tlsALPN01(name))
    }

    struct RenewalWire: Codable, Equatable {
        var serial: String
        var window: RenewalWindow?
        var renewAt: Date
        enum CodingKeys: String, CodingKey { case serial, window, renewAt = "renew_at" }
    }

    /// At `acme/renewal/NAME`: the first node to plan a serial's renewal stores its draw; every
    /// other node (and this one after a restart) uses it. A new serial or window replaces it.
    public func agreeRenewal(name: String, serial: String, window: RenewalWindow?, proposed: Date) throws -> Date {
        let key = layout.renewal(name)
        let encoder = RecordCoding.encoder(), decoder = RecordCoding.decoder()
        let mine = [UInt8](try encoder.encode(RenewalWire(serial: serial, window: window, renewAt: proposed)))
        for _ in 0..<3 {
            guard let existing = try store.get(key) else {
                if try store.create(key, mine, lease: nil).created { return proposed }
                continue
            }
            if let agreed = try? decoder.decode(RenewalWire.self, from: Data(existing.value)), agreed.serial == serial,
               agreed.window?.start.timeIntervalSince1970.rounded() == window?.start.timeIntervalSince1970.rounded(),
               agreed.window?.end.timeIntervalSince1970.rounded() == window?.end.timeIntervalSince1970.rounded() {
                return agreed.renewAt
            }
            if try store.put(key, mine, ifModRevision: existing.modRevision) { return proposed }
        }
        return proposed
    }

    struct RenewalInfoWire: Codable {
        var serial: String
        var info: SharedRenewalInfo
    }

    /// At `acme/ari/NAME`: the last renewalInfo answer for the current serial, so one node asks
    /// the CA per check interval for the whole fleet.
    public func loadRenewalInfo(name: String, serial: String) throws -> SharedRenewalInfo? {
        guard let value = try store.get(layout.renewalInfo(name)),
              let wire = try? RecordCoding.decoder().decode(RenewalInfoWire.self, from: Data(value.value)), wire.serial == serial else { return nil }
        return wire.info
    }

    public func saveRenewalInfo(_ info: SharedRenewalInfo, name: String, serial: String) throws {
        try store.put(layout.renewalInfo(name), [UInt8](try RecordCoding.encoder().encode(RenewalInfoWire(serial: serial, info: info))), lease: nil)
    }

    public func loadOnDemandNames() throws -> [String] {
        try store.list(prefix: layout.onDemand).values.map { String($0.key.dropFirst(layout.onDemand.count)) }
    }

    public func saveOnDemandName(_ name: String) throws {
        _ = try store.create(layout.onDemand + name.lowercased(), [], lease: nil)
    }

    /// At `acme/events/ID`, create-if-absent under a lease of its own that expires after `keepFor`
    /// (claims do not pile up): the first node to claim an event delivers it.
    public func claimEvent(id: String, keepFor: Double) throws -> Bool {
        let key = layout.event(id)
        if try store.get(key) != nil { return false }  // the usual case for the other nodes: no lease granted
        let lease = try store.grantLease(ttl: max(60, Int(keepFor.rounded(.up))))
        if try store.create(key, Array(sync.node.utf8), lease: lease).created { return true }
        try? store.revoke(lease: lease)
        return false
    }

    public func withLock<T>(_ name: String, _ body: () throws -> T) throws -> T {
        let key = layout.lock(name)
        var waited = false
        var revision: Int64 = 0
        let giveUp = Date().addingTimeInterval(Self.lockWait)
        while true {
            let lease = try lease()
            let (created, existing, rev) = try store.create(key, Array(sync.node.utf8), lease: lease)
            if created {
                revision = rev
                break
            }
            guard let existing else { continue }
            // This node's own lock that no thread here holds: a release that failed. Take it back
            // rather than wait for a lease that this node keeps alive forever.
            let heldHere = held.withLock { locks in locks.values.contains { $0.key == key } }
            if existing.lease == lease && String(decoding: existing.value, as: UTF8.self) == sync.node && !heldHere {
                _ = try store.delete(key, ifCreateRevision: existing.createRevision)
                continue
            }
            if !waited {
                Log.info("cluster: waiting for \(key), held by \(String(decoding: existing.value, as: UTF8.self))")
                waited = true
            }
            guard Date() < giveUp else {
                throw ClusterError(.store, "\(key) has been held by \(String(decoding: existing.value, as: UTF8.self)) for over "
                                   + "\(Int(Self.lockWait)) s; this node tries again after its backoff (delete the key if that node is wedged)")
            }
            Thread.sleep(forTimeInterval: Self.pollInterval * Double.random(in: 0.8...1.2))
        }
        ClusterCounters.locksAcquired.add(1, ordering: .relaxed)
        let thread = Self.thread
        // Locks nest (a certificate's lock, then the account's inside it): the outer one's fence
        // comes back when the inner one is released.
        let outer = held.withLock { h -> (key: String, revision: Int64)? in
            defer { h[thread] = (key, revision) }
            return h[thread]
        }
        defer {
            held.withLock { $0[thread] = outer }
            release(key, revision)
        }
        return try body()
    }

    /// Deletes the lock if it is still ours (an expired one may be another node's by now),
    /// retrying a few times: a lock left behind would hold the name until this node stops.
    private func release(_ key: String, _ revision: Int64) {
        for attempt in 0..<5 {
            do {
                _ = try store.delete(key, ifCreateRevision: revision)
                return
            } catch {
                Thread.sleep(forTimeInterval: 0.2 * Double(1 << attempt))
            }
        }
        Log.warning("cluster: could not release \(key); this node takes it back when it next needs it")
    }

    private static var thread: UInt { UInt(bitPattern: Int(pthread_self())) }
}

/// The ACME account as stored at `acme/CA/account`: its URL and its key, sealed.
enum AccountRecord {
    private struct Wire: Codable {
        var sealedKey: String
        var url: String?
        enum CodingKeys: String, CodingKey { case sealedKey = "sealed_key", url }
    }

    static func encode(_ account: StoredAccount, etcdKey: String, sealer: Sealer) throws(ClusterError) -> [UInt8] {
        let sealed = try sealer.sealRecord(account.keyPEM, context: etcdKey)
        guard let bytes = try? JSONEncoder().encode(Wire(sealedKey: Data(sealed).base64EncodedString(), url: account.url)) else {
            throw ClusterError(.badRecord, "cannot encode the account record for \(etcdKey)")
        }
        return [UInt8](bytes)
    }

    static func decode(_ bytes: [UInt8], etcdKey: String, sealer: Sealer) throws(ClusterError) -> StoredAccount {
        guard let wire = try? JSONDecoder().decode(Wire.self, from: Data(bytes)), let sealed = Data(base64Encoded: wire.sealedKey) else {
            throw ClusterError(.badRecord, "\(etcdKey) is not an account record; delete it to register a new account")
        }
        return StoredAccount(keyPEM: try sealer.openRecord([UInt8](sealed), context: etcdKey), url: wire.url)
    }
}
