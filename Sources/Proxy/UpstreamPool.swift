import Config
import EventLoop
import Metrics
import TLS

/// One origin server as seen from one loop: its idle keep-alive connections, the number in use
/// (least-connections), when it may be tried again after failing (passive health) and what the
/// active health checks say about it (shared by every loop).
public final class UpstreamServer {
    public let spec: SocketAddressSpec
    /// "host:port" for logs, made once.
    public let label: String
    unowned(unsafe) let pool: UpstreamPool   // lives as long as its worker, as the pool does
    let settings: Upstream
    var idle: [UpstreamConnection] = []
    var active = 0
    var failedUntil: UInt64 = 0
    /// Its group was replaced by a reload: connections finishing here close instead of pooling.
    var retired = false
    public let health: ServerHealth
    /// This loop's count of requests sent to the server (summed in `health.requests`).
    let requestsSent: CounterBlock
    /// TLS towards this server (nil: plain, or its context failed), and the last session it gave.
    let tls: UpstreamTLSContext?
    let sessions: TLSSessionCache?

    init(spec: SocketAddressSpec, settings: Upstream, pool: UpstreamPool, tls: UpstreamTLSContext?) {
        self.spec = spec; self.settings = settings; self.pool = pool; self.tls = tls
        sessions = settings.tls?.sessionReuse == true ? TLSSessionCache() : nil
        health = UpstreamHealth.shared.server(upstream: settings.name, spec)
        requestsSent = health.requestCounter(loop: pool.loop.index)
        label = spec.description
        literal = UpstreamAddresses.literal(spec)
    }

    /// An IP literal's address, parsed once.
    private let literal: SocketAddress?

    /// Where to connect now: a literal, or the name's last resolution (never looked up here).
    var address: SocketAddress? { literal ?? UpstreamAddresses.shared.resolved(spec) }

    /// Past `keepalive`, what a burst leaves idle is kept for a moment and trimmed by half every
    /// `UpstreamPool.purgeInterval` (HAProxy's pool-purge-delay): closing at once only to connect
    /// again for the next burst costs a connect, a close and two epoll_ctl per request when
    /// HTTP/2 clients fan out many streams.
    func keepIdle(_ c: UpstreamConnection) {
        // A connection that began with one client's PROXY header is kept for that client only.
        guard settings.keepalive > 0, settings.proxyProtocol == nil || c.owner != nil, !pool.closing, !retired else { c.close(); return }
        active -= 1
        c.idleSince = pool.loop.now
        idle.append(c)
        c.armTimer(seconds: settings.keepaliveTimeout)
        if idle.count > settings.keepalive { pool.purgeSoon() }
    }

    /// Closes half of the idle connections beyond `keepalive` (rounded up), oldest first;
    /// returns whether some excess is left.
    func purgeExcess() -> Bool {
        let excess = idle.count - settings.keepalive
        guard excess > 0 else { return false }
        for c in idle.prefix((excess + 1) / 2) { c.close() }  // close() calls forget(), which removes it
        return idle.count > settings.keepalive
    }

    /// Called by a closing connection: drop it from wherever it is counted.
    func forget(_ c: UpstreamConnection) {
        if let i = idle.firstIndex(where: { $0 === c }) { idle.remove(at: i) } else { active -= 1 }
    }

    /// Marks the server down for its fail_timeout: the balancer skips it until then.
    public func markFailed() { failedUntil = pool.loop.now + UInt64(settings.failTimeout * 1e9) }
}

/// The servers of one upstream group on one loop, with its balancing state.
final class UpstreamGroup {
    let settings: Upstream
    let servers: [UpstreamServer]
    let tls: UpstreamTLSContext?
    var next = 0

    init(settings: Upstream, pool: UpstreamPool) {
        self.settings = settings
        let tls = UpstreamTLSContexts.shared.context(for: settings)
        self.tls = tls
        servers = settings.servers.map { UpstreamServer(spec: $0, settings: settings, pool: pool, tls: tls) }
    }

    /// The next server to try, skipping those in `exclude`, those failing their active health
    /// checks and, while others remain, those marked failed. nil when none is left.
    func pick(excluding exclude: [UpstreamServer], now: UInt64) -> UpstreamServer? {
        if exclude.isEmpty && servers.count == 1 && servers[0].health.isUp { return servers[0] }
        let candidates = servers.filter { s in s.health.isUp && !exclude.contains { $0 === s } }
        let healthy = candidates.filter { $0.failedUntil <= now }
        // When every server left is marked failed, try them anyway: failing fast helps no one if
        // one came back. Not so for active checks: they probe on their own, so a request need not.
        let pool = healthy.isEmpty ? candidates : healthy
        guard !pool.isEmpty else { return nil }
        switch settings.balance {
        case .roundRobin:
            next &+= 1
            return pool[next % pool.count]
        case .leastConnections:
            return pool.min { $0.active < $1.active }
        }
    }
}

