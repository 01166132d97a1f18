import Config
import EventLoop
import HTTP1
import Logs
import Metrics
import Proxy

/// HTTP/1.1 on a client connection: feeds what the transport reads to the sans-I/O
/// `HTTP1Session`, routes each request head, forwards it through a `ProxyExchange` (or answers
/// it here), and logs it. The session decides sequencing, framing and keep-alive; this class
/// only carries out what it says.
final class HTTP1Front: ProtocolFront, Downstream {
    /// The connection that owns this front and tells it when it closes. Checked in debug builds
    /// (every test); unchecked in release, where a checked load costs two atomics per use.
    #if DEBUG
    unowned let transport: ClientTransport
    #else
    unowned(unsafe) let transport: ClientTransport
    #endif
    private var session: HTTP1Session
    /// The current request's exchange with its origin, if it was forwarded.
    private var exchange: ProxyExchange?
    /// The current route's response headers (usually none).
    private var responseHeaders: [HeaderSetting] = []
    private var startedAt: UInt64 = 0
    /// The HTTP-01 token being looked up in the cluster for the current request (port 80).
    var lookingUp: String?
    /// The header timeout runs from a head's first byte: re-arming it per packet would let a slow
    /// client stretch it forever.
    private var headClock = false
    /// Set while `received` runs: a request finishing inside it must not re-enter it.
    private var inReceive = false
    private(set) var closed = false

    unowned(unsafe) let worker: Worker   // lives as long as its loop
    private var timeouts: Timeouts { worker.timeouts }

    init(transport: ClientTransport) {
        self.transport = transport
        worker = transport.worker
        let limits = transport.worker.limits
        session = HTTP1Session(maxHeaderBytes: limits.maxHeaderBytes, maxHeaders: limits.maxHeaders,
                               maxBodyBytes: limits.maxBodyBytes)
    }

    func start() {}

    // MARK: Requests

    func received(_ input: UnsafeRawBufferPointer) -> Int {
        inReceive = true
        defer { inReceive = false }
        var offset = 0
        while !closed {
            let rest = UnsafeRawBufferPointer(rebasing: input[offset...])
            let (used, event) = session.next(rest)
            offset += used
            switch event {
            case .needMore, .waitForResponse:
                armTimer(partialHead: offset < input.count)
                return offset
            case .head(let head):
                begin(head)
            case .body(let range):
                exchange?.requestBody(UnsafeRawBufferPointer(rebasing: rest[range]))
                if upstreamBacklogged {
                    transport.pauseReading()
                    armTimer(partialHead: false)
                    return offset
                }
            case .end(let trailers):
                exchange?.requestEnd(trailers: trailers)
            case .finished(let r, let close):
                finished(r, close: close)
            case .tunnel:
                if offset < input.count { exchange?.requestBody(UnsafeRawBufferPointer(rebasing: input[offset...])) }
                if upstreamBacklogged { transport.pauseReading() }
                return input.count
            case .invalid(let status, let reason):
                refuse(status: status, reason: reason)
                return input.count
            case .closed:
                transport.pauseReading()
                return input.count
            }
        }
        return input.count
    }

    /// While a request runs, any progress re-arms the idle timeout; part of a head waiting arms
    /// the header timeout once; between requests the connection may idle.
    private func armTimer(partialHead: Bool) {
        guard !closed, session.phase == .open else { return }
        if !session.isServing && partialHead {
            if !headClock { worker.loop.arm(transport.timer, seconds: timeouts.header) }
            headClock = true
        } else {
            headClock = false
            worker.loop.arm(transport.timer, seconds: timeouts.idle)
        }
    }

    private var upstreamBacklogged: Bool { (exchange?.upstreamBacklog ?? 0) > ProxyExchange.highWater }

