import ACME
import Certificates
import Dispatch
import Foundation
import Synchronization
import Testing
import TLS
@testable import Cluster

/// The cluster sync against an in-memory store driven event by event (the end-to-end tests run
/// the same code against a real etcd): revision order, refusals, deletions, the local cache.
@Suite(.serialized) struct ClusterSyncTests {
    let layout = KeyLayout(prefix: "/t/")

    struct Fixture {
        let store = MemoryStore()
        let transaction = CertificateTransaction()
        let sync: ClusterSync
        let dir: TempDir
        let sealer: Sealer
        let alpn = ALPNChallengeTable()
        init(_ layout: KeyLayout, cache: TempDir? = nil) throws {
            dir = try cache ?? TempDir()
            sealer = try Sealer(keyBytes: [[UInt8](repeating: 3, count: 32)])
            sync = ClusterSync(store: store, layout: layout, node: "t", sealer: sealer, sink: transaction, http: ChallengeTable(),
                               alpn: alpn, cache: LocalCache(directory: dir.path("cache")), ticketRotation: nil)
        }
        func served(_ name: String) -> String? { transaction.read { $0.items["cluster:\(name)"]?.bundle.serialHex } }
    }

    /// A record for `name` sealed for `key`, with a fresh self-signed certificate; its serial too.
    func record(_ name: String, _ f: Fixture, key: String? = nil) throws -> (bytes: [UInt8], serial: String) {
        let pk = try PrivateKey.generateP256()
        let cert = try SelfSigned.make(names: [name], key: pk)
        let chain = try cert.pem(), keyPEM = try pk.pem()
        let bundle = try CertificateLoader.bundle(chainPEM: chain, keyPEM: keyPEM, source: "test")
        let bytes = try CertificateRecord.encode(bundle: bundle, chainPEM: chain, keyPEM: keyPEM, etcdKey: key ?? layout.certificate(name),
                                                 sealer: f.sealer, source: "api", node: "t")
        return (bytes, bundle.serialHex)
    }

    func waitUntil(_ what: String, _ condition: () -> Bool) {
        let deadline = Date().addingTimeInterval(5)
        while !condition() && Date() < deadline { usleep(2_000) }
        #expect(condition(), "\(what)")
    }

    @Test func newerRevisionsWinAndOlderOnesAreIgnored() throws {
        let f = try Fixture(layout)
        let key = layout.certificate("a.test")
        let first = try record("a.test", f), second = try record("a.test", f), stale = try record("a.test", f)
        f.store.set(key, first.bytes, revision: 5)
        f.sync.start()
        defer { f.sync.stop() }
        waitUntil("the listed record served") { f.served("a.test") == first.serial }
        f.store.emit([.put(StoredValue(key: key, value: stale.bytes, createRevision: 5, modRevision: 3))])
        f.store.emit([.delete(key: key, revision: 4)])
        f.store.emit([.put(StoredValue(key: key, value: second.bytes, createRevision: 5, modRevision: 7))])
        waitUntil("the newer record served") { f.served("a.test") == second.serial }
        f.store.emit([.put(StoredValue(key: key, value: stale.bytes, createRevision: 5, modRevision: 6))])
        f.store.emit([.progress(revision: 9)])
        waitUntil("the progress revision applied") { f.sync.status.revision == 9 }
        #expect(f.served("a.test") == second.serial)
        f.store.emit([.delete(key: key, revision: 10)])
        waitUntil("the deletion applied") { f.served("a.test") == nil }
    }

    @Test func badRecordsAreRefusedAndTheServedCertificateStays() throws {
        let f = try Fixture(layout)
        let key = layout.certificate("b.test")
        let good = try record("b.test", f)
        let moved = try record("c.test", f)  // sealed for c.test's key
        f.store.set(key, good.bytes, revision: 2)
        f.sync.start()
        defer { f.sync.stop() }
        waitUntil("served") { f.served("b.test") == good.serial }
        f.store.emit([.put(StoredValue(key: key, value: Array("{not json".utf8), createRevision: 2, modRevision: 3))])
        f.store.emit([.put(StoredValue(key: key, value: moved.bytes, createRevision: 2, modRevision: 4))])
        waitUntil("both refused") { f.sync.status.refused == 2 }
        #expect(f.served("b.test") == good.serial)
    }

