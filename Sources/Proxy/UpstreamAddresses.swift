import Config
import Dispatch
import EventLoop
import Glibc
import Locking
import Logs

/// Upstream servers' addresses, resolved off the event loops: a loop never calls getaddrinfo. IP
/// literals are parsed at once; names are resolved when a configuration is applied (on the
/// control thread, before the loops take it) and again every `resolve_interval` in the
/// background. A name that stops resolving keeps its last address; one never resolved fails its
/// connects with a clear reason. Process-wide like `UpstreamHealth`: every loop reads the same table.
public final class UpstreamAddresses: @unchecked Sendable {  // `table` is behind a lock; the rest is touched on `queue` only
    public static let shared = UpstreamAddresses()
    /// The name lookup (getaddrinfo by default; tests replace it).
    public typealias Resolve = @Sendable (_ host: String, _ port: UInt16) -> SocketAddress?

    private let table = Locked<[SocketAddressSpec: SocketAddress]>([:])
    private let lookup: Resolve
    private let queue = DispatchQueue(label: "edgeproxy.resolver", qos: .utility)
    private var names: [SocketAddressSpec: Double] = [:]
    private var timers: [Double: DispatchSourceTimer] = [:]

    public init(resolve: @escaping Resolve = { host, port in try? SocketAddress.resolve(host: host, port: port) }) {
        lookup = resolve
    }

    /// The address to connect to now; nil when the name never resolved.
    public func address(_ spec: SocketAddressSpec) -> SocketAddress? {
        Self.literal(spec) ?? resolved(spec)
    }

    /// A name's last resolution (servers keep their literal themselves).
    func resolved(_ spec: SocketAddressSpec) -> SocketAddress? { table.withLock { $0[spec] } }

    /// Resolves the names of `upstreams` not known yet (blocking; call off the loops), then keeps
    /// each re-resolved every `resolve_interval`.
    public func apply(_ upstreams: [String: Upstream]) {
        var wanted: [SocketAddressSpec: Double] = [:]
        for upstream in upstreams.values {
            for spec in upstream.servers where Self.literal(spec) == nil {
                wanted[spec] = min(wanted[spec] ?? .infinity, upstream.resolveInterval)
            }
        }
        let unknown = table.withLock { t in wanted.keys.filter { t[$0] == nil } }
        for spec in unknown { refresh(spec) }
        queue.sync {
            names = wanted
            for (interval, timer) in timers where !wanted.values.contains(interval) {
                timer.cancel()
                timers[interval] = nil
            }
            for interval in Set(wanted.values) where timers[interval] == nil {
                let timer = DispatchSource.makeTimerSource(queue: queue)
                timer.schedule(deadline: .now() + interval, repeating: interval, leeway: .milliseconds(Int(interval * 100)))
                timer.setEventHandler { [weak self] in self?.refreshAll(every: interval) }
                timer.resume()
                timers[interval] = timer
            }
        }
        table.withLock { t in t = t.filter { key, _ in wanted[key] != nil } }
    }

    /// Looks `spec` up again; a failure keeps what it resolved to before.
    public func refresh(_ spec: SocketAddressSpec) {
        guard let found = lookup(spec.host, spec.port) else {
            let known = table.withLock { $0[spec] }
            Log.warning("upstream server \(spec): the name does not resolve"
                        + (known.map { "; keeping \($0.host)" } ?? "; connects to it fail until it does"))
            return
        }
        let before = table.withLock { t -> SocketAddress? in
            let old = t[spec]
            t[spec] = found
            return old
        }
        if let before, before.host != found.host { Log.info("upstream server \(spec) now resolves to \(found.host)") }
    }

    private func refreshAll(every interval: Double) {
        for (spec, i) in names where i == interval { refresh(spec) }
    }

    static func literal(_ spec: SocketAddressSpec) -> SocketAddress? {
        var v4 = in_addr(), v6 = in6_addr()
        if inet_pton(AF_INET, spec.host, &v4) == 1 { return SocketAddress(rawAddress: withUnsafeBytes(of: &v4) { Array($0) }, port: spec.port) }
        if inet_pton(AF_INET6, spec.host, &v6) == 1 { return SocketAddress(rawAddress: withUnsafeBytes(of: &v6) { Array($0) }, port: spec.port) }
        return nil
    }
}
