import Certificates
import Config
import EventLoop
import Logs
import Metrics
import Proxy
import TLS

/// The transport of one client connection, the first stages of its pipeline: the socket, the
/// PROXY header a trusted balancer sends ahead of it, the TLS handshake (SNI picks the
/// certificate), then ALPN dispatch to the protocol front that owns everything after
/// (`HTTP1Front` or `HTTP2Front`). It moves bytes both ways, keeps what the front did not consume
/// yet, and is the connection's timer (see `Timer`) and owns its end.
final class ClientTransport: Timer, Pollable {
    private enum Phase { case proxyHeader, handshake, open, closed }

    let fd: Int32
    /// The client: the socket's peer, or the address a trusted PROXY header gave.
    private(set) var peer: SocketAddress
    let role: ListenerRole
    /// The worker lives as long as its loop: no reference counting on the way to it.
    unowned(unsafe) let worker: Worker
    let tls: TLSConnection?
    private var phase: Phase
    /// Set on listeners that expect a PROXY header ahead of the connection's own bytes.
    private let proxyHeader: ProxyHeaderReader?
    /// The handshake is held while a certificate for its name is obtained (on-demand TLS).
    private var heldForCertificate = false
    /// The listener's client-certificate policy: requests for a name it covers must come over a
    /// handshake that was asked for a certificate.
    let clientAuth: ClientCertificatePolicy?
    /// What speaks HTTP once the transport is up, chosen by ALPN.
    private var front: ProtocolFront?
    /// HTTP/1 was chosen and its front is made with the first bytes: an idle connection (most of
    /// them, between a browser's bursts) holds no request state, as nginx's holds no request.
    private var http1Deferred = false

    /// Its place in `Worker.connections`; -1 when not there (not opened yet, or closed).
    var openIndex = -1
    /// The connection's timer: the connection itself, cancelled in `close`.
    var timer: Timer { self }
    /// The client's address as X-Forwarded-For shows it, formatted once per connection.
    private(set) lazy var clientHost = peer.host
    /// The client's verified certificate (mutual TLS), read once after the handshake.
    private(set) lazy var clientIdentity: ClientIdentity? = tls?.clientCertificate
    /// The address the client connected to (a PROXY header's destination when there was one):
    /// asked of the kernel only for upstreams that send a PROXY header themselves.
    lazy var local: SocketAddress? = Socket.localAddress(fd)
    /// Set once a request used a PROXY-protocol upstream: its connections are this client's own.
    var hasPrivateUpstreams = false

    /// Received bytes the front did not consume yet (a partial head, pipelined requests).
    private var pending: [UInt8] = []
    /// Bytes for the client not written yet; fronts append, then `flush`.
    var output: [UInt8] = []
    private var outputSent = 0
    private var readable = true
    /// The peer's FIN (or an error) was reported: read until it shows, whatever a read returned.
    private var hungUp = false
    private(set) var readingPaused = false
    private var closeWhenFlushed = false
    private(set) var draining = false
    /// Whether the client sent anything after the handshake: until then it is not idle but new.
    private var delivered = false
    /// Whether writing re-arms the idle timer (not in a tunnel, whose peers may idle as they like).
    var writesRearmIdle = true

    /// `tls`: the listener's context (https), nil for the port-80 role.
    init(fd: Int32, peer: SocketAddress, tls context: TLSContext?, proxyHeader: ProxyHeaderReader?, worker: Worker) throws {
        self.fd = fd; self.peer = peer; self.role = context == nil ? .redirect : .https; self.proxyHeader = proxyHeader; self.worker = worker
        clientAuth = context?.clientAuth
        tls = try context.map { context throws(TLSError) in try TLSConnection(front: context, fd: fd) }
        phase = proxyHeader != nil ? .proxyHeader : tls != nil ? .handshake : .open
        super.init()
        try worker.loop.register(fd, self)
    }