    /// A broken watch resumes from the last revision applied (no second read of the prefix); a
    /// compacted revision reads the prefix again.
    @Test func aBrokenWatchResumesAndACompactedOneRereads() throws {
        let f = try Fixture(layout)
        let key = layout.certificate("e.test")
        let one = try record("e.test", f), two = try record("e.test", f), three = try record("e.test", f)
        f.store.set(key, one.bytes, revision: 4)
        f.sync.start()
        defer { f.sync.stop() }
        waitUntil("served") { f.served("e.test") == one.serial }
        #expect(f.store.lists == 1)
        f.store.breakWatch(ClusterError(.unreachable, "connection reset"))
        f.store.emit([.put(StoredValue(key: key, value: two.bytes, createRevision: 4, modRevision: 6))])
        waitUntil("the event after the break applied") { f.served("e.test") == two.serial }
        #expect(f.store.lists == 1)
        #expect(f.store.watchedFrom.last == 5)
        f.store.set(key, three.bytes, revision: 9)
        f.store.breakWatch(ClusterError(.compacted, "required revision has been compacted"))
        waitUntil("the prefix read again") { f.served("e.test") == three.serial }
        #expect(f.store.lists == 2)
    }

    /// A TLS-ALPN-01 answer stored but not delivered by the watch yet (the CA's validator came
    /// first) is read and presented; the watch's deletion, or a full read without it, takes it
    /// down, and a read older than what the watch applied does not bring it back.
    @Test func aTLSALPN01AnswerAheadOfTheWatchIsReadAndTakenDownLikeOneItDelivered() throws {
        let f = try Fixture(layout)
        f.sync.start()
        defer { f.sync.stop() }
        waitUntil("in sync") { f.sync.status.connected }
        let key = layout.tlsALPN01("v.test")
        #expect(!f.sync.lookUpTLSALPN01("v.test") && f.alpn.entry(for: "v.test") == nil)

        f.store.set(key, Array("token.thumbprint".utf8), revision: 5)
        #expect(f.sync.lookUpTLSALPN01("V.Test"))
        let answer = try #require(f.alpn.entry(for: "v.test"))
        #expect(ALPNChallengeCertificate.acmeIdentifier(of: answer.certificate) == Digest.sha256(Array("token.thumbprint".utf8)))
        f.store.emit([.delete(key: key, revision: 6)])
        waitUntil("taken down by the watch") { f.alpn.entry(for: "v.test") == nil }
        f.store.set(key, Array("token.thumbprint".utf8), revision: 5)  // a read from a member behind
        #expect(!f.sync.lookUpTLSALPN01("v.test") && f.alpn.entry(for: "v.test") == nil)

        let other = layout.tlsALPN01("w.test")
        f.store.set(other, Array("other.thumbprint".utf8), revision: 8)
        #expect(f.sync.lookUpTLSALPN01("w.test") && f.alpn.entry(for: "w.test") != nil)
        _ = try f.store.delete(other)
        f.store.breakWatch(ClusterError(.compacted, "required revision has been compacted"))
        waitUntil("taken down by the full read") { f.alpn.entry(for: "w.test") == nil }
    }

    /// Locks: a nested lock (the account's inside a certificate's) keeps the outer fence, so a
    /// result stored after the outer lock was lost is refused; a lock of this node's own left
    /// behind by a failed release is taken back instead of waited for.
    @Test func nestedLocksKeepTheOuterFenceAndOwnStaleLocksAreTakenBack() throws {
        let f = try Fixture(layout)
        let storage = ClusterACMEStorage(sync: f.sync) { () throws(ClusterError) in 1 }
        let pk = try PrivateKey.generateP256()
        let chain = try SelfSigned.make(names: ["x.test"], key: pk).pem()
        let stored = StoredCertificate(names: ["x.test"], chainPEM: chain, keyPEM: try pk.pem())
        #expect(throws: ClusterError.self) {
            try storage.withLock("certificate-x.test") {
                try storage.withLock("account-ca") {}
                _ = try f.store.delete(layout.lock("certificate-x.test"))  // the lease expired; another node may go on
                try storage.saveCertificate(stored)
            }
        }
        #expect(try f.store.get(layout.certificate("x.test")) == nil)

