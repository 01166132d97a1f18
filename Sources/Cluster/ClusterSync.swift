import Certificates
import Foundation
import Logs
import Metrics
import Locking
import TLS

/// The cluster as a certificate source: every record under `certificates/` is installed through
/// the same transaction as files (id "cluster:NAME"), and ACME challenges under
/// `acme/challenges/` are answered from this node's tables, whichever node ordered them. One
/// thread reads the whole prefix, then watches it from the next revision; a compacted revision
/// reads it again, an outage retries with backoff while everything already installed keeps
/// serving. A record is applied only when its revision is newer than the one applied for that
/// key, so an older certificate never replaces a newer one.
public final class ClusterSync: @unchecked Sendable {  // mutable state is in `state`; `store` and the tables are thread-safe
    public struct Status: Sendable {
        public var connected = false
        /// The store revision this node has applied everything up to.
        public var revision: Int64 = 0
        public var certificates = 0
        public var refused = 0
        public var lastError: String?
        /// When the last change from the store was applied.
        public var lastApplied: Date?
        /// Seconds between a record being stored (its stored_at) and this node serving it, last one.
        public var lastLag: Double?
        public var outages = 0
    }

    public let layout: KeyLayout
    public let node: String
    let store: SharedStore
    let sealer: Sealer
    private let sink: CertificateSink
    private let http: ChallengeTable
    private let alpn: ALPNChallengeTable
    private let cache: LocalCache
    /// The fleet's ticket keys (nil: tickets off); this node installs them into `TicketKeys.shared`.
    let tickets: TicketRecords?

    private struct State {
        /// etcd key → the mod revision applied (or refused) for it.
        var applied: [String: Int64] = [:]
        /// Challenge keys this node took from the store (and must take down when they go).
        var challenges: Set<String> = []
        /// The fleet's session-ticket keys, by etcd key.
        var tickets: [String: TicketKeys.Key] = [:]
        var status = Status()
        var stopped = false
        /// Ends the running watch (stop, or a watch that went silent).
        var watch = WatchCancel()
        var everConnected = false
        /// The next round reads the whole prefix rather than resuming.
        var reread = false
    }
    private let state = Locked(State())
    private let applying = NSLock()
    private let cacheWrites = DispatchQueue(label: "edgeproxy.cluster.cache")

    /// `ticketRotation`: seconds each fleet ticket key encrypts for; nil: session tickets are off.
    public init(store: SharedStore, layout: KeyLayout, node: String, sealer: Sealer, sink: CertificateSink,
                http: ChallengeTable, alpn: ALPNChallengeTable, cache: LocalCache, ticketRotation: Double?) {
        self.store = store; self.layout = layout; self.node = node; self.sealer = sealer; self.sink = sink
        self.http = http; self.alpn = alpn; self.cache = cache
        tickets = ticketRotation.map { TicketRecords(store: store, layout: layout, sealer: sealer, rotation: $0) }
    }

    public var status: Status { state.withLock { $0.status } }

    /// Start-up, before the first snapshot: what the local cache holds (no request to etcd).
    @discardableResult
    public func loadCache() -> Int {
        let cached = cache.load().filter { layout.certificateName($0.key) != nil }
        guard !cached.isEmpty else { return 0 }
        let change = changes(puts: cached, deletes: [], source: "cluster", fromCache: true)
        sink.submit(change)
        state.withLock { $0.status.certificates = $0.applied.count }
        Log.info("cluster: \(change.upserts.count) certificate(s) from the local cache \(cache.directory)")
        return change.upserts.count
    }

    public func start() {
        let thread = Thread { [self] in run() }
        thread.name = "edgeproxy-cluster-sync"
        thread.start()
    }

    /// Ends the watch; returns once the local cache has every record applied so far.
    public func stop() {
        state.withLock { $0.stopped = true; return $0.watch }.cancel()
        flushCache()
    }

    /// Returns once the local cache holds every record applied so far.
    public func flushCache() {
        cacheWrites.sync {}
    }

