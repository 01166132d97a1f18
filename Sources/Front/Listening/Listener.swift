import Config
import EventLoop
import Glibc
import Logs
import TLS

enum ListenerRole { case https, redirect }

/// A listening socket of one loop: its own, bound with SO_REUSEPORT, or one shared by every loop
/// (inherited from systemd or the process this one replaced), which the `Server` closes.
final class Listener: Pollable {
    let fd: Int32
    let shared: Bool
    let role: ListenerRole
    /// Set when connections here start with a PROXY header from a trusted balancer.
    let proxyHeader: ProxyHeaderReader?
    /// The TLS context of this listener's connections (https only): client certificates differ per listener.
    let tls: TLSContext?
    unowned(unsafe) let worker: Worker   // lives as long as its loop
    private var paused = false
    private var closed = false
    /// Set while accept fails for want of descriptors or memory: logged once, not per attempt.
    private var starved = false
    /// Retries accepting after a starved pause (a connection closing retries sooner).
    private lazy var retry = ActionTimer { [unowned(unsafe) self] in self.retryAccepting() }

    init(fd: Int32, shared: Bool, role: ListenerRole, proxyHeader: ProxyHeaderReader?, tls: TLSContext?,
         worker: Worker) throws(SystemError) {
        self.fd = fd; self.shared = shared; self.role = role; self.proxyHeader = proxyHeader; self.tls = tls; self.worker = worker
        try worker.loop.registerListener(fd, self, shared: shared)
    }

    func ready(_ events: UInt32) {
        while !paused && !closed {
            let accepted: (fd: Int32, peer: SocketAddress)?
            do { accepted = try Socket.accept(fd) } catch {
                if Self.failsOnlyThisConnection(error.errno) { continue }
                // Out of descriptors (EMFILE, ENFILE) or memory: the socket is level-triggered,
                // so waiting for the next readiness would spin. Stop asking for a while, as nginx
                // and HAProxy do; the pending connections wait in the kernel's backlog.
                if !starved { Log.error("accept on \(role): \(error); accepting again in 100 ms or when a connection closes") }
                starved = true
                pause()
                worker.loop.arm(retry, seconds: 0.1)
                return
            }
            guard let (client, peer) = accepted else { return }
            starved = false
            do {
                let c = try ClientTransport(fd: client, peer: peer, tls: tls, proxyHeader: proxyHeader, worker: worker)
                worker.opened(c)
                c.start()
            } catch {
                Log.error("connection from \(peer): \(error)")
                Socket.close(client)
            }
        }
    }

    /// Errors accept(2) reports about the connection it was taking, not the listener: the next
    /// connection may be accepted at once (accept(2), "Error handling").
    static func failsOnlyThisConnection(_ errno: Int32) -> Bool {
        switch errno {
        case ECONNABORTED, EPROTO, EPERM, ENETDOWN, ENOPROTOOPT, EHOSTDOWN, ENONET, EHOSTUNREACH, EOPNOTSUPP, ENETUNREACH: true
        default: false
        }
    }

    private func retryAccepting() {
        if worker.connections.count < worker.limits.maxConnectionsPerWorker { resume() }
    }

    func pause() {
        guard !paused, !closed else { return }
        paused = true
        worker.loop.unregister(fd)
    }

    func resume() {
        guard paused, !closed else { return }
        paused = false
        try? worker.loop.registerListener(fd, self, shared: shared)
    }

    func close() {
        guard !closed else { return }
        closed = true
        worker.loop.disarm(retry)
        worker.loop.unregister(fd)
        if !shared { Socket.close(fd) }
    }
}
