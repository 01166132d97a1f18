import Config
import Synchronization

/// What every loop's pool shares about one upstream server: whether active health checks allow
/// it (written by the checker, read by each request choosing a server) and how many requests it
/// was sent. Both are single relaxed atomics, so the request path takes no lock.
public final class ServerHealth: Sendable {
    public let upstream: String
    public let server: SocketAddressSpec
    private let allowed = Atomic<Bool>(true)
    private let sent = Atomic<Int>(0)

    init(upstream: String, server: SocketAddressSpec) { self.upstream = upstream; self.server = server }

    /// False while the server fails its active checks: the balancer skips it.
    @inline(__always) public var isUp: Bool { allowed.load(ordering: .relaxed) }
    public func publish(up: Bool) { allowed.store(up, ordering: .relaxed) }

    /// Requests handed a connection to this server, from every loop.
    public var requests: Int { sent.load(ordering: .relaxed) }
    @inline(__always) func requestSent() { sent.wrappingAdd(1, ordering: .relaxed) }
}

/// Every upstream server's `ServerHealth`, by upstream name and address. Process-wide like
/// `Metrics.shared`: each loop's pool finds the same objects the checker publishes to. Looked up
/// when a pool builds a group (start, reload) and by the admin API, never per request.
public final class UpstreamHealth: Sendable {
    public static let shared = UpstreamHealth()
    private let table = Mutex<[String: [ServerHealth]]>([:])

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