    /// Watches anew from the last revision applied: the watch's connection may be alive but silent
    /// (a member cut off from the others), which only a revision check from outside notices.
    /// `reread`: read the whole prefix again instead (etcd's revisions went back: a restore).
    func restartWatch(reason: String, reread: Bool = false) {
        Log.warning("cluster: \(reason); \(reread ? "reading" : "watching") \(layout.prefix) again")
        state.withLock { s in
            if reread { s.reread = true }
            return s.watch
        }.cancel()
    }

    /// Looks up an HTTP-01 token this node does not hold (a node that just joined, or a watch a
    /// moment behind), off the caller's thread; at most 16 at once (`lookups`), so a flood of
    /// made-up tokens costs etcd nothing beyond that (the rest get nil at once). A thread each, as
    /// the TLS-ALPN-01 lookups: 16 waits on etcd would hold Dispatch's few shared threads.
    public func lookUpHTTP01(_ token: String, _ done: @escaping @Sendable (String?) -> Void) {
        guard !token.isEmpty, token.count <= 128, lookups.wait(timeout: .now()) == .success else { return done(nil) }
        let thread = Thread { [self] in
            defer { lookups.signal() }
            done((try? store.get(layout.http01(token))).flatMap { $0.map { String(decoding: $0.value, as: UTF8.self) } })
        }
        thread.name = "edgeproxy-http01-lookup"
        thread.start()
    }
    private let lookups = DispatchSemaphore(value: 16)

    /// Reads the TLS-ALPN-01 answer for `name` that this node's watch has not delivered yet (the
    /// CA's validator reached this node first) and presents it as the watch does. Blocking: for
    /// `ALPNChallengeLookups`' background threads. `via`: a store with a short deadline (the
    /// handshake waits only so long). True when this node holds an answer for `name` afterwards.
    public func lookUpTLSALPN01(_ name: String, via reader: SharedStore? = nil) -> Bool {
        let key = layout.tlsALPN01(name)
        let found: StoredValue?
        do { found = try (reader ?? store).get(key) } catch {
            Log.debug("cluster: cannot look up the TLS-ALPN-01 answer for \(name) (\(error)); the validation gets the ordinary certificate")
            return false
        }
        guard let found else { return false }
        let answer: ALPNChallengeTable.Entry
        do { answer = try ALPNChallengeTable.entry(name: name, keyAuthorization: String(decoding: found.value, as: UTF8.self)) } catch {
            Log.error("cluster: cannot answer the TLS-ALPN-01 challenge for \(name): \(error)")
            return false
        }
        return applying.withLock {
            // The watch applied this revision already, and whatever came after it up to its own:
            // what the table holds for the name (an answer, or none since it was taken down) is current.
            guard state.withLock({ $0.status.revision }) < found.modRevision else { return alpn.entry(for: name) != nil }
            alpn.present(name: name, answer)
            // Taken down like one the watch delivered: by the deletion, or by the next full read.
            state.withLock { _ = $0.challenges.insert(key) }
            Log.info("cluster: TLS-ALPN-01 answer for \(name) read from etcd (revision \(found.modRevision)) ahead of the watch")
            return true
        }
    }

    // MARK: Writing for the fleet