    func start() {
        let t = worker.timeouts
        if phase == .open {
            // Port 80 without a PROXY header: HTTP/1 from the first byte (read when it comes).
            dispatch(http2: false, read: false)
            return
        }
        // The PROXY header counts against the handshake timeout, as the handshake after it does.
        worker.loop.arm(timer, seconds: t.handshake)
        if phase == .proxyHeader, let proxyHeader, !proxyHeader.trusts(peer) {
            refuseProxyHeader(untrusted: true, "\(peer) is not in listen.proxy_protocol.from")
        }
    }

    // MARK: Events

    func ready(_ events: UInt32) {
        switch phase {
        case .proxyHeader:
            readProxyHeader(peerDone: events & PollEvents.hangup != 0)
        case .handshake:
            if !heldForCertificate { handshake() }
        case .open:
            if events & (PollEvents.writable | PollEvents.error) != 0 && outputSent < output.count { flush() }
            if phase == .closed { return }
            if events & (PollEvents.readable | PollEvents.hangup | PollEvents.error) != 0 {
                readable = true
                if events & (PollEvents.hangup | PollEvents.error) != 0 { hungUp = true }
                readAvailable()
            }
        case .closed:
            return
        }
    }

    // MARK: PROXY header

    /// The header is consumed exactly; what follows it (a ClientHello, a request) is read next.
    /// `peerDone`: the client half-closed, so a partial header will never complete.
    private func readProxyHeader(peerDone: Bool) {
        guard let proxyHeader else { return }
        switch proxyHeader.read(fd, scratch: worker.scratch) {
        case .waiting:
            if peerDone { refuseProxyHeader(untrusted: false, "closed before a complete PROXY header") }
        case .refused(let reason):
            refuseProxyHeader(untrusted: false, reason)
        case .done(let client, let local):
            Metrics.shared.proxyHeaderAccepted(local: client == nil)
            if let client { peer = client }
            if let local { self.local = local }
            if tls != nil {
                phase = .handshake
                handshake()
            } else {
                phase = .open
                dispatch(http2: false)
            }
        }
    }

    private func refuseProxyHeader(untrusted: Bool, _ reason: String) {
        Metrics.shared.proxyHeaderRefused(untrusted: untrusted)
        Log.debug("connection from \(peer) closed: \(reason)")
        close()
    }

    // MARK: TLS handshake

    private func handshake(_ resumed: TLSStatus? = nil) {
        guard let tls else { return }
        switch resumed ?? tls.handshake() {
        case .done:
            Metrics.shared.handshakeCompleted(tls13: tls.isTLS13)
            phase = .open
            let spoken = tls.applicationProtocol
            // A TLS-ALPN-01 validation is over once its handshake is (RFC 8737 §3): no requests
            // ride on a connection that was never asked for a client certificate.
            if spoken == .acmeTLS { close(); return }
            dispatch(http2: spoken == .h2)
            if draining { drainFront() }
        case .wantRead, .wantWrite:
            return
        case .wantCertificate:
            let hold: HandshakeHold? = tls.heldForChallenge ? worker.alpnLookups : worker.onDemand
            guard let hold, let name = tls.requestedServerName else { close(); return }
            heldForCertificate = true
            worker.loop.arm(timer, seconds: hold.maxWait + worker.timeouts.handshake)
            let connection = LoopBound(self), loop = worker.loop
            hold.wait(for: name) { loop.execute { connection.value.certificateWaitEnded() } }
        case .closed:
            Metrics.shared.handshakeAborted()
            close()
        case .failed(let reason):
            Metrics.shared.handshakeFailed()
            Log.debug("handshake with \(peer) failed: \(reason)")
            close()
        }
    }

    /// The held handshake goes on with whatever certificate serves its name now (the new one, or
    /// the default when obtaining it failed or took too long).
    private func certificateWaitEnded() {
        guard heldForCertificate, phase == .handshake, let tls else { return }
        heldForCertificate = false
        worker.loop.arm(timer, seconds: worker.timeouts.handshake)
        handshake(tls.resumeAfterWait())
    }

