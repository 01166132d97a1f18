import Foundation
import Config
import EventLoop
import HTTP1
import HTTP2
import Logs
import Metrics
import Proxy

/// One request/response on an HTTP/2 connection: the same routing, limits, forwarding and access
/// log as an HTTP/1 request, with the stream's flow control as its backpressure.
final class HTTP2Stream: Downstream {
    let id: Int32
    /// Reached only through its front's stream table (and, unowned, by its own exchange, which it
    /// aborts when it finishes): the front outlives it, so the reference is not checked on each use.
    unowned(unsafe) let front: HTTP2Front
    let startedAt: UInt64
    private(set) var exchange: ProxyExchange?
    /// The route's response headers (usually none).
    private var responseHeaders: [HeaderSetting] = []
    private var method = "-"
    private var target = "-"
    private var host: String?
    private var status = 0
    private var bytesIn: Int64 = 0
    private var bytesOut: Int64 = 0
    private var bodyLimit: Int64 = 0
    /// Local responses and refusals: request body bytes are acknowledged and dropped.
    private var discardBody = false
    /// Request body bytes handed to the upstream but not yet acknowledged to the client.
    private var unconsumed = 0
    private var headSent = false
    private var upstreamAddress: String?
    private var upstreamMS: Double?
    /// Only when the access log's format shows them (combined).
    private var referer: String?
    private var userAgent: String?
    /// An RFC 8441 extended CONNECT for a websocket: forwarded as an HTTP/1.1 upgrade, then the
    /// stream's DATA frames carry the websocket's bytes both ways.
    private var websocket = false
    private var tunnel = false

    init(id: Int32, front: HTTP2Front, startedAt: UInt64) {
        self.id = id; self.front = front; self.startedAt = startedAt
    }

    private var session: HTTP2Session { front.session }
    // The parts read, not `Settings` whole: a computed copy of it retains every string and list it holds.
    private var limits: Limits { front.worker.limits }
    private var timeouts: Timeouts { front.worker.timeouts }

    // MARK: Request

    func begin(_ pseudo: HTTP2PseudoHeaders, _ fields: consuming HTTPFields, endStream: Bool, oversized: Bool) {
        // nghttp2 has already checked the pseudo-header set, lower-case names and the absence of
        // connection-specific fields but TE (RFC 9113 §8.2.2, §8.3); malformed requests never get here.
        if let m = pseudo.method { method = m }
        if let p = pseudo.path { target = p }
        let authority = pseudo.authority
        let connectProtocol = pseudo.connectProtocol
        var hostField: String?
        var contentLength: Int64?
        var cookies: [String] = []
        var strip = false   // a field that does not go on as it is: Host, Cookie, or hop-by-hop (TE, Content-Length...)
        let wantsAgent = front.worker.accessLog.wantsAgent
        fields.forEachLine { line, buf in
            let name = UnsafeRawBufferPointer(rebasing: buf[line.name])
            // By length first: most fields are none of these, and are passed over without a comparison.
            let value = { String(decoding: buf[line.value], as: UTF8.self) }
            switch name.count {
            case 4: if name.equalsLowercased("host") { hostField = value(); strip = true }
            case 6: if name.equalsLowercased("cookie") { cookies.append(value()); strip = true }
            case 7: if wantsAgent && referer == nil && name.equalsLowercased("referer") { referer = value() }
            case 10: if wantsAgent && userAgent == nil && name.equalsLowercased("user-agent") { userAgent = value() }
            case 14: if name.equalsLowercased("content-length") { contentLength = Int64(value()) }
            default: break
            }
            if !strip && HopByHop.isHopByHop(name) { strip = true }
        }
        // RFC 9113 §8.3.1: :authority takes the place of Host.
        host = authority ?? hostField
        if oversized {
            refuse(status: 431, reason: "request header fields exceed the configured limits")
            return
        }
        let transport = front.transport   // one checked `unowned` load, not one per use
        if let reason = transport.misdirected(host: host) {
            refuse(status: 421, reason: reason)
            return
        }
        if method == "CONNECT" {
            // RFC 8441 §4: only extended CONNECT for websockets; plain CONNECT (a TCP tunnel) is not offered.
            guard connectProtocol?.lowercased() == "websocket" else {
                refuse(status: 501, reason: connectProtocol == nil ? "CONNECT is not supported"
                                                                   : "extended CONNECT for \(connectProtocol!) is not supported (websocket is)")
                return
            }
            websocket = true
        }
        // RFC 9113 §8.2.3: cookie crumbs are joined again for an HTTP/1.1 hop.
        // What goes on as HTTP/1.1 fields: no pseudo-headers (the session kept them apart), Host from
        // the authority, and no hop-by-hop fields (nghttp2 let only TE: trailers through). The session
        // handed over the only reference, so those are dropped in place (when there are any), and the
        // session's reserve leaves room for X-Forwarded-*.
        var forwarded = consume fields
        if strip {
            forwarded.removeAll { name, _ in
                name.equalsLowercased("host") || name.equalsLowercased("cookie") || HopByHop.isHopByHop(name)
            }
        }
        if !cookies.isEmpty { forwarded.append(name: "cookie", value: cookies.joined(separator: "; ")) }
        let length: Int64? = endStream || websocket ? 0 : contentLength
        switch RequestPolicy.decide(front.worker.config.router, host: host, path: target, declaredLength: length,
                                    limits: limits) {
        case .notFound:
            respond(status: 404, body: "no route for this host and path\n")
        case .tooLarge(let n, let limit):
            refuse(status: 413, reason: "request body of \(n) bytes exceeds the limit of \(limit)")
        case .respond(let fixed, let limit, let headers):
            bodyLimit = limit
            respond(status: fixed.status, body: fixed.body, contentType: fixed.contentType, extra: RequestPolicy.fields(headers))
        case .proxy(let upstream, let forwardedHeaders, let limit, let headers):
            bodyLimit = limit
            responseHeaders = headers
            if forwardedHeaders { RequestPolicy.addForwarded(&forwarded, client: transport.clientHost, host: host) }
            if websocket {
                // RFC 6455 §4.1 for the HTTP/1.1 hop: the key RFC 8441 §5 leaves out of HTTP/2.
                let nonce = (0..<16).map { _ in UInt8.random(in: 0 ... .max) }
                forwarded.append(name: "sec-websocket-key", value: Data(nonce).base64EncodedString())
            }
            let clientConnection = transport.personalize(&forwarded, upstream: upstream)
            let e = ProxyExchange(pool: front.worker.pool, upstream: upstream, method: websocket ? "GET" : method,
                                  target: target, addingHost: host, fields: forwarded, bodyLength: length,
                                  upgrade: websocket ? "websocket" : nil, client: clientConnection, timeouts: timeouts,
                                  downstream: self)
            exchange = e
            e.start()
        }
    }