    /// Validates `chainPEM` + `keyPEM`, stores them at `certificates/NAME` (key sealed) and
    /// installs them here at once; the other nodes install them from their watch. With `fence`,
    /// the write happens only while that lock is still held.
    @discardableResult
    public func publish(name: String, chainPEM: [UInt8], keyPEM: [UInt8], source: String,
                        fence: (key: String, revision: Int64)? = nil) throws(ClusterError) -> CertificateBundle {
        let key = layout.certificate(name)
        let bundle: CertificateBundle
        do { bundle = try CertificateLoader.bundle(chainPEM: chainPEM, keyPEM: keyPEM, source: "cluster:\(key)") } catch {
            throw ClusterError(.badRecord, error.reason)
        }
        let bytes = try CertificateRecord.encode(bundle: bundle, chainPEM: chainPEM, keyPEM: keyPEM, etcdKey: key, sealer: sealer,
                                                 source: source, node: node)
        let revision: Int64
        if let fence {
            guard let written = try store.put(key, bytes, fence: fence.key, fenceRevision: fence.revision) else {
                ClusterCounters.locksLost.add(1, ordering: .relaxed)
                throw ClusterError(.lockLost, "the lock \(fence.key) was lost (lease expired?) before \(name) could be stored; another node carries on")
            }
            revision = written
        } else {
            revision = try store.put(key, bytes, lease: nil)
        }
        apply([.put(StoredValue(key: key, value: bytes, createRevision: 0, modRevision: revision))], source: source, fromStore: false,
              built: [key: bundle])
        return bundle
    }

    /// Removes `certificates/NAME` for the whole fleet (here at once). False: there was none.
    public func remove(name: String) throws(ClusterError) -> Bool {
        let key = layout.certificate(name)
        guard try store.get(key) != nil else { return false }
        let revision = try store.delete(key)
        apply([.delete(key: key, revision: revision)], source: "api", fromStore: false)
        return true
    }

    // MARK: The sync thread

    private func run() {
        var backoff = 0.2
        // After a broken watch: the revision to resume from (the events since arrive in order);
        // nil: read the whole prefix (at start, and when that revision was compacted).
        var resume: Int64?
        while !state.withLock({ $0.stopped }) {
            do throws(ClusterError) {
                let cancel = WatchCancel()
                state.withLock { $0.watch = cancel }
                let from: Int64
                if state.withLock({ s in defer { s.reread = false }; return s.reread }) { resume = nil }
                if let revision = resume {
                    _ = try store.get(layout.leader)  // reachable again?
                    inSync(at: revision)
                    from = revision + 1
                } else {
                    let (values, revision) = try store.list(prefix: layout.prefix)
                    resync(values, revision: revision)
                    from = revision + 1
                }
                try store.watch(prefix: layout.prefix, from: from, cancel: cancel) { events in
                    backoff = 0.2  // only a watch that delivers counts as back (one that breaks at once backs off)
                    apply(events, source: "cluster")
                    return !state.withLock { $0.stopped }
                }
            } catch {
                if state.withLock({ $0.stopped }) { return }
                if error.code == .compacted {
                    Log.warning("cluster: revision \(resume.map(String.init) ?? "?") was compacted; reading \(layout.prefix) again")
                    resume = nil
                    continue
                }
                let revision = state.withLock { $0.status.revision }
                resume = revision > 0 ? revision : nil
                if error.code == .cancelled { continue }  // restartWatch
                let first = state.withLock { s -> Bool in
                    defer { s.status.connected = false; s.status.lastError = error.description }
                    if s.status.connected { s.status.outages += 1 }
                    return s.status.connected || s.status.outages == 0 && s.status.revision == 0
                }
                if first {
                    Log.error("cluster: etcd: \(error); serving what this node has, retrying with backoff")
                }
                Thread.sleep(forTimeInterval: backoff * Double.random(in: 0.5...1.5))
                backoff = min(backoff * 2, 5)
            }
        }
    }

    /// A full read: everything listed is applied if newer, everything applied but not listed goes.
    private func resync(_ values: [StoredValue], revision: Int64) {
        let listed = Set(values.map(\.key))
        let gone = state.withLock { s in
            // etcd restored from a backup (or rebuilt) counts revisions from lower again: what was
            // applied here is not newer than what it holds now, whatever the numbers say.
            if revision < s.status.revision {
                Log.warning("cluster: etcd is at revision \(revision), behind the \(s.status.revision) applied here (restored or "
                            + "rebuilt?); taking everything it holds as current")
                s.applied = s.applied.mapValues { _ in -1 }
                s.status.revision = 0
            }
            return (Array(s.applied.keys) + Array(s.challenges) + Array(s.tickets.keys)).filter { !listed.contains($0) }
        }
        // The list's revision moves `status.revision` under the same lock as what it applies: a
        // TLS-ALPN-01 lookup (`lookUpTLSALPN01`) must not present an answer this read took down.
        apply(values.map { .put($0) } + gone.map { .delete(key: $0, revision: revision) } + [.progress(revision: revision)],
              source: "cluster")
        inSync(at: revision)
    }