    private func begin(_ head: RequestHead) {
        let transport = self.transport   // one strong reference, not one checked `unowned` load per use
        transport.borrowOutput()
        startedAt = worker.loop.now
        headClock = false
        worker.loop.arm(transport.timer, seconds: timeouts.idle)
        if transport.role == .redirect { answerPlainPort(head); return }
        if let reason = transport.misdirected(host: head.host) {
            refuse(status: 421, reason: reason)
            return
        }
        var declared: Int64? = nil
        if case .length(let n) = head.framing { declared = n }
        switch RequestPolicy.decide(worker.config.router, host: head.host, path: head.target, declaredLength: declared,
                                    limits: worker.limits) {
        case .notFound:
            respond(status: 404, body: "no route for this host and path\n")
        case .tooLarge(let n, let limit):
            refuse(status: 413, reason: "request body of \(n) bytes exceeds the limit of \(limit)")
        case .respond(let fixed, let limit, let headers):
            respond(status: fixed.status, body: fixed.body, contentType: fixed.contentType,
                    extra: RequestPolicy.fields(headers), bodyLimit: limit)
        case .proxy(let upstream, let forwarded, let limit, let headers):
            responseHeaders = headers
            forward(head, upstream: upstream, forwardedHeaders: forwarded, bodyLimit: limit)
        }
    }

    private func forward(_ head: RequestHead, upstream: String, forwardedHeaders: Bool, bodyLimit: Int64) {
        let transport = self.transport   // one strong reference, not one checked `unowned` load per use
        // A new section (the session keeps the head), with room for the fields added here.
        var fields = HopByHop.endToEnd(head.fields, connection: head.connection, room: 192)
        fields.removeAll(named: "expect")
        if forwardedHeaders { RequestPolicy.addForwarded(&fields, client: transport.clientHost, host: head.host) }
        let clientConnection = transport.personalize(&fields, upstream: upstream)
        let length: Int64?
        switch head.framing {
        case .none: length = 0
        case .length(let n): length = n
        case .chunked, .untilClose: length = nil
        }
        let upgrade = head.upgrade.flatMap { $0.lowercased() == "websocket" ? $0 : nil }
        // Host is usually the first field: the look-up is short. Without one (HTTP/1.0 in absolute
        // form), the authority becomes the Host written toward the origin.
        let addingHost = fields.contains(named: "host") ? nil : head.host
        let exchange = ProxyExchange(pool: worker.pool, upstream: upstream, method: head.method, target: head.target,
                                     addingHost: addingHost, fields: fields, bodyLength: length, upgrade: upgrade,
                                     client: clientConnection, timeouts: timeouts, downstream: self)
        self.exchange = exchange
        let queued = transport.output.count
        session.forward(bodyLimit: bodyLimit, into: &transport.output)
        if transport.output.count > queued { transport.flush() }   // 100 Continue
        if !closed { exchange.start() }
    }

    /// A complete response made here. The request body, if any, is read (within the limit) and dropped.
    func respond(status: Int, body: String, contentType: String = "text/plain; charset=utf-8", extra: [HTTPField] = [],
                 bodyLimit: Int64? = nil) {
        let next = session.respond(status: status, body: body, contentType: contentType, extra: extra,
                                   bodyLimit: bodyLimit, into: &transport.output)
        transport.flush()
        apply(next)
    }

    /// Malformed or refused input: answered, then the connection closes without reading further.
    private func refuse(status: Int, reason: String) {
        Log.debug("refused request from \(transport.peer): \(status) \(reason)")
        if !session.isServing { startedAt = worker.loop.now }
        exchange?.abort()
        let next = session.refuse(status: status, reason: reason, into: &transport.output)
        transport.pauseReading()
        if next != .closeNow { transport.flush() }
        apply(next)
    }

    private func apply(_ next: HTTP1Session.Next) {
        switch next {
        case .carryOn: return
        case .finished(let r, let close): finished(r, close: close)
        case .closeNow: transport.close()
        }
    }

    /// Both halves done: log, then serve the next request or close.
    private func finished(_ r: HTTP1Session.Request, close: Bool) {
        logAccess(r)
        exchange = nil
        lookingUp = nil
        guard !closed else { return }
        if close { transport.closeAfterFlush(); return }
        if !inReceive {
            // Called from an upstream event: pick up pipelined bytes, then the socket.
            headClock = false
            worker.loop.arm(transport.timer, seconds: timeouts.idle)
            transport.resumeReading()
        }
    }