    func body(_ bytes: UnsafeRawBufferPointer) {
        bytesIn += Int64(bytes.count)
        // A websocket's bytes are not a request body: no body limit applies (as HTTP/1 tunnels).
        if bodyLimit > 0 && bytesIn > bodyLimit && !discardBody && !websocket {
            refuse(status: 413, reason: "request body exceeds the limit of \(bodyLimit)")
        }
        guard !discardBody, let e = exchange else {
            session.consume(stream: id, count: bytes.count)
            return
        }
        e.requestBody(bytes)
        // The client may send more only once the upstream keeps up: its window is our buffer bound.
        if e.upstreamBacklog <= ProxyExchange.highWater {
            session.consume(stream: id, count: bytes.count)
        } else {
            unconsumed += bytes.count
        }
    }

    func bodyEnded(_ trailers: [HTTPField]) {
        guard !discardBody else { return }
        if tunnel {
            // The client ended the websocket stream: the tunnel is over both ways.
            exchange?.abort()
            exchange = nil
            session.finishData(stream: id)
            front.pumpSoon()
            return
        }
        exchange?.requestEnd(trailers: trailers)
    }

    /// The stream closed (completed, reset by either side, or the connection went away).
    func finish(error: UInt32) {
        if let e = exchange {
            upstreamAddress = e.upstreamAddress
            if e.upstreamHeadAt > 0 { upstreamMS = Double(e.upstreamHeadAt - e.upstreamStart) / 1e6 }
            if !e.finished { e.abort() }
        }
        exchange = nil
        // A stream the client reset before any response is logged as nginx does: 499.
        if status == 0 && error != HTTP2Error.noError.rawValue { status = 499 }
        logAccess()
    }

    private func logAccess() {
        guard status != 0 else { return }
        Metrics.shared.response(status: status, http2: true)
        guard front.worker.accessLog.enabled else { return }
        let c = front.transport
        front.log(AccessLog.Entry(
            client: c.peer.description, sni: c.serverName, clientCertificate: c.loggedClientCertificate,
            host: host, method: method, path: target,
            status: status, bytesIn: bytesIn, bytesOut: bytesOut, upstream: upstreamAddress,
            durationMS: Double(monotonicNanos() - startedAt) / 1e6, upstreamMS: upstreamMS, proto: "HTTP/2",
            referer: referer, userAgent: userAgent))
    }

    // MARK: Local responses