    private func inSync(at revision: Int64) {
        let reconnected = state.withLock { s -> Bool in
            defer {
                s.status.connected = true; s.status.lastError = nil; s.status.revision = max(s.status.revision, revision)
                s.everConnected = true
            }
            return !s.status.connected && s.everConnected
        }
        Log.info("cluster: \(reconnected ? "etcd is back: " : "")in sync with \(layout.prefix) at revision \(revision) "
                 + "(\(state.withLock { $0.status.certificates }) certificate(s))")
    }

    /// Applies store events in order: certificates through one transaction, challenges to the tables.
    /// One at a time (the watch thread and local writes both apply): whichever applies a revision
    /// first has installed it before the other looks.
    /// `fromStore`: the events come from the store's list or watch, in order, so `status.revision`
    /// (where a broken watch resumes) moves with them; this node's own writes do not move it, or a
    /// resumed watch would skip other nodes' changes made before them.
    /// `built`: bundles this node just validated for those keys (its own writes), not built again.
    private func apply(_ events: [StoreEvent], source: String, fromStore: Bool = true, built: [String: CertificateBundle] = [:]) {
        applying.withLock { applyHoldingLock(events, source: source, fromStore: fromStore, built: built) }
    }

    private func applyHoldingLock(_ events: [StoreEvent], source: String, fromStore: Bool, built: [String: CertificateBundle]) {
        var puts: [StoredValue] = [], deletes: [(String, Int64)] = []
        var top: Int64 = 0
        var ticketsChanged = false
        for event in events {
            switch event {
            case .put(let v):
                top = max(top, v.modRevision)
                if layout.certificateName(v.key) != nil {
                    puts.append(v)
                } else if v.key.hasPrefix(layout.challenges) {
                    challenge(v.key, v.value, lease: v.lease)
                } else if v.key.hasPrefix(layout.tickets), let tickets {
                    do {
                        let key = try tickets.decode(v)
                        state.withLock { $0.tickets[v.key] = key }
                        ticketsChanged = true
                    } catch {
                        Log.error("cluster: ticket key \(v.key) refused: \(error.reason)")
                    }
                }
            case .delete(let key, let revision):
                top = max(top, revision)
                if layout.certificateName(key) != nil {
                    deletes.append((key, revision))
                } else if key.hasPrefix(layout.challenges) {
                    challenge(key, nil)
                } else if key.hasPrefix(layout.tickets) {
                    ticketsChanged = state.withLock { $0.tickets.removeValue(forKey: key) != nil } || ticketsChanged
                }
            case .progress(let revision):
                top = max(top, revision)
            }
        }
        if ticketsChanged { TicketKeys.shared.install(state.withLock { Array($0.tickets.values) }) }
        if !puts.isEmpty || !deletes.isEmpty {
            let change = changes(puts: puts, deletes: deletes, source: source, fromCache: false, built: built)
            if !change.upserts.isEmpty || !change.removals.isEmpty { sink.submit(change) }
        }
        state.withLock { s in
            if fromStore { s.status.revision = max(s.status.revision, top) }
            s.status.certificates = s.applied.count
        }
    }

