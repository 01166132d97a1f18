/// The server side of one HTTP/1.1 connection as a sans-I/O state machine (RFC 9112 §9.3):
/// requests one at a time, bytes of pipelined requests left unconsumed until the response before
/// them is complete, each response framed for its client (Content-Length, chunked, or the end of
/// the connection), and whether the connection stays open afterwards.
///
/// The caller moves the bytes: it feeds what it read to `next` until the session needs more or
/// must wait, routes each head (`forward`, `respond` or `refuse`), and hands the response over
/// with `responseHead` / `responseBody` / `responseEnd`, writing out what they append to its
/// output buffer. Every answer that ends a request says what the connection does next.
public struct HTTP1Session: Sendable {
    public enum Phase: Sendable, Equatable {
        /// Reading requests and answering them.
        case open
        /// A 101 made the connection a tunnel: bytes pass through both ways untouched.
        case tunnel
        /// Nothing more is read: the connection closes once its output is written.
        case closing
    }

    /// One request, from its head until both its body and its response are done.
    public struct Request: Sendable, Equatable {
        public let head: RequestHead
        /// The final status sent (101 for a tunnel), 0 while none was.
        public fileprivate(set) var status = 0
        /// Body bytes received (de-chunked), forwarded or dropped.
        public fileprivate(set) var bytesIn: Int64 = 0
        /// Bytes written for the response: head, framing and body.
        public fileprivate(set) var bytesOut: Int64 = 0
        /// A final (or 101) response head went out: an error can no longer be answered, only cut.
        public fileprivate(set) var responseStarted = false
        /// The request went to an origin (its body is forwarded as `.body` events).
        public fileprivate(set) var forwarded = false
        fileprivate var keepAlive: Bool
        fileprivate var bodyLimit: Int64 = 0
        fileprivate var bodyDone = false
        fileprivate var responseDone = false
        /// Body bytes are read and dropped (local responses, refusals, an origin that answered early).
        fileprivate var discardBody = false
        fileprivate var chunked = false

        fileprivate init(head: RequestHead, keepAlive: Bool, bodyLimit: Int64) {
            self.head = head
            self.keepAlive = keepAlive
            self.bodyLimit = bodyLimit
        }

        fileprivate static let idle = Request(head: .placeholder, keepAlive: false, bodyLimit: 0)
    }

    public enum Event: Sendable, Equatable {
        /// Keep the unconsumed bytes and feed them again with more.
        case needMore
        /// A request is complete and its response is not: keep the unconsumed bytes (a pipelined
        /// request) until the response ends.
        case waitForResponse
        /// A request head: route it, then call `forward`, `respond` or `refuse`.
        case head(RequestHead)
        /// Body bytes of the forwarded request: `input[range]` of the buffer given to `next`, de-chunked.
        case body(Range<Int>)
        /// The forwarded request's body ended.
        case end(trailers: [HTTPField])
        /// A request answered here is complete: log it; `close`: the connection closes once flushed.
        case finished(Request, close: Bool)
        /// The connection is a tunnel: every byte from here on (none consumed) belongs to it.
        case tunnel
        /// The input is malformed or over a limit: answer with `refuse(status:reason:into:)`.
        case invalid(status: Int, reason: String)
        /// Nothing more is read: drop the input.
        case closed
    }

    /// What the connection does after a call on the response side.
    public enum Next: Sendable, Equatable {
        /// The request is still running (its body or its response).
        case carryOn
        /// The request is complete: log it; then read the next one, or (`close`) write out what is
        /// queued and close.
        case finished(Request, close: Bool)
        /// A response was cut short (only closing tells the client): close now.
        case closeNow
    }

    public private(set) var phase = Phase.open
    /// The request being served, if any (a copy: the hot paths read `current` in place).
    public var request: Request? { serving ? current : nil }
    /// Whether a request is being served (its head came, its response or body is not done).
    public var isServing: Bool { serving }
    /// The request being served while `serving`; a placeholder otherwise. Not an optional: reading a
    /// field through `Optional!` copies the whole request (and retains its head).
    private var current = Request.idle
    private var serving = false
    private var parser: RequestParser
    /// Graceful shutdown: the current response is the connection's last.
    private var draining = false
    /// The client half-closed after its request: the response finishes, then the connection closes.
    private var peerDone = false

    /// Every request's body limit until routing sets its own (0: none).
    private let maxBodyBytes: Int64

    public init(maxHeaderBytes: Int, maxHeaders: Int, maxBodyBytes: Int64 = 0) {
        parser = RequestParser(maxHeaderBytes: maxHeaderBytes, maxHeaders: maxHeaders)
        self.maxBodyBytes = maxBodyBytes
    }

    // MARK: Input