    private func respond(status: Int, body: String, contentType: String = "text/plain; charset=utf-8",
                         extra: [HTTPField] = []) {
        discardBody = true
        headSent = true
        self.status = status
        let bytes = Array(body.utf8)
        let fields = HTTPFields([HTTPField(name: "content-type", value: contentType),
                                 HTTPField(name: "content-length", value: String(bytes.count))] + extra)
        let withBody = method != "HEAD" && !bytes.isEmpty
        session.submitResponse(stream: id, status: status, fields: fields, hasBody: withBody)
        if withBody {
            bytes.withUnsafeBytes { session.sendData(stream: id, $0) }
            session.finishData(stream: id)
            bytesOut += Int64(bytes.count)
        }
        front.pumpSoon()
    }

    private func refuse(status: Int, reason: String) {
        Log.debug("refused h2 request from \(front.transport.peer): \(status) \(reason)")
        if let e = exchange {
            upstreamAddress = e.upstreamAddress
            e.abort()
            exchange = nil
        }
        answerError(status: status, reason: reason, orReset: .cancel)
    }

    // MARK: Downstream

    func responseHead(_ head: ProxyResponseHead) {
        if websocket {
            // RFC 8441 §5: the origin's 101 is a 2xx here, without the HTTP/1.1 upgrade fields;
            // any other answer passes through, but a 2xx would claim a tunnel that is not there.
            if head.status == 101 {
                status = 200
                headSent = true
                upstreamAddress = exchange?.upstreamAddress
                var fields = head.fields
                fields.removeAll { name, _ in
                    name.equalsLowercased("connection") || name.equalsLowercased("upgrade") || name.equalsLowercased("sec-websocket-accept")
                }
                session.submitResponse(stream: id, status: 200, fields: fields, hasBody: true)
                return
            }
            if (200..<300).contains(head.status) {
                exchange?.abort()
                exchange = nil
                answerError(status: 502, reason: "the upstream server did not switch to the websocket protocol", orReset: .internalError)
                return
            }
        }
        // Interim responses other than 100 (the front's to send) pass through, e.g. 103 Early Hints.
        guard head.status >= 200 else {
            if !headSent { session.submitInterim(stream: id, status: head.status, fields: head.fields); front.pumpSoon() }
            return
        }
        status = head.status
        headSent = true
        upstreamAddress = exchange?.upstreamAddress
        var fields = head.fields
        RequestPolicy.setResponseHeaders(&fields, status: head.status, responseHeaders)
        // HopByHop already dropped the connection-specific fields RFC 9113 §8.2.2 forbids.
        session.submitResponse(stream: id, status: head.status, fields: fields, contentLength: head.bodyLength,
                               hasBody: head.hasBody && method != "HEAD")
    }

    func responseBody(_ bytes: UnsafeRawBufferPointer) {
        bytesOut += Int64(bytes.count)
        session.sendData(stream: id, bytes)
    }

    func responseFlush() { front.pumpSoon() }

    func responseEnd(trailers: [HTTPField]) {
        if let e = exchange, e.upstreamHeadAt > 0 { upstreamMS = Double(e.upstreamHeadAt - e.upstreamStart) / 1e6 }
        session.finishData(stream: id, trailers: trailers)
        front.pumpSoon()
    }

    func responseFailed(status: Int, reason: String) {
        Metrics.shared.upstreamError()
        upstreamAddress = exchange?.upstreamAddress
        exchange = nil
        answerError(status: status, reason: reason, orReset: .internalError)
    }

    /// An error response, or, once part of a response went out, a reset: only that tells the
    /// client the response is incomplete.
    private func answerError(status: Int, reason: String, orReset error: HTTP2Error) {
        if headSent {
            session.reset(stream: id, error: error)
            front.pumpSoon()
            return
        }
        respond(status: status, body: "\(HTTP1Writer.reasonPhrase(status)): \(reason)\n")
    }

    func tunnelEstablished() {
        guard websocket else {
            // Never asked for: other HTTP/2 requests carry no Upgrade.
            session.reset(stream: id, error: .internalError)
            front.pumpSoon()
            return
        }
        tunnel = true
        front.pumpSoon()
    }

    /// The stream's bytes not yet taken by nghttp2 (its flow-control window or the socket).
    /// Past the stream's own mark this reads as over the exchange's high water, so the exchange
    /// pauses the origin at a per-stream bound much smaller than HTTP/1's per-connection one.
    var downstreamBacklog: Int {
        let b = session.buffered(stream: id)
        return b > session.settings.streamHighWater ? ProxyExchange.highWater + 1 : b
    }

    func requestBodyWanted() {
        guard unconsumed > 0 else { return }
        session.consume(stream: id, count: unconsumed)
        unconsumed = 0
        front.pumpSoon()
    }
}
