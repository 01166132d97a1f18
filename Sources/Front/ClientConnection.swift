import Certificates
import Config
import EventLoop
import HTTP1
import Metrics
import Proxy
import TLS

/// One client connection: transport (TLS or plain), then HTTP/1.1 requests one after another
/// (pipelined bytes wait their turn), each answered locally or forwarded through a ProxyExchange.
final class ClientConnection: Pollable, Downstream {
    private enum Phase { case proxyHeader, handshake, http, tunnel, closed }

    let fd: Int32
    /// The client: the socket's peer, or the address a trusted PROXY header gave.
    private(set) var peer: SocketAddress
    let role: ListenerRole
    unowned let worker: Worker
    private let tls: TLSConnection?
    private var phase: Phase
    /// The HTTP-01 token being looked up in the cluster for the current request.
    private var lookingUp: String?
    /// The handshake is held while a certificate for its name is obtained (on-demand TLS).
    private var heldForCertificate = false
    /// Set on listeners that expect a PROXY header ahead of the connection's own bytes.
    private let proxyHeader: ProxyHeaderReader?
    /// The listener's client-certificate policy: requests for a name it covers must come over a
    /// handshake that was asked for a certificate.
    let clientAuth: ClientCertificatePolicy?
    /// Why a request for `host` must not be served on this connection (421), if it must not.
    func misdirected(host: String?) -> String? { RequestPolicy.misdirected(host: host, clientAuth: clientAuth, tls: tls) }

    /// Set once a request used a PROXY-protocol upstream: its connections are this client's own.
    private var hasPrivateUpstreams = false

    /// What a request forwarded from this connection carries of the connection itself, whichever
    /// front built it: the verified client certificate (mutual TLS; client copies dropped), and,
    /// for an upstream that sends PROXY headers, the connection's ends and its ownership.
    func personalize(_ request: inout ProxyRequest, upstream: String) {
        let config = worker.config
        if let auth = config.settings.tls.clientAuth { RequestPolicy.addClientCertificate(&request.fields, clientIdentity, auth) }
        if !config.proxyHeaderUpstreams.isEmpty && config.proxyHeaderUpstreams.contains(upstream) {
            request.connection = (peer, local)
            request.owner = ObjectIdentifier(self)
            hasPrivateUpstreams = true
        }
    }

    /// The access log's certificate field: the verified client certificate's SHA-256, when asked for.
    var loggedClientCertificate: String? {
        worker.config.settings.tls.clientAuth == nil ? nil : clientIdentity?.sha256
    }

    /// The client's verified certificate (mutual TLS), read once after the handshake.
    private lazy var clientIdentity: ClientIdentity? = tls?.clientCertificate
    /// The address the client connected to (a PROXY header's destination when there was one):
    /// asked of the kernel only for upstreams that send a PROXY header themselves.
    private lazy var local: SocketAddress? = Socket.localAddress(fd)
    private var parser: RequestParser
    private(set) lazy var timer = Timer { [weak self] in self?.timedOut() }
    /// The client's address as X-Forwarded-For shows it, formatted once per connection.
    private lazy var clientHost = peer.host

    /// Received bytes not consumed yet (a partial head, or pipelined requests waiting their turn).
    private var pending: [UInt8] = []
    private var output: [UInt8] = []
    private var outputSent = 0
    private var readable = true
    private var readPaused = false
    private var closeWhenFlushed = false
    private var draining = false
    /// Set while `process` runs: completions inside it must not re-enter it.
    private var inProcess = false

    /// The request being served, from its head until both its body and its response are done.
    private var request: RequestState?
    /// Set when ALPN chose h2: this object keeps the transport, the HTTP/2 front the protocol.
    private var h2: HTTP2Front?

    private struct RequestState {
        var head: RequestHead
        var startedAt: UInt64
        var exchange: ProxyExchange?
        var bodyLimit: Int64
        var bodyBytes: Int64 = 0
        var bodyDone = false
        var responseDone = false
        /// Body bytes are read and dropped (local responses, refused requests).
        var discardBody = false
        var keepAlive: Bool
        var status = 0
        var bytesOut: Int64 = 0
        var chunkedResponse = false
        var responseHeadSent = false
    }

