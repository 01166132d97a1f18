import Certificates
import Config
import EventLoop
import Foundation
import Logs
import Metrics
import TLS

/// A listening socket this process did not bind: passed by systemd (socket activation) or by the
/// process it replaces (binary upgrade). `name` says where it came from, for messages.
public struct InheritedSocket: Sendable {
    public let fd: Int32
    public let address: SocketAddress
    public let name: String
    public init(fd: Int32, address: SocketAddress, name: String) { self.fd = fd; self.address = address; self.name = name }
}

/// The running proxy: one worker per loop, each with its own listening sockets (SO_REUSEPORT), or
/// all of them accepting from the same inherited sockets (EPOLLEXCLUSIVE wakes one loop per connection).
public final class Server: @unchecked Sendable {  // public methods are called from the main control queue only
    private var workers: [Worker] = []
    /// Every listening socket, each once (what a binary upgrade hands over), and the inherited ones,
    /// which the loops share and the server closes once every loop stopped accepting from them.
    public private(set) var listeningSockets: [Int32] = []
    private var sharedSockets: [Int32] = []
    private let heartbeats = Heartbeats()
    private var settings: Settings
    private let store: CertificateStore
    private var accessLog: AccessLog?
    public let challenges: ChallengeTable

    public init(settings: Settings, store: CertificateStore, challenges: ChallengeTable) {
        self.settings = settings; self.store = store; self.challenges = challenges
    }

    /// Binds every listener on every loop, then starts the loops. Throws before serving anything
    /// when an address cannot be bound. A configured address with `inherited` sockets of the same
    /// address accepts from those instead (every loop from every one of them, so none is left with
    /// connections nobody accepts); `inherited` sockets matching no configured address are an error
    /// when `unmatchedIsError` (systemd passed something the configuration does not name), else closed
    /// (an address the new configuration of a binary upgrade dropped).
    public func start(inherited: [InheritedSocket] = [], unmatchedIsError: Bool = true) throws {
        let options = TLSOptions(minVersion13: settings.tls.minVersion == .tls13, sessionTickets: settings.tls.sessionTickets,
                                 http2: settings.http2.enabled)
        // Listeners asking for client certificates get contexts of their own.
        let clientAuth = try settings.tls.clientAuth.map { a in
            try ClientCertificatePolicy(caFile: a.ca, crlFile: a.crl, required: a.required, names: a.names)
        }
        let accessLog = try AccessLog(settings.log.access, format: settings.log.format, maxQueuedBytes: settings.log.accessQueueBytes)
        self.accessLog = accessLog
        let config = RuntimeConfig(settings)
        var addresses: [(SocketAddress, ListenerRole, ProxyHeaderReader?, TLSKind)] = []
        for (specs, role) in [(settings.listen.https, ListenerRole.https), (settings.listen.http, .redirect)] {
            for a in specs {
                let proxyHeader = settings.listen.proxyProtocolSources(for: a).map(ProxyHeaderReader.init(trusted:))
                var kind = role == .https ? TLSKind.front : .none
                if role == .https, let auth = settings.tls.clientAuth, auth.listeners.isEmpty || auth.listeners.contains(a) { kind = .mutual }
                addresses.append((try SocketAddress.resolve(host: a.host, port: a.port), role, proxyHeader, kind))
            }
        }
        let (byAddress, unmatched) = Self.match(addresses.map(\.0), inherited)
        if let first = unmatched.first, unmatchedIsError {
            throw ServerError("inherited-socket-unmatched", "\(first.name) is a listening socket on \(first.address), which is not in listen.https or listen.http: "
                              + "add the address to the configuration, or stop passing the socket")
        }
        for u in unmatched {
            Log.info("closing \(u.name) on \(u.address): no longer in the configuration")
            Socket.close(u.fd)
        }
        sharedSockets = inherited.filter { i in !unmatched.contains { $0.fd == i.fd } }.map(\.fd)
        listeningSockets = sharedSockets
        for i in 0..<settings.workers {
            let loop = try EventLoop(index: i)
            let worker = Worker(loop: loop, challenges: challenges, onDemand: store.onDemand, alpnLookups: store.alpnLookups,
                                accessLog: accessLog, config: config)
            // Each loop its own contexts: what one carries (TLSContext.Carried) is its loop's alone.
            let front = try TLSContext(front: store, options: options)
            let mutual = try clientAuth.map { try TLSContext(front: store, options: options, clientAuth: $0) }
            for ((address, role, proxyHeader, kind), passed) in zip(addresses, byAddress) {
                let context = switch kind { case .none: nil as TLSContext?; case .front: front; case .mutual: mutual }
                let fds = passed.isEmpty ? [try Socket.listen(address)] : passed
                if passed.isEmpty { listeningSockets += fds }
                for fd in fds {
                    worker.listeners.append(try Listener(fd: fd, shared: !passed.isEmpty, role: role, proxyHeader: proxyHeader,
                                                         tls: context, worker: worker))
                }
            }
            workers.append(worker)
        }
        heartbeats.reset(workers.count)
        for w in workers { w.loop.start(name: "edgeproxy-loop-\(w.loop.index)") { Metrics.shared.registerCurrentThread() } }
        let https = settings.listen.https.map(\.description).joined(separator: ", ")
        let http = settings.listen.http.map(\.description).joined(separator: ", ")
        Log.info("serving https on \(https)\(http.isEmpty ? "" : ", http on \(http)") with \(workers.count) event loop(s)")
    }