        _ = try f.store.put(layout.lock("certificate-y.test"), Array("t".utf8), lease: 1)
        let started = Date()
        try storage.withLock("certificate-y.test") {}
        #expect(Date().timeIntervalSince(started) < 1)
        #expect(try f.store.get(layout.lock("certificate-y.test")) == nil)
    }

    /// etcd restored from a backup counts revisions from lower again: what it holds is taken as
    /// current, both at start (the cache's revisions came from the old history) and while running.
    @Test func aRestoredStoreWinsOverHigherRevisionsAppliedBefore() throws {
        let cache = try TempDir()
        let key = layout.certificate("r.test")
        let before = try Fixture(layout, cache: cache)
        let old = try record("r.test", before)
        before.store.set(key, old.bytes, revision: 50)
        before.sync.start()
        waitUntil("served") { before.served("r.test") == old.serial }
        before.sync.stop()

        let after = try Fixture(layout, cache: cache)
        let restored = try record("r.test", after)
        after.store.set(key, restored.bytes, revision: 3)
        after.sync.loadCache()
        #expect(after.served("r.test") == old.serial)
        after.sync.start()
        defer { after.sync.stop() }
        waitUntil("the restored store's record served") { after.served("r.test") == restored.serial }

        // While running: the store goes back again; a full read takes what it holds.
        let again = try record("r.test", after)
        after.store.rewind(to: [key: again.bytes], revision: 2)
        after.sync.restartWatch(reason: "test", reread: true)
        waitUntil("the rewound store's record served") { after.served("r.test") == again.serial }
    }

    @Test func theLocalCacheServesWithoutTheStore() throws {
        let cache = try TempDir()
        let key = layout.certificate("d.test")
        var serial = ""
        do {
            let f = try Fixture(layout, cache: cache)
            let r = try record("d.test", f)
            serial = r.serial
            f.store.set(key, r.bytes, revision: 3)
            f.sync.start()
            waitUntil("served") { f.served("d.test") == r.serial }
            f.sync.stop()
        }
        let restarted = try Fixture(layout, cache: cache)  // never started: no store at all
        #expect(restarted.sync.loadCache() == 1)
        #expect(restarted.served("d.test") == serial)
        let file = try #require(try FileManager.default.contentsOfDirectory(atPath: cache.path("cache/certificates")).first)
        let mode = try FileManager.default.attributesOfItem(atPath: cache.path("cache/certificates/" + file))[.posixPermissions] as? Int
        #expect(mode == 0o600)
        let text = try String(contentsOfFile: cache.path("cache/certificates/" + file), encoding: .utf8)
        #expect(!text.contains("PRIVATE KEY"))
    }

    /// A token the watch has not delivered is read from the store, off the caller's thread; a
    /// token that cannot be one is answered nil without asking the store.
    @Test func anHTTP01TokenTheWatchHasNotDeliveredIsReadFromTheStore() throws {
        let f = try Fixture(layout)  // not started: no watch delivers anything
        f.store.set(layout.http01("tok-1"), Array("tok-1.thumbprint".utf8), revision: 2)
        func lookUp(_ token: String) -> String?? {
            let answer = Mutex<String??>(.none)
            let done = DispatchSemaphore(value: 0)
            f.sync.lookUpHTTP01(token) { found in answer.withLock { $0 = .some(found) }; done.signal() }
            guard done.wait(timeout: .now() + 5) == .success else { return .none }
            return answer.withLock { $0 }
        }
        #expect(lookUp("tok-1") == .some("tok-1.thumbprint"))
        #expect(lookUp("tok-2") == .some(nil))
        #expect(lookUp("") == .some(nil))
        #expect(lookUp(String(repeating: "t", count: 129)) == .some(nil))
    }
}

/// An in-memory `SharedStore`: `set` fills it, `emit` feeds the running watch.
final class MemoryStore: SharedStore, @unchecked Sendable {  // everything under `lock`
    private let lock = NSCondition()
    private var values: [String: StoredValue] = [:]
    private var revision: Int64 = 1
    private var queue: [[StoreEvent]] = []
    private var broken: ClusterError?
    private(set) var lists = 0
    private(set) var watchedFrom: [Int64] = []