/// All upstream connections of one loop: connections never cross loops, so nothing here locks.
public final class UpstreamPool {
    let loop: EventLoop
    private var groups: [String: UpstreamGroup] = [:]
    /// Shared read buffer: bytes are handed to the exchange and never kept here.
    let scratch = UnsafeMutableRawBufferPointer.allocate(byteCount: 64 * 1024, alignment: 16)
    var closing = false
    static let purgeInterval = 1.0
    /// `unowned(unsafe)` (see `ActionTimer`): a weak reference would give the pool a side table,
    /// and every exchange retains and releases the pool (slow path each time). The pool lives as
    /// long as its worker; it disarms the timer when it goes.
    private lazy var purgeTimer = ActionTimer { [unowned(unsafe) self] in self.purge() }

    public init(loop: EventLoop, upstreams: [String: Upstream]) {
        self.loop = loop
        apply(upstreams)
    }

    deinit {
        loop.disarm(purgeTimer)
        scratch.deallocate()
    }

    /// Takes a new configuration: unchanged groups keep their servers and idle connections.
    public func apply(_ upstreams: [String: Upstream]) {
        var next: [String: UpstreamGroup] = [:]
        for (name, settings) in upstreams {
            if let old = groups[name], old.settings == settings, old.tls === UpstreamTLSContexts.shared.current(name) { next[name] = old } else { next[name] = UpstreamGroup(settings: settings, pool: self) }
        }
        for (name, old) in groups where next[name] !== old {
            for s in old.servers {
                s.retired = true
                for c in s.idle { c.close() }
            }
        }
        groups = next
    }

    func purgeSoon() {
        if !purgeTimer.isArmed { loop.arm(purgeTimer, seconds: Self.purgeInterval) }
    }

    private func purge() {
        var left = false
        for g in groups.values { for s in g.servers where s.purgeExcess() { left = true } }
        if left { loop.arm(purgeTimer, seconds: Self.purgeInterval) }
    }

    /// A client connection closed: the upstream connections that opened with its PROXY header go too.
    public func closePrivate(owner: ObjectIdentifier) {
        for g in groups.values where g.settings.proxyProtocol != nil {
            for s in g.servers { for c in s.idle where c.owner == owner { c.close() } }
        }
    }

    /// Closes every idle connection (graceful shutdown).
    public func closeIdle() {
        closing = true
        for g in groups.values { for s in g.servers { for c in s.idle { c.close() } } }
    }

    /// nil when no server is left to try; with nothing excluded, that means every server fails its health checks.
    public func server(for upstream: String, excluding: [UpstreamServer]) -> UpstreamServer? {
        groups[upstream]?.pick(excluding: excluding, now: loop.now)
    }

    /// An idle connection to `server` if one is kept, else a new one (connecting). Throws when the
    /// connect fails at once (e.g. no route); a refused connect shows up later via the delegate.
    /// `owner`: for PROXY-protocol upstreams, the client connection; only its own idle connections
    /// are reused.
    public func connection(to server: UpstreamServer, delegate: UpstreamDelegate, owner: ObjectIdentifier? = nil) throws(SystemError) -> UpstreamConnection {
        server.active += 1
        let reusable = server.settings.proxyProtocol == nil ? server.idle.indices.last : server.idle.lastIndex { $0.owner == owner && owner != nil }
        if let i = reusable {
            let c = server.idle.remove(at: i)
            c.disarmTimer()
            c.delegate = delegate
            c.uses += 1
            server.requestsSent.addSingleWriter(0)
            return c
        }
        do throws(SystemError) {
            guard let address = server.address else {
                throw SystemError("\(server.spec) does not resolve (yet)", errno: 113)  // EHOSTUNREACH
            }
            let fd = try Socket.connect(address)
            let tls: TLSConnection?
            do { tls = try server.startTLS(on: fd) } catch { Socket.close(fd); throw error }
            let c = UpstreamConnection(fd: fd, loop: loop, server: server, tls: tls)
            c.owner = server.settings.proxyProtocol == nil ? nil : owner
            c.delegate = delegate
            c.uses = 1
            do { try loop.register(fd, c) } catch { Socket.close(fd); throw error }
            server.requestsSent.addSingleWriter(0)
            return c
        } catch {
            server.active -= 1
            throw error
        }
    }
}