    /// What the loops and listeners run with: a reload changes neither (`apply`), whatever the
    /// file says now. Read on the thread that applies reloads.
    public var serving: (workers: Int, listen: Listen) { (settings.workers, settings.listen) }

    /// Routes, upstreams, limits and timeouts from a reloaded configuration. Connections keep
    /// running; each request uses the configuration current when it started.
    public func apply(_ new: Settings) {
        if new.listen != settings.listen || new.workers != settings.workers || new.tls.sessionTickets != settings.tls.sessionTickets
            || new.tls.minVersion != settings.tls.minVersion || new.log != settings.log || new.tls.clientAuth != settings.tls.clientAuth {
            Log.warning("listeners, workers, TLS protocol settings and logs change only on restart; the rest was applied")
        }
        var kept = new
        kept.listen = settings.listen; kept.workers = settings.workers; kept.log = settings.log
        settings = kept
        let config = RuntimeConfig(kept)
        for w in workers { w.loop.execute { w.apply(config) } }
    }

    /// Which of a loop's TLS contexts a listener uses.
    private enum TLSKind { case none, front, mutual }

    /// Sockets inherited by index: for each configured address, the inherited sockets bound to it;
    /// and those matching none.
    static func match(_ configured: [SocketAddress], _ inherited: [InheritedSocket]) -> ([[Int32]], [InheritedSocket]) {
        var byAddress = [[Int32]](repeating: [], count: configured.count)
        var unmatched: [InheritedSocket] = []
        for i in inherited {
            if let at = configured.firstIndex(where: { $0.sameEndpoint(as: i.address) }) { byAddress[at].append(i.fd) } else { unmatched.append(i) }
        }
        return (byAddress, unmatched)
    }

    /// Reopens the access log file (SIGUSR1, after logrotate renamed it).
    public func reopenLogs() { accessLog?.reopen() }

    /// For the watchdog: true when every loop ran the probe sent on the previous call (so none is
    /// stuck), and sends the next one. The first call only sends.
    public func loopsAnswered() -> Bool {
        let (answered, probe) = heartbeats.check()
        for (i, w) in workers.enumerated() { w.loop.execute { [heartbeats] in heartbeats.answer(loop: i, probe) } }
        return answered
    }

    /// Graceful drain: stop accepting, finish in-flight requests, write out the access log, then
    /// `done` (on any thread). Past `deadline` seconds whatever is left is cut.
    public func shutdown(deadline: Double, done: @escaping @Sendable () -> Void) {
        let remaining = Remaining(workers.count) { [accessLog] in
            accessLog?.flush()
            done()
        }
        // Shared sockets close once no loop's epoll still watches them (an event for a closed one would be a bug).
        let stoppedAccepting = Remaining(workers.count) { [sharedSockets] in for fd in sharedSockets { Socket.close(fd) } }
        if workers.isEmpty { done(); return }
        for w in workers {
            w.loop.execute {
                w.drain { remaining.finish() }
                stoppedAccepting.finish()
            }
        }
        DispatchQueue.global().asyncAfter(deadline: .now() + deadline) { [workers] in
            for w in workers { w.loop.execute { w.closeAll() } }
        }
    }
}

private final class Remaining: @unchecked Sendable {  // `count` is guarded by `lock`
    private let lock = NSLock()
    private var count: Int
    private let done: @Sendable () -> Void
    init(_ count: Int, _ done: @escaping @Sendable () -> Void) { self.count = count; self.done = done }
    func finish() {
        lock.lock()
        count -= 1
        let last = count == 0
        lock.unlock()
        if last { done() }
    }
}

/// The watchdog's probes: the number last sent, and per loop the last one it ran.
private final class Heartbeats: @unchecked Sendable {  // guarded by `lock`
    private let lock = NSLock()
    private var sent: UInt64 = 0
    private var answered: [UInt64] = []

    func reset(_ loops: Int) { lock.withLock { answered = Array(repeating: 0, count: loops); sent = 0 } }

    func check() -> (answered: Bool, next: UInt64) {
        lock.withLock {
            let ok = answered.allSatisfy { $0 == sent }
            sent += 1
            return (ok, sent)
        }
    }

    func answer(loop: Int, _ probe: UInt64) { lock.withLock { answered[loop] = max(answered[loop], probe) } }
}

/// Why the server could not start on what it was given; `code` is stable, `reason` says what to do.
public struct ServerError: Error, CustomStringConvertible {
    public let code: String
    public let reason: String
    init(_ code: String, _ reason: String) { self.code = code; self.reason = reason }
    public var description: String { "\(reason) [\(code)]" }
}
