import Config
import Metrics
import Locking
import Synchronization

/// What every loop's pool shares about one upstream server: whether active health checks allow
/// it (written by the checker, read by each request choosing a server: a line written only by
/// the checker) and how many requests it was sent, counted per loop so a request writes only its
/// own loop's counter (summed when read, by the admin API and metrics).
public final class ServerHealth: Sendable {
    public let upstream: String
    public let server: SocketAddressSpec
    private let allowed = Atomic<Bool>(true)
    /// By loop index; made when a loop's pool first builds this server (start, reload), kept for
    /// good so a rebuilt group keeps counting where it left off.
    private let sent = Locked<[Int: CounterBlock]>([:])

    init(upstream: String, server: SocketAddressSpec) { self.upstream = upstream; self.server = server }

    /// False while the server fails its active checks: the balancer skips it.
    @inline(__always) public var isUp: Bool { allowed.load(ordering: .relaxed) }
    public func publish(up: Bool) { allowed.store(up, ordering: .relaxed) }

    /// Requests handed a connection to this server, from every loop.
    public var requests: Int { sent.withLock { $0.values.reduce(0) { $0 + $1.value(0) } } }

    /// The counter loop `index` bumps for each request to this server (one thread per index: its
    /// own cache lines, written with `addSingleWriter(0)`).
    func requestCounter(loop index: Int) -> CounterBlock {
        sent.withLock { counters in
            if let known = counters[index] { return known }
            let made = CounterBlock(count: 1)
            counters[index] = made
            return made
        }
    }
}

/// Every upstream server's `ServerHealth`, by upstream name and address. Process-wide like
/// `Metrics.shared`: each loop's pool finds the same objects the checker publishes to. Looked up
/// when a pool builds a group (start, reload) and by the admin API, never per request.
public final class UpstreamHealth: Sendable {
    public static let shared = UpstreamHealth()
    private let table = Locked<[String: [ServerHealth]]>([:])

    public init() {}

    /// Takes a new configuration: a server kept under the same upstream keeps its object (state
    /// and counters); the others are dropped. Call before the loops take the configuration.
    @discardableResult
    public func apply(_ upstreams: [String: Upstream]) -> [ServerHealth] {
        table.withLock { table in
            var next: [String: [ServerHealth]] = [:]
            for (name, upstream) in upstreams {
                var servers: [ServerHealth] = []
                for spec in upstream.servers where !servers.contains(where: { $0.server == spec }) {
                    servers.append(table[name]?.first { $0.server == spec } ?? ServerHealth(upstream: name, server: spec))
                }
                next[name] = servers
            }
            table = next
            return Self.ordered(next)
        }
    }

    /// The shared object for this server, made (and kept) when missing: a pool built before
    /// `apply` still ends up with the object the checker publishes to.
    public func server(upstream: String, _ spec: SocketAddressSpec) -> ServerHealth {
        table.withLock { table in
            if let known = table[upstream]?.first(where: { $0.server == spec }) { return known }
            let made = ServerHealth(upstream: upstream, server: spec)
            table[upstream, default: []].append(made)
            return made
        }
    }

    /// By upstream name, servers in configuration order.
    public var all: [ServerHealth] { table.withLock { Self.ordered($0) } }

    private static func ordered(_ table: [String: [ServerHealth]]) -> [ServerHealth] {
        table.sorted { $0.key < $1.key }.flatMap(\.value)
    }
}
