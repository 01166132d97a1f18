import Synchronization

/// Process-wide counters for `GET /metrics`. Hot-path updates are one relaxed atomic add each
/// (handshakes, SNI outcomes, requests, connections); reload bookkeeping is rare and takes a lock.
/// Values are read only when the endpoint is scraped, so relaxed ordering is enough.
public final class Metrics: Sendable {
    public static let shared = Metrics()

    public let handshakesTLS13 = Atomic<Int>(0)
    public let handshakesTLS12 = Atomic<Int>(0)
    public let handshakesFailed = Atomic<Int>(0)
    /// The peer went away before the handshake finished (no TLS error to blame).
    public let handshakesAborted = Atomic<Int>(0)

    public let sniExact = Atomic<Int>(0)
    public let sniWildcard = Atomic<Int>(0)
    public let sniDefault = Atomic<Int>(0)
    public let sniRejected = Atomic<Int>(0)
    /// Handshakes answered with a TLS-ALPN-01 challenge certificate (the CA's validator).
    public let acmeChallengeHandshakes = Atomic<Int>(0)

    public let responses1xx = Atomic<Int>(0)
    public let responses2xx = Atomic<Int>(0)
    public let responses3xx = Atomic<Int>(0)
    public let responses4xx = Atomic<Int>(0)
    public let responses5xx = Atomic<Int>(0)
    /// Requests answered, by the protocol the client spoke.
    public let requestsHTTP1 = Atomic<Int>(0)
    public let requestsHTTP2 = Atomic<Int>(0)

    public let upstreamErrors = Atomic<Int>(0)
    public let openConnections = Atomic<Int>(0)

    /// PROXY headers read: with a client address, LOCAL/UNKNOWN (the balancer's own), and the
    /// connections closed for an untrusted source or a missing or malformed header.
    public let proxyHeadersAccepted = Atomic<Int>(0)
    public let proxyHeadersLocal = Atomic<Int>(0)
    public let proxyHeadersUntrusted = Atomic<Int>(0)
    public let proxyHeadersInvalid = Atomic<Int>(0)

    /// Certificate updates applied / refused, by source ("file", "signal", "api", "startup").
    private let reloads = Mutex<[String: Int]>([:])
    private let refusals = Mutex<[String: Int]>([:])

    public init() {}

    @inlinable public func handshakeCompleted(version: String) {
        if version == "TLSv1.3" {
            handshakesTLS13.wrappingAdd(1, ordering: .relaxed)
        } else {
            handshakesTLS12.wrappingAdd(1, ordering: .relaxed)
        }
    }

    public func proxyHeaderAccepted(local: Bool) {
        if local { proxyHeadersLocal.wrappingAdd(1, ordering: .relaxed) } else { proxyHeadersAccepted.wrappingAdd(1, ordering: .relaxed) }
    }
    public func proxyHeaderRefused(untrusted: Bool) {
        if untrusted { proxyHeadersUntrusted.wrappingAdd(1, ordering: .relaxed) } else { proxyHeadersInvalid.wrappingAdd(1, ordering: .relaxed) }
    }
    @inlinable public func handshakeFailed() { handshakesFailed.wrappingAdd(1, ordering: .relaxed) }
    @inlinable public func handshakeAborted() { handshakesAborted.wrappingAdd(1, ordering: .relaxed) }
    @inlinable public func upstreamError() { upstreamErrors.wrappingAdd(1, ordering: .relaxed) }
    @inlinable public func connectionOpened() { openConnections.wrappingAdd(1, ordering: .relaxed) }
    @inlinable public func connectionClosed() { openConnections.wrappingSubtract(1, ordering: .relaxed) }

    @inlinable public func response(status: Int, http2: Bool) {
        if http2 {
            requestsHTTP2.wrappingAdd(1, ordering: .relaxed)
        } else {
            requestsHTTP1.wrappingAdd(1, ordering: .relaxed)
        }
        switch status {
        case ..<200: responses1xx.wrappingAdd(1, ordering: .relaxed)
        case ..<300: responses2xx.wrappingAdd(1, ordering: .relaxed)
        case ..<400: responses3xx.wrappingAdd(1, ordering: .relaxed)
        case ..<500: responses4xx.wrappingAdd(1, ordering: .relaxed)
        default: responses5xx.wrappingAdd(1, ordering: .relaxed)
        }
    }

    public func certificateUpdate(source: String, applied: Int, refused: Int) {
        if applied > 0 { reloads.withLock { $0[source, default: 0] += applied } }
        if refused > 0 { refusals.withLock { $0[source, default: 0] += refused } }
    }

    public var certificateReloads: [String: Int] { reloads.withLock { $0 } }
    public var certificateRefusals: [String: Int] { refusals.withLock { $0 } }
}
