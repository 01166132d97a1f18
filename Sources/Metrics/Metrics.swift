import CSystem
import Locking
import Synchronization

/// Counters for `GET /metrics`. Each event loop registers a shard of its own at start
/// (`registerCurrentThread`), so a hot-path event is a plain load and store on a cache line no
/// other thread writes; threads without a shard (control threads, tests) share one fallback shard
/// updated with atomic adds. A scrape sums every shard. Reload bookkeeping is rare and takes a lock.
public final class Metrics: Sendable {
    public static let shared = Metrics()

    /// What is counted. All are sums over shards; `openConnections` is a gauge kept as +1/-1 per
    /// shard, so only the sum is meaningful (a shard may go negative).
    public enum Counter: Int, CaseIterable, Sendable {
        case handshakesTLS13, handshakesTLS12, handshakesFailed
        /// The peer went away before the handshake finished (no TLS error to blame).
        case handshakesAborted
        case sniExact, sniWildcard, sniDefault, sniRejected
        /// Handshakes answered with a TLS-ALPN-01 challenge certificate (the CA's validator).
        case acmeChallengeHandshakes
        case responses1xx, responses2xx, responses3xx, responses4xx, responses5xx
        /// Requests answered, by the protocol the client spoke.
        case requestsHTTP1, requestsHTTP2
        case upstreamErrors, openConnections
        /// PROXY headers read: with a client address, LOCAL/UNKNOWN (the balancer's own), and the
        /// connections closed for an untrusted source or a missing or malformed header.
        case proxyHeadersAccepted, proxyHeadersLocal, proxyHeadersUntrusted, proxyHeadersInvalid
        /// Access-log lines dropped because the writer fell behind.
        case accessLogDropped
    }

    /// Never reused, unlike an object address: tells this instance's shards from another's.
    private static let instances = Atomic<Int>(0)
    @usableFromInline let id: Int
    @usableFromInline let fallback: CounterBlock
    private let shards = Locked<[CounterBlock]>([])

    /// Certificate updates applied / refused, by source ("file", "signal", "api", "startup").
    private let reloads = Locked<[String: Int]>([:])
    private let refusals = Locked<[String: Int]>([:])

    public init() {
        id = Self.instances.wrappingAdd(1, ordering: .relaxed).newValue
        fallback = CounterBlock(count: Counter.allCases.count, owner: id)
    }

    /// Gives the calling thread a shard of its own; its events stop touching shared lines. Call
    /// once on each event loop's thread, before it serves. The thread keeps the shard for its life.
    public func registerCurrentThread() {
        let slot = Int32(CSystem_slotMetrics)
        if let raw = CSystem_threadSlot(slot) {
            if Unmanaged<CounterBlock>.fromOpaque(raw).takeUnretainedValue().owner == id { return }
            Unmanaged<CounterBlock>.fromOpaque(raw).release()
        }
        let shard = CounterBlock(count: Counter.allCases.count, owner: id)
        shards.withLock { $0.append(shard) }
        CSystem_setThreadSlot(slot, Unmanaged.passRetained(shard).toOpaque())
    }

    /// Adds `n` to `counter` in the calling thread's shard, or the shared one.
    @inlinable public func count(_ counter: Counter, _ n: Int = 1) {
        if let raw = CSystem_threadSlot(Int32(CSystem_slotMetrics)) {
            // Guaranteed: the slot holds a reference, so no retain/release touches the shard.
            let mine = Unmanaged<CounterBlock>.fromOpaque(raw)._withUnsafeGuaranteedRef { shard in
                guard shard.owner == id else { return false }
                shard.addSingleWriter(counter.rawValue, n)
                return true
            }
            if mine { return }
        }
        fallback.add(counter.rawValue, n)
    }

    /// Every shard summed. Each counter is read once, relaxed: a scrape racing events may be a
    /// few events behind on some counters, never torn.
    public func totals() -> Totals {
        var sum = fallback.values()
        for shard in shards.withLock({ $0 }) {
            for (i, v) in shard.values().enumerated() { sum[i] &+= v }
        }
        return Totals(values: sum)
    }

    public struct Totals: Sendable {
        let values: [Int]
        public subscript(_ counter: Counter) -> Int { values[counter.rawValue] }
    }

    @inlinable public func handshakeCompleted(tls13: Bool) {
        count(tls13 ? .handshakesTLS13 : .handshakesTLS12)
    }

    public func proxyHeaderAccepted(local: Bool) { count(local ? .proxyHeadersLocal : .proxyHeadersAccepted) }
    public func proxyHeaderRefused(untrusted: Bool) { count(untrusted ? .proxyHeadersUntrusted : .proxyHeadersInvalid) }
    @inlinable public func handshakeFailed() { count(.handshakesFailed) }
    @inlinable public func handshakeAborted() { count(.handshakesAborted) }
    @inlinable public func upstreamError() { count(.upstreamErrors) }
    @inlinable public func connectionOpened() { count(.openConnections) }
    @inlinable public func connectionClosed() { count(.openConnections, -1) }

    @inlinable public func response(status: Int, http2: Bool) {
        count(http2 ? .requestsHTTP2 : .requestsHTTP1)
        switch status {
        case ..<200: count(.responses1xx)
        case ..<300: count(.responses2xx)
        case ..<400: count(.responses3xx)
        case ..<500: count(.responses4xx)
        default: count(.responses5xx)
        }
    }

    public func certificateUpdate(source: String, applied: Int, refused: Int) {
        if applied > 0 { reloads.withLock { $0[source, default: 0] += applied } }
        if refused > 0 { refusals.withLock { $0[source, default: 0] += refused } }
    }

    public var certificateReloads: [String: Int] { reloads.withLock { $0 } }
    public var certificateRefusals: [String: Int] { refusals.withLock { $0 } }
}