    /// Parses from the start of `input`: how many bytes were consumed and what they meant. The caller
    /// calls again with the rest until `.needMore`, `.waitForResponse`, `.tunnel` or `.closed`.
    public mutating func next(_ input: UnsafeRawBufferPointer) -> (consumed: Int, event: Event) {
        var offset = 0
        while true {
            switch phase {
            case .closing: return (input.count, .closed)
            case .tunnel: return (offset, .tunnel)
            case .open: break
            }
            // The next request's head is read only once the current response is complete.
            if serving && current.bodyDone { return (offset, .waitForResponse) }
            let base = offset
            let step: (consumed: Int, event: RequestEvent)
            do { step = try parser.parse(UnsafeRawBufferPointer(rebasing: input[base...])) } catch {
                return (offset, .invalid(status: error.status, reason: error.reason))
            }
            offset += step.consumed
            switch step.event {
            case .needMore:
                return (offset, .needMore)
            case .head(let head):
                current = Request(head: head, keepAlive: head.keepAlive && !draining, bodyLimit: maxBodyBytes)
                serving = true
                return (offset, .head(head))
            case .body(let range):
                guard serving else { continue }
                current.bytesIn += Int64(range.count)
                if current.bodyLimit > 0 && current.bytesIn > current.bodyLimit {
                    return (offset, .invalid(status: 413, reason: "request body exceeds the limit of \(current.bodyLimit)"))
                }
                if current.discardBody { continue }
                return (offset, .body((base + range.lowerBound)..<(base + range.upperBound)))
            case .end(let trailers):
                guard serving else { continue }
                current.bodyDone = true
                if !current.discardBody { return (offset, .end(trailers: trailers)) }
                if case .finished(let r, let close) = finishIfDone() { return (offset, .finished(r, close: close)) }
            }
        }
    }

    /// Whether a head has begun: the unconsumed bytes (if any) are part of one, not a pipelined request.
    public var awaitingHead: Bool { phase == .open && !serving }

    // MARK: Routing decisions

    /// The current request goes to an origin: its body comes as `.body` events, at most `bodyLimit`
    /// bytes (0: no limit). A client waiting for "100 Continue" gets it now, since the body will be
    /// read (RFC 9110 §10.1.1). An HTTP/1.0 client's expectation is ignored (ibid.): it gets no 1xx.
    public mutating func forward(bodyLimit: Int64, into out: inout [UInt8]) {
        guard serving else { return }
        current.forwarded = true
        current.bodyLimit = bodyLimit
        if current.head.expectContinue && current.head.versionMinor >= 1 && current.head.framing != .none
            && current.head.framing != .length(0) {
            let before = out.count
            out.append(contentsOf: "HTTP/1.1 100 Continue\r\n\r\n".utf8)
            current.bytesOut += Int64(out.count - before)
        }
    }

    /// A complete response made here; the request body, if any, is read (within `bodyLimit`, when
    /// given: the route's) and dropped.
    public mutating func respond(status: Int, body: String, contentType: String = "text/plain; charset=utf-8",
                                 extra: [HTTPField] = [], bodyLimit: Int64? = nil, into out: inout [UInt8]) -> Next {
        guard serving else { return .carryOn }
        current.discardBody = true
        if let bodyLimit { current.bodyLimit = bodyLimit }
        // 204 and 304 have no content and no Content-Length (RFC 9110 §6.4.1, §8.6).
        let bodyless = status == 204 || status == 304
        let bytes = bodyless ? [] : Array(body.utf8)
        var fields = bodyless ? extra : [HTTPField(name: "Content-Type", value: contentType),
                                         HTTPField(name: "Content-Length", value: String(bytes.count))] + extra
        if !current.keepAlive || draining { fields.append(HTTPField(name: "Connection", value: "close")) }
        let before = out.count
        HTTP1Writer.appendResponseHead(status: status, reason: nil, fields: fields, into: &out)
        if current.head.method != "HEAD" { out += bytes }
        current.status = status
        current.responseStarted = true
        current.responseDone = true
        current.bytesOut += Int64(out.count - before)
        return finishIfDone()
    }

    /// Malformed or refused input: an error response, then the connection closes without reading
    /// further (the request is never forwarded). Once a response began, only closing can say so.
    public mutating func refuse(status: Int, reason: String, into out: inout [UInt8]) -> Next {
        if serving && current.responseStarted { return .closeNow }
        if !serving { current = Request.idle; serving = true }
        current.keepAlive = false
        current.bodyDone = true
        let next = respond(status: status, body: "\(HTTP1Writer.reasonPhrase(status)): \(reason)\n", into: &out)
        phase = .closing
        return next
    }

    // MARK: The response