    // MARK: ALPN dispatch

    /// The one place a connection's protocol is chosen: h2 goes to the HTTP/2 front, http/1.1 (or
    /// no ALPN, or port 80) to the HTTP/1 front.
    private func dispatch(http2: Bool, read: Bool = true) {
        worker.loop.arm(timer, seconds: worker.timeouts.idle)
        if http2 {
            do { front = try HTTP2Front(transport: self) } catch {
                Log.error("h2 session for \(peer): \(error)")
                close()
                return
            }
        } else {
            http1Deferred = true   // HTTP/1 says nothing first: its front comes with the first bytes
        }
        front?.start()
        if read && phase == .open { readAvailable() }
    }

    /// The HTTP/1 front, made when the first bytes arrive; nil before ALPN dispatch (or for h2,
    /// whose front is made at once).
    private func frontForBytes() -> ProtocolFront? {
        if let front { return front }
        guard http1Deferred else { return nil }
        http1Deferred = false
        let made = HTTP1Front(transport: self)
        front = made
        if draining { _ = made.drain() }   // its first request is served, with Connection: close
        return made
    }

    // MARK: Reading

    private func readAvailable() {
        let buffer = worker.scratch
        while phase == .open && !readingPaused && readable {
            let n: Int
            if let tls {
                switch tls.read(into: buffer) {
                case .done(let count): n = count
                case .wantRead, .wantWrite, .wantCertificate: readable = false; return
                case .closed: peerClosed(); return
                case .failed(let reason): Log.debug("read from \(peer): \(reason)"); close(); return
                }
            } else {
                do {
                    switch try Socket.read(fd, into: buffer) {
                    case .done(0): peerClosed(); return
                    case .done(let count): n = count
                    case .wouldBlock: readable = false; return
                    }
                } catch { close(); return }
            }
            deliver(UnsafeRawBufferPointer(rebasing: buffer[0..<n]))
            // Drained by a short read: the next bytes bring an event (edge-triggered), so no read
            // is spent on EAGAIN. After a hang-up no event follows: read on until the end shows.
            if let tls, !hungUp, tls.drained { readable = false; return }
        }
    }

    /// Hands bytes to the front straight from the read buffer; only what it leaves is copied.
    private func deliver(_ bytes: UnsafeRawBufferPointer) {
        guard let front = frontForBytes() else { return }
        delivered = true
        if pending.isEmpty {
            let used = front.received(bytes)
            guard phase == .open else { return }
            if used < bytes.count { pending.append(contentsOf: bytes[used...]) }
        } else {
            pending.append(contentsOf: bytes)
            offerPending()
        }
        // Unconsumed bytes beyond one head's worth (pipelined requests) wait in the kernel, not here.
        if pending.count > worker.limits.maxHeaderBytes { readingPaused = true }
    }

    /// Offers the kept bytes to the front again (after it paused, or once a response ended).
    private func offerPending() {
        guard !pending.isEmpty, let front else { return }
        var input: [UInt8] = []
        swap(&input, &pending)  // the front may take the bytes meanwhile (`takePending`)
        let used = input.withUnsafeBytes { front.received($0) }
        guard phase == .open, used < input.count else { return }
        input.removeFirst(used)
        pending = pending.isEmpty ? input : input + pending
    }

    private func peerClosed() {
        if front?.peerClosed() == true {
            // The client half-closed after its request: the front finishes its response, then closes.
            readable = false
            readingPaused = true
            return
        }
        close()
    }

    /// Whether bytes wait that the front did not consume yet (a partial head, say).
    var hasPendingInput: Bool { !pending.isEmpty }

    /// The kept bytes, handed over once (a tunnel's first bytes, already read behind its request).
    func takePending() -> [UInt8] {
        defer { pending = [] }
        return pending
    }