    /// `tls`: the listener's context (https), nil for the port-80 role.
    init(fd: Int32, peer: SocketAddress, tls context: TLSContext?, proxyHeader: ProxyHeaderReader?, worker: Worker) throws {
        self.fd = fd; self.peer = peer; self.role = context == nil ? .redirect : .https; self.proxyHeader = proxyHeader; self.worker = worker
        clientAuth = context?.clientAuth
        let limits = worker.config.settings.limits
        parser = RequestParser(maxHeaderBytes: limits.maxHeaderBytes, maxHeaders: limits.maxHeaders)
        tls = try context.map { context throws(TLSError) in try TLSConnection(front: context, fd: fd) }
        phase = proxyHeader != nil ? .proxyHeader : tls != nil ? .handshake : .http
        try worker.loop.register(fd, self)
    }

    func start() {
        let t = worker.config.settings.timeouts
        // The PROXY header counts against the handshake timeout, as the handshake after it does.
        worker.loop.arm(timer, seconds: phase == .http ? t.idle : t.handshake)
        if phase == .proxyHeader, let proxyHeader, !proxyHeader.trusts(peer) {
            refuseProxyHeader(untrusted: true, "\(peer) is not in listen.proxy_protocol.from")
        }
    }

    // MARK: Events

    func ready(_ events: UInt32) {
        if phase == .proxyHeader { readProxyHeader(peerDone: events & PollEvents.hangup != 0); return }
        if phase == .handshake {
            if !heldForCertificate { handshake() }
            return
        }
        if events & (PollEvents.writable | PollEvents.error) != 0 && outputSent < output.count { flush() }
        if phase == .closed { return }
        if events & (PollEvents.readable | PollEvents.hangup | PollEvents.error) != 0 {
            readable = true
            readAvailable()
        }
    }

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
                phase = .http
                worker.loop.arm(timer, seconds: worker.config.settings.timeouts.idle)
                readAvailable()
            }
        }
    }

    private func refuseProxyHeader(untrusted: Bool, _ reason: String) {
        Metrics.shared.proxyHeaderRefused(untrusted: untrusted)
        Log.debug("connection from \(peer) closed: \(reason)")
        close()
    }

    private func handshake(_ resumed: TLSStatus? = nil) {
        guard let tls else { return }
        switch resumed ?? tls.handshake() {
        case .done:
            Metrics.shared.handshakeCompleted(version: tls.protocolVersion)
            phase = .http
            // A TLS-ALPN-01 validation is over once its handshake is (RFC 8737 §3): no requests
            // ride on a connection that was never asked for a client certificate.
            if draining || tls.alpn == "acme-tls/1" { close(); return }
            // ALPN dispatch happens here, in one place: h2 goes to the HTTP/2 front, http/1.1 (or
            // none) is served below.
            worker.loop.arm(timer, seconds: worker.config.settings.timeouts.idle)
            if tls.alpn == "h2" {
                do { h2 = try HTTP2Front(connection: self, worker: worker) } catch {
                    Log.error("h2 session for \(peer): \(error)")
                    close()
                    return
                }
                h2?.start()
            }
            readAvailable()
        case .wantRead, .wantWrite:
            return
        case .wantCertificate:
            guard let onDemand = worker.onDemand, let name = tls.requestedServerName else { close(); return }
            heldForCertificate = true
            worker.loop.arm(timer, seconds: onDemand.maxWait + worker.config.settings.timeouts.handshake)
            let connection = LoopBound(self), loop = worker.loop
            onDemand.wait(for: name) { loop.execute { connection.value.certificateWaitEnded() } }
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
        worker.loop.arm(timer, seconds: worker.config.settings.timeouts.handshake)
        handshake(tls.resumeAfterWait())
    }

    // MARK: Reading

    private func readAvailable() {
        let buffer = worker.scratch
        while phase != .closed && !readPaused && readable {
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
            received(UnsafeRawBufferPointer(rebasing: buffer[0..<n]))
        }
    }

    private func received(_ bytes: UnsafeRawBufferPointer) {
        if let h2 {
            worker.loop.arm(timer, seconds: worker.config.settings.timeouts.idle)
            h2.received(bytes)
            return
        }
        if phase == .tunnel {
            request?.exchange?.requestBody(bytes)
            pauseIfUpstreamBacklogged()
            return
        }
        // The header timeout runs from a head's first byte (re-arming per packet would let a slow
        // client stretch it forever); while a request runs, any progress re-arms the idle timeout.
        if request == nil {
            if pending.isEmpty { worker.loop.arm(timer, seconds: worker.config.settings.timeouts.header) }
        } else {
            worker.loop.arm(timer, seconds: worker.config.settings.timeouts.idle)
        }
        if pending.isEmpty {
            let used = process(bytes)
            if used < bytes.count { pending.append(contentsOf: bytes[used...]) }
        } else {
            pending.append(contentsOf: bytes)
            processPending()
        }
        // Pipelined requests beyond one head's worth wait in the kernel, not in memory.
        if pending.count > worker.config.settings.limits.maxHeaderBytes && request != nil { readPaused = true }
    }

    private func processPending() {
        guard !pending.isEmpty else { return }
        let input = pending
        let used = input.withUnsafeBytes { process($0) }
        pending.removeFirst(used)
    }

    /// Feeds the parser until it needs more or the next request must wait; returns bytes used.
    private func process(_ input: UnsafeRawBufferPointer) -> Int {
        inProcess = true
        defer { inProcess = false }
        var offset = 0
        while phase == .http && !closeWhenFlushed {
            // The next request's head is read only after the current response is complete.
            if let r = request, r.bodyDone { break }
            let rest = UnsafeRawBufferPointer(rebasing: input[offset...])
            let step: (consumed: Int, event: RequestEvent)
            do { step = try parser.parse(rest) } catch {
                refuse(status: error.status, reason: error.reason)
                return input.count
            }
            offset += step.consumed
            switch step.event {
            case .needMore:
                return offset
            case .head(let head):
                begin(head)
            case .body(let range):
                body(UnsafeRawBufferPointer(rebasing: rest[range]))
                if readPaused { return offset }
            case .end(let trailers):
                bodyEnded(trailers)
            }
            if phase == .tunnel {
                if offset < input.count { request?.exchange?.requestBody(UnsafeRawBufferPointer(rebasing: input[offset...])) }
                return input.count
            }
        }
        return offset
    }

    private func peerClosed() {
        if let r = request, r.exchange != nil, r.bodyDone, !r.responseDone, phase != .tunnel {
            // The client half-closed after its request: finish the response, then close.
            readable = false
            closeWhenFlushed = true
            return
        }
        close()
    }

    // MARK: Requests

    private func begin(_ head: RequestHead) {
        let settings = worker.config.settings
        worker.loop.arm(timer, seconds: settings.timeouts.idle)
        let state = RequestState(head: head, startedAt: worker.loop.now, bodyLimit: settings.limits.maxBodyBytes,
                                 keepAlive: head.keepAlive && !draining)
        request = state

        if role == .redirect { answerPlainPort(head); return }
        if let reason = misdirected(host: head.host) {
            refuse(status: 421, reason: reason)
            return
        }

        var declared: Int64? = nil
        if case .length(let n) = head.framing { declared = n }
        switch RequestPolicy.decide(worker.config.router, host: head.host, path: head.target, declaredLength: declared,
                                    limits: settings.limits) {
        case .notFound:
            respond(status: 404, body: "no route for this host and path\n")
        case .tooLarge(let n, let limit):
            refuse(status: 413, reason: "request body of \(n) bytes exceeds the limit of \(limit)")
        case .respond(let fixed, let limit):
            request!.bodyLimit = limit
            respond(status: fixed.status, body: fixed.body, contentType: fixed.contentType)
        case .proxy(let upstream, let forwarded, let limit):
            request!.bodyLimit = limit
            startExchange(head, upstream: upstream, forwarded: forwarded)
        }
    }

    private func startExchange(_ head: RequestHead, upstream: String, forwarded: Bool) {
        var fields = HopByHop.endToEnd(head.fields, connectionTokens: head.connectionTokens)
        fields.removeAll { HTTPField.nameEquals($0.name, "expect") }
        if forwarded { RequestPolicy.addForwarded(&fields, client: clientHost, host: head.host) }
        let length: Int64?
        switch head.framing {
        case .none: length = 0
        case .length(let n): length = n
        case .chunked, .untilClose: length = nil
        }
        let upgrade = head.upgrade.flatMap { $0.lowercased() == "websocket" ? $0 : nil }
        var proxied = ProxyRequest(method: head.method, target: head.target, host: head.host, fields: fields,
                                   bodyLength: length, upgrade: upgrade, clientAddress: clientHost, scheme: "https")
        personalize(&proxied, upstream: upstream)
        let exchange = ProxyExchange(pool: worker.pool, upstream: upstream, request: proxied,
                                     timeouts: worker.config.settings.timeouts, downstream: self)
        request?.exchange = exchange
        if head.expectContinue && length != 0 {
            // RFC 9110 §10.1.1: we will read the body, so say so now instead of making the client wait.
            enqueue(Array("HTTP/1.1 100 Continue\r\n\r\n".utf8))
        }
        exchange.start()
    }

    private func body(_ bytes: UnsafeRawBufferPointer) {
        guard var r = request else { return }
        r.bodyBytes += Int64(bytes.count)
        request = r
        if r.bodyLimit > 0 && r.bodyBytes > r.bodyLimit {
            if r.responseHeadSent { close() } else { refuse(status: 413, reason: "request body exceeds the limit of \(r.bodyLimit)") }
            return
        }
        if r.discardBody { return }
        r.exchange?.requestBody(bytes)
        pauseIfUpstreamBacklogged()
    }

    private func pauseIfUpstreamBacklogged() {
        if let e = request?.exchange, e.upstreamBacklog > ProxyExchange.highWater { readPaused = true }
    }

    private func bodyEnded(_ trailers: [HTTPField]) {
        guard request != nil else { return }
        request!.bodyDone = true
        if !request!.discardBody { request!.exchange?.requestEnd(trailers: trailers) }
        finishRequestIfDone()
    }

    /// Both halves done: log, then serve the next request or close.
    private func finishRequestIfDone() {
        guard let r = request, r.bodyDone, r.responseDone else { return }
        logAccess(r)
        request = nil
        let settings = worker.config.settings
        if !r.keepAlive || draining {
            closeWhenFlushed = true
            if outputSent >= output.count { close() }
            return
        }
        worker.loop.arm(timer, seconds: pending.isEmpty ? settings.timeouts.idle : settings.timeouts.header)
        readPaused = false
        if !inProcess {
            // Called from an upstream event: pick up pipelined bytes, then the socket.
            processPending()
            readAvailable()
        }
    }

    // MARK: Local responses

    private func answerPlainPort(_ head: RequestHead) {
        let prefix = "/.well-known/acme-challenge/"
        if head.target.hasPrefix(prefix) {
            let token = String(head.target.dropFirst(prefix.count))
            if let answer = worker.challenges.keyAuthorization(for: token) {
                respond(status: 200, body: answer, contentType: "application/octet-stream")
            } else if let lookup = worker.challenges.lookup {
                // The answer comes back on this loop; the request waits like a proxied one.
                let connection = LoopBound(self), loop = worker.loop
                lookingUp = token
                lookup(token) { answer in loop.execute { connection.value.lookedUp(token, answer) } }
            } else {
                respond(status: 404, body: "no such challenge\n")
            }
            return
        }
        let settings = worker.config.settings
        let port = settings.listen.redirectPort ?? settings.listen.https.first?.port ?? 443
        let host = Router.hostName(head.host ?? "localhost")
        let location = "https://\(host)\(port == 443 ? "" : ":\(port)")\(head.target)"
        respond(status: 301, body: "moved to \(location)\n", extra: [HTTPField(name: "Location", value: location)])
    }

    /// The cluster's answer for a token this node did not hold, unless the request is gone.
    private func lookedUp(_ token: String, _ answer: String?) {
        guard phase != .closed, lookingUp == token, let r = request, !r.responseDone else { return }
        lookingUp = nil
        if let answer {
            respond(status: 200, body: answer, contentType: "application/octet-stream")
        } else {
            respond(status: 404, body: "no such challenge\n")
        }
    }

    /// A complete response made here. The request body, if any, is read and dropped.
    private func respond(status: Int, body: String, contentType: String = "text/plain; charset=utf-8", extra: [HTTPField] = []) {
        guard var r = request else { return }
        r.discardBody = true
        request = r
        let bytes = Array(body.utf8)
        var fields = [HTTPField(name: "Content-Type", value: contentType),
                      HTTPField(name: "Content-Length", value: String(bytes.count))] + extra
        if !r.keepAlive { fields.append(HTTPField(name: "Connection", value: "close")) }
        var out: [UInt8] = []
        HTTP1Writer.appendResponseHead(status: status, reason: nil, fields: fields, into: &out)
        if r.head.method != "HEAD" { out += bytes }
        request!.status = status
        request!.responseHeadSent = true
        request!.bytesOut += Int64(out.count)
        request!.responseDone = true
        enqueue(out)
        finishRequestIfDone()
    }

    /// Malformed or refused input: answer, then close without reading further (never forward it).
    private func refuse(status: Int, reason: String) {
        Log.debug("refused request from \(peer): \(status) \(reason)")
        request?.exchange?.abort()
        if request?.responseHeadSent == true { close(); return }
        var r = request ?? RequestState(head: RequestHead.placeholder, startedAt: worker.loop.now, bodyLimit: 0, keepAlive: false)
        r.keepAlive = false
        r.bodyDone = true
        request = r
        respond(status: status, body: "\(HTTP1Writer.reasonPhrase(status)): \(reason)\n")
        readPaused = true
    }

    // MARK: Downstream (responses from the exchange)

    func responseHead(_ head: ProxyResponseHead) {
        guard var r = request else { return }
        var fields = head.fields
        if head.status >= 200 {
            r.status = head.status
            r.responseHeadSent = true
            if head.hasBody {
                if let n = head.bodyLength {
                    fields.append(HTTPField(name: "Content-Length", value: String(n)))
                } else if r.head.versionMinor >= 1 {
                    fields.append(HTTPField(name: "Transfer-Encoding", value: "chunked"))
                    r.chunkedResponse = true
                } else {
                    r.keepAlive = false   // HTTP/1.0: the end of the body is the end of the connection
                }
            } else if let n = head.bodyLength {
                fields.append(HTTPField(name: "Content-Length", value: String(n)))
            }
            if !r.keepAlive || draining {
                r.keepAlive = false
                fields.append(HTTPField(name: "Connection", value: "close"))
            }
        } else if head.status == 101 {
            r.status = 101
            r.responseHeadSent = true
        }
        let before = output.count
        HTTP1Writer.appendResponseHead(status: head.status, reason: head.reason, fields: fields, into: &output)
        r.bytesOut += Int64(output.count - before)
        request = r
    }

    func responseBody(_ bytes: UnsafeRawBufferPointer) {
        guard request != nil else { return }
        request!.bytesOut += Int64(bytes.count)
        if request!.chunkedResponse && phase != .tunnel {
            HTTP1Writer.appendChunk(bytes, into: &output)
        } else {
            output.append(contentsOf: bytes)
        }
    }

    func responseFlush() { flush() }

    func responseEnd(trailers: [HTTPField]) {
        guard request != nil else { return }
        if phase == .tunnel {
            request!.responseDone = true
            request!.bodyDone = true
            closeWhenFlushed = true
            logAccess(request!)
            request = nil
            if outputSent >= output.count { close() }
            return
        }
        if request!.chunkedResponse {
            HTTP1Writer.appendLastChunk(trailers: trailers, into: &output)
        }
        flush()
        request!.responseDone = true
        if !request!.bodyDone {
            // The origin answered before the body ended: drop the rest of the body, as nginx does.
            request!.discardBody = true
            request!.keepAlive = false
        }
        finishRequestIfDone()
    }

    func responseFailed(status: Int, reason: String) {
        guard let r = request else { return }
        Metrics.shared.upstreamError()
        request!.exchange = nil
        if r.responseHeadSent {
            close()
            return
        }
        if phase == .tunnel { close(); return }
        // A request without a body can fail before its end is parsed (every server down: 503 at once).
        request!.keepAlive = r.keepAlive && (r.bodyDone || r.head.framing == .none)
        respond(status: status, body: "\(HTTP1Writer.reasonPhrase(status)): \(reason)\n")
    }

    func tunnelEstablished() {
        phase = .tunnel
        worker.loop.disarm(timer)
        readPaused = false
        if !pending.isEmpty {
            let early = pending
            pending = []
            early.withUnsafeBytes { request?.exchange?.requestBody($0) }
        }
    }

    var downstreamBacklog: Int { output.count - outputSent }

    func requestBodyWanted() {
        guard readPaused, phase != .closed, !closeWhenFlushed else { return }
        readPaused = false
        processPending()
        readAvailable()
    }

    // MARK: Writing

    func enqueue(_ bytes: [UInt8]) {
        output += bytes
        flush()
    }

    private func flush() {
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
            if phase != .tunnel { worker.loop.arm(timer, seconds: worker.config.settings.timeouts.idle) }
        }
        if output.capacity > 64 * 1024 { output = [] } else { output.removeAll(keepingCapacity: true) }
        outputSent = 0
        if closeWhenFlushed && request == nil { close(); return }
        if closeWhenFlushed && phase == .tunnel { close(); return }
        request?.exchange?.downstreamDrained()
        h2?.transportDrained()
    }

    // MARK: For the HTTP/2 front

    var outputBacklog: Int { output.count - outputSent }
    var serverName: String? { tls?.serverName }

    /// Closes once everything queued has been written (after a final GOAWAY, say).
    func closeAfterFlush() {
        closeWhenFlushed = true
        if outputSent >= output.count { close() }
    }

    // MARK: Ending

    private func timedOut() {
        if phase == .proxyHeader { refuseProxyHeader(untrusted: false, "no complete PROXY header within the handshake timeout"); return }
        if let h2 { h2.timedOut(); return }
        if phase == .http, request == nil, !pending.isEmpty {
            request = RequestState(head: RequestHead.placeholder, startedAt: worker.loop.now, bodyLimit: 0, keepAlive: false)
            refuse(status: 408, reason: "the request head did not arrive in time")
            return
        }
        close()
    }

    /// Graceful shutdown: idle connections close now, busy ones after their current response.
    func drain() {
        draining = true
        if let h2 { h2.drain(); return }
        if request == nil && phase != .handshake { close() } else { request?.keepAlive = false }
    }

    func close() {
        guard phase != .closed else { return }
        if let r = request, r.responseHeadSent || r.exchange != nil { logAccess(r) }
        request?.exchange?.abort()
        request = nil
        phase = .closed
        h2?.connectionClosed()
        h2 = nil
        worker.loop.disarm(timer)
        tls?.shutdown()
        worker.loop.unregister(fd)
        Socket.close(fd)
        if hasPrivateUpstreams { worker.pool.closePrivate(owner: ObjectIdentifier(self)) }
        pending = []
        output = []
        worker.closed(self)
    }

    private func logAccess(_ r: RequestState) {
        if r.status != 0 { Metrics.shared.response(status: r.status, http2: false) }
        guard worker.accessLog.enabled, r.status != 0 else { return }
        let now = monotonicNanos()  // not the loop's cached clock: a local response ends in the wake-up it began
        let upstreamMS: Double? = r.exchange.flatMap { e in e.upstreamHeadAt > 0 ? Double(e.upstreamHeadAt - e.upstreamStart) / 1e6 : nil }
        worker.accessLog.write(AccessLog.Entry(
            client: peer.description, sni: tls?.serverName, clientCertificate: loggedClientCertificate,
            host: r.head.host, method: r.head.method, path: r.head.target,
            status: r.status, bytesIn: r.bodyBytes, bytesOut: r.bytesOut, upstream: r.exchange?.upstreamAddress,
            durationMS: Double(now - r.startedAt) / 1e6, upstreamMS: upstreamMS,
            proto: role == .https ? "HTTP/1.\(r.head.versionMinor)" : "HTTP/1.\(r.head.versionMinor) (plain)"))
    }
}

/// Carries a loop-confined object through a `@Sendable` closure that runs on that same loop.
private struct LoopBound<T: AnyObject>: @unchecked Sendable {  // only touched on the owning loop
    let value: T
    init(_ value: T) { self.value = value }
}
