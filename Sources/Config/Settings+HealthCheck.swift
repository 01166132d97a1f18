/// Active health checks of an upstream's servers: an HTTP request to each server every
/// `interval`, as HAProxy's `option httpchk` with `inter`/`rise`/`fall` and Envoy's
/// `health_checks` do. A server failing `fall` checks in a row receives no requests until it
/// passes `rise` in a row.
public struct HealthCheck: Sendable, Equatable {
    /// Request target, starting with "/" (a query is allowed).
    public var path: String
    /// GET, HEAD or OPTIONS.
    public var method = "GET"
    /// Host header; nil: the server's address ("127.0.0.1:9000").
    public var host: String?
    /// Statuses that pass.
    public var expect: ClosedRange<Int> = 200...399
    /// Seconds between the end of one check and the start of the next (plus jitter).
    public var interval: Double = 5
    /// A check that takes longer fails.
    public var timeout: Double = 2
    public var rise = 2
    public var fall = 3
    /// Up to this many seconds are added to each wait at random, so checks from several
    /// servers and proxies do not fall in step.
    public var jitter: Double = 0
    public init(path: String) { self.path = path }

    /// `expect` as the configuration spells it: "200" or "200-399".
    public var expectText: String {
        expect.count == 1 ? "\(expect.lowerBound)" : "\(expect.lowerBound)-\(expect.upperBound)"
    }
}