    /// The transaction's change for these records: newer ones validated (refusals logged, the
    /// served certificate kept), deletions of applied ones; the local cache follows.
    private func changes(puts: [StoredValue], deletes: [(String, Int64)], source: String, fromCache: Bool,
                         built: [String: CertificateBundle] = [:]) -> CertificateChange {
        var change = CertificateChange(source: source)
        var installed: [StoredValue] = []
        for v in puts {
            guard let name = layout.certificateName(v.key) else { continue }
            // Until the first full read, the revisions applied came from the cache, maybe from an etcd
            // since restored: there only an unchanged revision counts as the same record.
            let newer = state.withLock { s in
                s.everConnected ? (s.applied[v.key] ?? -1) < v.modRevision : s.applied[v.key] != v.modRevision
            }
            guard newer else { continue }
            state.withLock { $0.applied[v.key] = v.modRevision }
            if let bundle = built[v.key] {
                change.upserts.append((id: "cluster:\(name)", bundle: bundle, origin: "cluster"))
                installed.append(v)
                continue
            }
            do throws(ClusterError) {
                // From the cache at start-up, a certificate the start-up index reads serves from it and
                // OpenSSL checks it in the background (as files do); anything else is checked now.
                let (record, bundle) = try CertificateRecord.bundle(v.value, etcdKey: v.key, sealer: sealer, deferred: fromCache)
                change.upserts.append((id: "cluster:\(name)", bundle: bundle, origin: "cluster"))
                installed.append(v)
                if !fromCache {
                    let lag = Date().timeIntervalSince(record.storedAt)
                    state.withLock { $0.status.lastLag = lag; $0.status.lastApplied = Date() }
                    Log.debug("cluster: \(v.key) (serial \(record.serial), stored by \(record.node)) applied at revision \(v.modRevision)")
                }
            } catch {
                state.withLock { $0.status.refused += 1 }
                Metrics.shared.certificateUpdate(source: "cluster", applied: 0, refused: 1)
                Log.error("cluster: record \(v.key) refused: \(error.reason); the certificate already served for it (if any) stays")
            }
        }
        for (key, revision) in deletes {
            guard let name = layout.certificateName(key) else { continue }
            let known = state.withLock { s -> Bool in
                guard let applied = s.applied[key], applied < revision || !s.everConnected else { return false }
                s.applied[key] = nil
                return true
            }
            guard known else { continue }
            change.removals.append("cluster:\(name)")
            cacheWrites.async { [cache] in cache.remove(key) }
            Log.info("cluster: \(name) was deleted from \(layout.certificates); it no longer serves here")
        }
        // The cache follows on its own queue, in order: serving does not wait for 10,000 writes.
        if !fromCache {
            cacheWrites.async { [cache, installed] in
                for v in installed {
                    do { try cache.save(v) } catch { Log.warning("cluster: \(error)") }
                }
            }
        }
        return change
    }

    /// An HTTP-01 or TLS-ALPN-01 answer stored by whichever node ordered it (nil: taken down).
    private func challenge(_ key: String, _ value: [UInt8]?, lease: Int64 = 0) {
        let http01 = layout.challenges + "http-01/", alpn01 = layout.challenges + "tls-alpn-01/"
        if key.hasPrefix(http01) {
            let token = String(key.dropFirst(http01.count))
            if let value { http.present(token: token, keyAuthorization: String(decoding: value, as: UTF8.self)) } else { http.cleanUp(token: token) }
        } else if key.hasPrefix(alpn01) {
            let name = String(key.dropFirst(alpn01.count))
            if let value {
                do {
                    alpn.present(name: name, try ALPNChallengeTable.entry(name: name, keyAuthorization: String(decoding: value, as: UTF8.self)))
                } catch {
                    Log.error("cluster: cannot answer the TLS-ALPN-01 challenge for \(name): \(error)")
                }
            } else {
                alpn.cleanUp(name: name)
            }
        } else {
            return
        }
        state.withLock { s in
            if value != nil { s.challenges.insert(key) } else { s.challenges.remove(key) }
        }
        // Tell the ordering node this one answers now (it waits for every live node before the CA
        // is told to validate), under the answer's own lease so the acknowledgement goes with it.
        // Off the sync thread: the watch must not wait for a write.
        if value != nil, lease != 0 {
            let ack = layout.acks(for: key) + node
            DispatchQueue.global().async { [store] in _ = try? store.put(ack, [], lease: lease) }
        }
    }
}