    // MARK: Downstream (the response from the exchange)

    func responseHead(_ head: ProxyResponseHead) {
        var fields = head.fields
        RequestPolicy.setResponseHeaders(&fields, status: head.status, responseHeaders)
        session.responseHead(status: head.status, reason: head.reason, fields: fields, bodyLength: head.bodyLength,
                             hasBody: head.hasBody, into: &transport.output)
    }

    func responseBody(_ bytes: UnsafeRawBufferPointer) {
        session.responseBody(bytes, into: &transport.output)
    }

    func responseFlush() { transport.flush() }

    func responseEnd(trailers: [HTTPField]) {
        let next = session.responseEnd(trailers: trailers, into: &transport.output)
        transport.flush()
        apply(next)
    }

    func responseFailed(status: Int, reason: String) {
        Metrics.shared.upstreamError()
        exchange = nil
        let next = session.responseFailed(status: status, reason: reason, into: &transport.output)
        if next == .closeNow {
            // Cut mid-response: the bytes before the failure still go out, then the close (short of
            // the declared length or the last chunk) tells the client the response is incomplete.
            // Closing with nothing sent would read, on a reused connection, as a stale keep-alive
            // connection, which clients retry.
            transport.flush()
            transport.closeAfterFlush()
            return
        }
        transport.flush()
        apply(next)
    }

    func tunnelEstablished() {
        session.tunnelEstablished()
        transport.writesRearmIdle = false
        worker.loop.disarm(transport.timer)
        // Bytes the client sent behind its request belong to the tunnel; the rest is read on the next readiness.
        let early = transport.takePending()
        if !early.isEmpty { early.withUnsafeBytes { exchange?.requestBody($0) } }
        transport.resumeReading(now: false)
    }

    var downstreamBacklog: Int { transport.outputBacklog }

    func requestBodyWanted() {
        guard transport.readingPaused, !closed, session.phase != .closing else { return }
        transport.resumeReading()
    }

    // MARK: The connection

    func transportDrained() { exchange?.downstreamDrained() }

    func peerClosed() -> Bool { session.peerClosed() }

    func timedOut() {
        if session.awaitingHead { startedAt = worker.loop.now }
        let next = session.timedOut(partialHead: transport.hasPendingInput, into: &transport.output)
        if next != .closeNow {
            Log.debug("refused request from \(transport.peer): 408 the request head did not arrive in time")
            transport.pauseReading()
            transport.flush()
        }
        apply(next)
    }

    func drain() -> Bool { session.drain() }

    var isIdle: Bool { !session.isServing }

    func transportClosed() {
        closed = true
        if let r = session.request, r.responseStarted || exchange != nil { logAccess(r) }
        exchange?.abort()
        exchange = nil
    }

    private func logAccess(_ r: HTTP1Session.Request) {
        if r.status != 0 { Metrics.shared.response(status: r.status, http2: false) }
        guard worker.accessLog.enabled, r.status != 0 else { return }
        let now = monotonicNanos()  // not the loop's cached clock: a local response ends in the wake-up it began
        let upstreamMS: Double? = exchange.flatMap { e in e.upstreamHeadAt > 0 ? Double(e.upstreamHeadAt - e.upstreamStart) / 1e6 : nil }
        let version = "HTTP/1.\(r.head.versionMinor)"
        var entry = AccessLog.Entry(
            client: transport.peer.description, sni: transport.serverName, clientCertificate: transport.loggedClientCertificate,
            host: r.head.host, method: r.head.method, path: r.head.target,
            status: r.status, bytesIn: r.bytesIn, bytesOut: r.bytesOut, upstream: exchange?.upstreamAddress,
            durationMS: Double(now - startedAt) / 1e6, upstreamMS: upstreamMS,
            proto: transport.role == .https ? version : version + " (plain)")
        if worker.accessLog.wantsAgent {
            entry.referer = r.head.fields.firstValue(named: "referer")
            entry.userAgent = r.head.fields.firstValue(named: "user-agent")
        }
        worker.accessLog.write(entry)
    }
}
