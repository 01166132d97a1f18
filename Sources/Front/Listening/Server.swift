import Certificates
import Config
import EventLoop
import Foundation
import Metrics
import TLS

/// The running proxy: one worker per loop, each with its own listening sockets (SO_REUSEPORT).
public final class Server: @unchecked Sendable {  // public methods are called from the main control queue only
    private var workers: [Worker] = []
    private var settings: Settings
    private let store: CertificateStore
    private var accessLog: AccessLog?
    public let challenges: ChallengeTable

    public init(settings: Settings, store: CertificateStore, challenges: ChallengeTable) {
        self.settings = settings; self.store = store; self.challenges = challenges
    }

    /// Binds every listener on every loop, then starts the loops. Throws before serving anything
    /// when an address cannot be bound.
    public func start() throws {
        let options = TLSOptions(minVersion13: settings.tls.minVersion == .tls13, sessionTickets: settings.tls.sessionTickets,
                                 http2: settings.http2.enabled)
        let front = try TLSContext(front: store, options: options)
        // Listeners asking for client certificates get a context of their own.
        let mutual = try settings.tls.clientAuth.map { a in
            try TLSContext(front: store, options: options,
                           clientAuth: try ClientCertificatePolicy(caFile: a.ca, crlFile: a.crl, required: a.required, names: a.names))
        }
        let accessLog = try AccessLog(settings.log.access)
        self.accessLog = accessLog
        let config = RuntimeConfig(settings)
        var addresses: [(SocketAddress, ListenerRole, ProxyHeaderReader?, TLSContext?)] = []
        for (specs, role) in [(settings.listen.https, ListenerRole.https), (settings.listen.http, .redirect)] {
            for a in specs {
                let proxyHeader = settings.listen.proxyProtocolSources(for: a).map(ProxyHeaderReader.init(trusted:))
                var context: TLSContext? = role == .https ? front : nil
                if role == .https, let auth = settings.tls.clientAuth, auth.listeners.isEmpty || auth.listeners.contains(a) { context = mutual }
                addresses.append((try SocketAddress.resolve(host: a.host, port: a.port), role, proxyHeader, context))
            }
        }
        for i in 0..<settings.workers {
            let loop = try EventLoop(index: i)
            let worker = Worker(loop: loop, challenges: challenges, onDemand: store.onDemand, accessLog: accessLog,
                                config: config)
            for (address, role, proxyHeader, context) in addresses {
                worker.listeners.append(try Listener(fd: try Socket.listen(address), role: role, proxyHeader: proxyHeader, tls: context,
                                                     worker: worker))
            }
            workers.append(worker)
        }
        for w in workers { w.loop.start(name: "edgeproxy-loop-\(w.loop.index)") { Metrics.shared.registerCurrentThread() } }
        let https = settings.listen.https.map(\.description).joined(separator: ", ")
        let http = settings.listen.http.map(\.description).joined(separator: ", ")
        Log.info("serving https on \(https)\(http.isEmpty ? "" : ", http on \(http)") with \(workers.count) event loop(s)")
    }

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

    /// Graceful drain: stop accepting, finish in-flight requests, write out the access log, then
    /// `done` (on any thread). Past `deadline` seconds whatever is left is cut.
    public func shutdown(deadline: Double, done: @escaping @Sendable () -> Void) {
        let remaining = Remaining(workers.count) { [accessLog] in
            accessLog?.flush()
            done()
        }
        if workers.isEmpty { done(); return }
        for w in workers {
            w.loop.execute {
                w.drain { remaining.finish() }
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
