import Config
import EventLoop
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

    init(fd: Int32, shared: Bool, role: ListenerRole, proxyHeader: ProxyHeaderReader?, tls: TLSContext?,
         worker: Worker) throws(SystemError) {
        self.fd = fd; self.shared = shared; self.role = role; self.proxyHeader = proxyHeader; self.tls = tls; self.worker = worker
        try worker.loop.registerListener(fd, self, shared: shared)
    }

    func ready(_ events: UInt32) {
        while !paused && !closed {
            let accepted: (fd: Int32, peer: SocketAddress)?
            do { accepted = try Socket.accept(fd) } catch {
                // EMFILE/ENFILE/ECONNABORTED: log and wait for the next readiness.
                Log.error("accept on \(role): \(error)")
                return
            }
            guard let (client, peer) = accepted else { return }
            Socket.setNoDelay(client)
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
        worker.loop.unregister(fd)
        if !shared { Socket.close(fd) }
    }
}