    /// A response head from the origin (end-to-end fields only): framed with Content-Length when its
    /// length is known, else chunked for HTTP/1.1 clients, else by closing the connection (HTTP/1.0).
    /// Interim (1xx) responses are not sent to HTTP/1.0 clients (RFC 9110 §15.2); 101 cannot arise
    /// for them, as their requests carry no upgrade.
    public mutating func responseHead(status: Int, reason: String?, fields: HTTPFields, bodyLength: Int64?,
                                      hasBody: Bool, into out: inout [UInt8]) {
        guard serving else { return }
        if status < 200 && status != 101 && current.head.versionMinor == 0 { return }
        // The framing fields are written after the origin's, on the way (no new field list).
        var length: Int64?
        var close = false
        if status >= 200 {
            current.status = status
            current.responseStarted = true
            if hasBody {
                if let n = bodyLength {
                    length = n
                } else if current.head.versionMinor >= 1 {
                    current.chunked = true
                } else {
                    current.keepAlive = false   // HTTP/1.0: the end of the body is the end of the connection
                }
            } else {
                length = bodyLength
            }
            if !current.keepAlive || draining {
                current.keepAlive = false
                close = true
            }
        } else if status == 101 {
            current.status = 101
            current.responseStarted = true
        }
        let before = out.count
        HTTP1Writer.appendStatusLine(status: status, reason: reason, room: HTTP1Writer.size(of: fields) + 64, into: &out)
        HTTP1Writer.appendFields(fields, into: &out)
        if let length { HTTP1Writer.appendContentLength(length, into: &out) }
        if current.chunked { HTTP1Writer.appendField("Transfer-Encoding", "chunked", into: &out) }
        if close { HTTP1Writer.appendField("Connection", "close", into: &out) }
        HTTP1Writer.appendHeadEnd(into: &out)
        current.bytesOut += Int64(out.count - before)
    }

    public mutating func responseBody(_ bytes: UnsafeRawBufferPointer, into out: inout [UInt8]) {
        guard serving else { return }
        let before = out.count
        if current.chunked && phase != .tunnel {
            HTTP1Writer.appendChunk(bytes, into: &out)
        } else {
            out.append(contentsOf: bytes)
        }
        current.bytesOut += Int64(out.count - before)
    }

    public mutating func responseEnd(trailers: [HTTPField], into out: inout [UInt8]) -> Next {
        guard serving else { return .carryOn }
        if phase == .tunnel {
            // Either side closing ends the tunnel, and the connection with it.
            current.responseDone = true
            current.bodyDone = true
            let r = takeCurrent()
            phase = .closing
            return .finished(r, close: true)
        }
        if current.chunked {
            let before = out.count
            HTTP1Writer.appendLastChunk(trailers: trailers, into: &out)
            current.bytesOut += Int64(out.count - before)
        }
        current.responseDone = true
        if !current.bodyDone {
            // The origin answered before the body ended: the rest is dropped, as nginx does.
            current.discardBody = true
            current.keepAlive = false
        }
        return finishIfDone()
    }

    /// Nothing, or only part, of a response could be had from the origin.
    public mutating func responseFailed(status: Int, reason: String, into out: inout [UInt8]) -> Next {
        guard serving else { return .carryOn }
        if current.responseStarted || phase == .tunnel { return .closeNow }
        // A request without a body can fail before its end is parsed (every server down: 503 at once).
        current.keepAlive = current.keepAlive && (current.bodyDone || current.head.framing == .none || current.head.framing == .length(0))
        return respond(status: status, body: "\(HTTP1Writer.reasonPhrase(status)): \(reason)\n", into: &out)
    }

    /// The origin switched protocols: from now on the connection carries the tunnel's bytes.
    public mutating func tunnelEstablished() {
        guard phase == .open, serving else { return }
        phase = .tunnel
    }

    // MARK: The connection

    /// The client half-closed. True: a forwarded request is complete and its response is still
    /// coming, so it is finished and then the connection closes; false: close now.
    public mutating func peerClosed() -> Bool {
        guard serving, phase == .open, current.forwarded, current.bodyDone, !current.responseDone else { return false }
        peerDone = true
        return true
    }

    /// Graceful shutdown. True: no request is running, close now; false: the current one is the last.
    public mutating func drain() -> Bool {
        draining = true
        guard serving else { return true }
        current.keepAlive = false
        return false
    }

    /// The timer ran out. Part of a head arrived (`partialHead`): 408, then close; otherwise close.
    public mutating func timedOut(partialHead: Bool, into out: inout [UInt8]) -> Next {
        guard awaitingHead, partialHead else { return .closeNow }
        return refuse(status: 408, reason: "the request head did not arrive in time", into: &out)
    }

    /// The finished request, moved out (no copy); the slot holds the placeholder again.
    private mutating func takeCurrent() -> Request {
        var r = Request.idle
        swap(&r, &current)
        serving = false
        return r
    }

    /// Both halves done: the request is over, and the connection carries on unless it must not.
    private mutating func finishIfDone() -> Next {
        guard serving, current.bodyDone, current.responseDone else { return .carryOn }
        let r = takeCurrent()
        let close = !r.keepAlive || draining || peerDone || phase == .closing
        if close { phase = .closing }
        return .finished(r, close: close)
    }
}

extension RequestHead {
    /// Stands in for a head that never parsed, so a refusal can be answered and logged.
    public static let placeholder = RequestHead(method: "-", target: "-", versionMinor: 1, fields: [], host: nil,
                                                framing: .none, keepAlive: false, expectContinue: false, upgrade: nil,
                                                connection: ConnectionOptions())
}
