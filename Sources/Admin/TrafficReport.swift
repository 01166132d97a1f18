import Foundation
import Glibc
import Metrics

/// `GET /traffic`: the hot-path counters as totals since start, read from the loops' shards
/// (relaxed loads; the loops never see the reader). Rates are differences between two answers
/// over the difference of their `clock_seconds`, which the dashboard computes.
public struct TrafficReport: Encodable, Sendable {
    public struct Handshakes: Encodable, Sendable {
        public var tls13: Int
        public var tls12: Int
        public var failed: Int
        public var aborted: Int
    }

    public struct Requests: Encodable, Sendable {
        public var http1: Int
        public var http2: Int
    }

    public struct Responses: Encodable, Sendable {
        public var s1xx, s2xx, s3xx, s4xx, s5xx: Int
        enum CodingKeys: String, CodingKey { case s1xx = "1xx", s2xx = "2xx", s3xx = "3xx", s4xx = "4xx", s5xx = "5xx" }
    }

    /// Seconds on the node's monotonic clock when the counters were read.
    public var clockSeconds: Double
    public var handshakes: Handshakes
    public var requests: Requests
    public var responses: Responses
    public var upstreamErrors: Int
    public var openConnections: Int

    public init(_ metrics: Metrics) {
        var now = timespec()
        clock_gettime(CLOCK_MONOTONIC, &now)
        clockSeconds = Double(now.tv_sec) + Double(now.tv_nsec / 1_000_000) / 1000
        let t = metrics.totals()
        handshakes = Handshakes(tls13: t[.handshakesTLS13], tls12: t[.handshakesTLS12], failed: t[.handshakesFailed], aborted: t[.handshakesAborted])
        requests = Requests(http1: t[.requestsHTTP1], http2: t[.requestsHTTP2])
        responses = Responses(s1xx: t[.responses1xx], s2xx: t[.responses2xx], s3xx: t[.responses3xx], s4xx: t[.responses4xx],
                              s5xx: t[.responses5xx])
        upstreamErrors = t[.upstreamErrors]
        openConnections = t[.openConnections]
    }
}