    func set(_ key: String, _ value: [UInt8], revision: Int64) {
        lock.withLock {
            values[key] = StoredValue(key: key, value: value, createRevision: revision, modRevision: revision)
            self.revision = max(self.revision, revision)
        }
    }

    func emit(_ events: [StoreEvent]) {
        lock.withLock { queue.append(events); lock.broadcast() }
    }

    /// Replaces everything, with revisions from `revision` (a restored etcd).
    func rewind(to contents: [String: [UInt8]], revision: Int64) {
        lock.withLock {
            values = Dictionary(uniqueKeysWithValues: contents.map { ($0.key, StoredValue(key: $0.key, value: $0.value, createRevision: revision,
                                                                                          modRevision: revision)) })
            self.revision = revision
        }
    }

    /// The running watch ends with `error` (once).
    func breakWatch(_ error: ClusterError) {
        lock.withLock { broken = error; lock.broadcast() }
    }

    func get(_ key: String) throws(ClusterError) -> StoredValue? { lock.withLock { values[key] } }
    func list(prefix: String) throws(ClusterError) -> (values: [StoredValue], revision: Int64) {
        lock.withLock {
            lists += 1
            return (values.values.filter { $0.key.hasPrefix(prefix) }.sorted { $0.key < $1.key }, revision)
        }
    }
    func put(_ key: String, _ value: [UInt8], lease: Int64?) throws(ClusterError) -> Int64 {
        lock.withLock {
            revision += 1
            values[key] = StoredValue(key: key, value: value, createRevision: values[key]?.createRevision ?? revision, modRevision: revision,
                                      lease: lease ?? 0)
            return revision
        }
    }
    func create(_ key: String, _ value: [UInt8], lease: Int64?) throws(ClusterError) -> (created: Bool, existing: StoredValue?, revision: Int64) {
        if let existing = try get(key) { return (false, existing, revision) }
        return (true, nil, try put(key, value, lease: lease))
    }
    func put(_ key: String, _ value: [UInt8], fence: String, fenceRevision: Int64) throws(ClusterError) -> Int64? {
        guard try get(fence)?.createRevision == fenceRevision else { return nil }
        return try put(key, value, lease: nil)
    }
    func put(_ key: String, _ value: [UInt8], ifModRevision: Int64) throws(ClusterError) -> Bool {
        guard try get(key)?.modRevision == ifModRevision else { return false }
        _ = try put(key, value, lease: nil)
        return true
    }
    func putAll(_ writes: [ConditionalWrite]) throws(ClusterError) -> Bool {
        for w in writes where (try get(w.key)?.modRevision ?? 0) != w.ifModRevision { return false }
        for w in writes { _ = try put(w.key, w.value, lease: nil) }
        return true
    }
    func delete(_ key: String) throws(ClusterError) -> Int64 { lock.withLock { values[key] = nil; revision += 1; return revision } }
    func deletePrefix(_ prefix: String) throws(ClusterError) -> Int64 {
        lock.withLock { values = values.filter { !$0.key.hasPrefix(prefix) }; revision += 1; return revision }
    }
    func delete(_ key: String, ifCreateRevision: Int64) throws(ClusterError) -> Bool {
        guard try get(key)?.createRevision == ifCreateRevision else { return false }
        _ = try delete(key)
        return true
    }
    func grantLease(ttl: Int) throws(ClusterError) -> Int64 { 1 }
    func keepAlive(lease: Int64) throws(ClusterError) -> Bool { true }
    func revoke(lease: Int64) throws(ClusterError) {}

    func watch(prefix: String, from revision: Int64, cancel: WatchCancel, _ handler: ([StoreEvent]) -> Bool) throws(ClusterError) {
        cancel.onCancel { [self] in lock.withLock { lock.broadcast() } }
        lock.withLock { watchedFrom.append(revision) }
        while true {
            let next = lock.withLock { () -> Result<[StoreEvent], ClusterError> in
                while queue.isEmpty && !cancel.isCancelled && broken == nil { lock.wait() }
                if let error = broken { broken = nil; return .failure(error) }
                return cancel.isCancelled ? .failure(ClusterError(.cancelled, "cancelled")) : .success(queue.removeFirst())
            }
            switch next {
            case .failure(let error): throw error
            case .success(let events): guard handler(events) else { return }
            }
        }
    }
}