    /// Stops reading: the front cannot take more now (its origin is behind, or it is closing).
    func pauseReading() { readingPaused = true }

    /// Reads again: kept bytes first, then the socket (`now`), or on its next readiness.
    func resumeReading(now: Bool = true) {
        guard phase == .open, !closeWhenFlushed else { return }
        readingPaused = false
        guard now else { return }
        offerPending()
        if phase == .open && !readingPaused { readAvailable() }
    }

    // MARK: Writing

    /// Bytes queued for the client and not yet written.
    var outputBacklog: Int { output.count - outputSent }

    func flush() {
        while outputSent < output.count && phase != .closed {
            let result: Int?
            if let tls {
                switch output.withUnsafeBytes({ tls.write(UnsafeRawBufferPointer(rebasing: $0[outputSent...])) }) {
                case .done(let n): result = n
                case .wantRead, .wantWrite, .wantCertificate: result = nil
                case .closed, .failed: close(); return
                }
            } else {
                do {
                    switch try Socket.write(fd, output, from: outputSent) {
                    case .done(let n): result = n
                    case .wouldBlock: result = nil
                    }
                } catch { close(); return }
            }
            guard let n = result else { return }
            outputSent += n
            if writesRearmIdle { worker.loop.arm(timer, seconds: worker.timeouts.idle) }
        }
        guard phase != .closed else { return }
        if output.capacity > 64 * 1024 { output = [] } else { output.removeAll(keepingCapacity: true) }
        outputSent = 0
        if closeWhenFlushed { close(); return }
        if let front, front.isIdle { worker.giveBack(&output) }
        front?.transportDrained()
    }

    /// Before a request is answered: a buffer of the loop's, when this connection gave its own back.
    func borrowOutput() {
        if output.capacity == 0, let spare = worker.lendOutput() { output = spare }
    }

    /// Closes once everything queued has been written (the last response, a final GOAWAY).
    func closeAfterFlush() {
        closeWhenFlushed = true
        readingPaused = true
        if outputSent >= output.count { close() }
    }

    // MARK: Ending

    override func fire() { timedOut() }

    private func timedOut() {
        switch phase {
        case .proxyHeader: refuseProxyHeader(untrusted: false, "no complete PROXY header within the handshake timeout")
        case .open: if let front { front.timedOut() } else { close() }
        case .handshake, .closed: close()
        }
    }

    /// Graceful shutdown: idle connections close now, busy ones after their current response.
    func drain() {
        draining = true
        switch phase {
        case .open: drainFront()
        case .proxyHeader: close()
        case .handshake, .closed: return   // a handshake finishing now drains then
        }
    }

    /// Idle connections close now, busy ones after their current response. One that has not sent
    /// its first request yet (accepted just before the drain, or during a binary upgrade) is not
    /// idle: that request is served, with Connection: close, as its client could not retry it on
    /// another connection. Its header timeout bounds the wait.
    private func drainFront() {
        // An HTTP/1 connection that sent nothing yet has no front: the one its first bytes make drains.
        if http1Deferred { return }
        guard let front else { close(); return }
        if front.drain() && delivered { closeAfterFlush() }
    }

    func close() {
        guard phase != .closed else { return }
        phase = .closed
        // The front stays until the loop lets go of this object at the end of the batch (see
        // `Worker.closed`): its own methods, or its streams', may be below this call on the stack.
        front?.transportClosed()
        worker.loop.cancel(timer)
        tls?.shutdown()
        worker.loop.forget(closing: fd)
        Socket.close(fd)
        if hasPrivateUpstreams { worker.pool.closePrivate(owner: ObjectIdentifier(self)) }
        pending = []
        output = []
        worker.closed(self)
    }
}

/// Carries a loop-confined object through a `@Sendable` closure that runs on that same loop.
struct LoopBound<T: AnyObject>: @unchecked Sendable {  // only touched on the owning loop
    let value: T
    init(_ value: T) { self.value = value }
}
