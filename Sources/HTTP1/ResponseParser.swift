/// A sans-I/O HTTP/1.1 response parser for what origins send back (RFC 9112). Every error is a 502:
/// the client did nothing wrong (RFC 9110 §15.6.3).
public struct ResponseParser: Sendable {
    private enum State: Sendable {
        case head
        case body(BodyDecoder)
        case failed(HTTPParseError)
    }

    /// What the request's method changes about the response's framing (RFC 9112 §6.3 ¶1–2).
    private enum RequestKind: Sendable {
        case other, head, connect
    }

    private let maxHeaderBytes: Int
    private let maxHeaders: Int
    /// A forwarder's parser: heads carry end-to-end fields only (see `init`).
    private let endToEnd: Bool
    private var state = State.head
    private var boundary = HeadBoundary()
    private var requestKind = RequestKind.other
    /// Bytes of a head (or an interim 1xx) have arrived, so EOF now would truncate a response.
    private var responseStarted = false
    /// A buffer for the next head's field section, handed in by `reuse` (else one is allocated).
    private var spare = HTTPFields()

    /// The largest field-section buffer worth keeping for another head (see `reuse`).
    public static let keptSectionBytes = 4096

    /// `endToEnd`: for a forwarder. The hop-by-hop fields, those the Connection field names, and
    /// Content-Length are left out of each head's fields as they are parsed (their meaning is in the
    /// head's framing, `keepAlive`, `connection` and `contentLength`), so the head is forwarded as it
    /// comes, with no second pass over its fields.
    public init(maxHeaderBytes: Int = 65536, maxHeaders: Int = 200, endToEnd: Bool = false) {
        self.maxHeaderBytes = maxHeaderBytes
        self.maxHeaders = maxHeaders
        self.endToEnd = endToEnd
    }

    /// A field section done with (a head's, once written out): its buffer takes the next head's fields,
    /// so a kept-alive origin connection allocates none per response. A buffer over
    /// `keptSectionBytes` is dropped.
    public mutating func reuse(_ fields: consuming HTTPFields) {
        guard fields.capacity <= Self.keptSectionBytes else { return }
        spare = fields
    }

    /// Must be called before each response is parsed, with the method of the request it answers
    /// (HEAD → no body, CONNECT 2xx → tunnel). Without it the response is framed as for GET.
    public mutating func expect(requestMethod: String) {
        switch requestMethod {
        case "HEAD": requestKind = .head
        case "CONNECT": requestKind = .connect
        default: requestKind = .other
        }
    }

    public mutating func parse(_ input: UnsafeRawBufferPointer) throws(HTTPParseError) -> (consumed: Int, event: ResponseEvent) {
        do throws(HTTPParseError) {
            switch state {
            case .failed(let error):
                throw error
            case .head:
                return try parseHead(input)
            case .body(var decoder):
                let (consumed, event) = try decoder.decode(input)
                state = .body(decoder)
                switch event {
                case .needMore: return (consumed, .needMore)
                case .data(let range): return (consumed, .body(range))
                case .end(let trailers):
                    finishResponse()
                    return (consumed, .end(trailers: trailers))
                }
            }
        } catch {
            let failure = error.status == 502 ? error : error.asBadGateway()
            state = .failed(failure)
            throw failure
        }
    }

    /// Upstream closed. For .untilClose bodies (and tunnels) returns .end; if a message is mid-way
    /// otherwise, throws (truncated, RFC 9112 §8); nil if idle.
    public mutating func finishAtEOF() throws(HTTPParseError) -> ResponseEvent? {
        switch state {
        case .failed(let error):
            throw error
        case .head:
            guard responseStarted || !boundary.isEmpty else { return nil }
            throw fail("upstream closed inside a response head (RFC 9112 §8)")
        case .body(let decoder):
            guard decoder.endsCleanlyAtEOF else { throw fail("upstream closed before the body was complete (RFC 9112 §8)") }
            finishResponse()
            return .end(trailers: [])
        }
    }

    /// Records a failure so that every later call reports it too.
    private mutating func fail(_ reason: String) -> HTTPParseError {
        let error = HTTPParseError(status: 502, reason: reason)
        state = .failed(error)
        return error
    }

    private mutating func finishResponse() {
        state = .head
        requestKind = .other
        responseStarted = false
    }

    private mutating func parseHead(_ input: UnsafeRawBufferPointer) throws(HTTPParseError) -> (consumed: Int, event: ResponseEvent) {
        if !input.isEmpty { responseStarted = true }
        switch try boundary.scan(input, limit: maxHeaderBytes) {
        case .incomplete:
            return (0, .needMore)
        case .tooLarge:
            throw .badRequest("response head too large")
        case .complete(let end, let firstLineEnd):
            let head = try makeHead(input.slice(0..<end), firstLineEnd: firstLineEnd)
            if head.status < 200 && head.status != 101 {
                // Interim: the final response to the same request follows (RFC 9110 §15.2).
                return (end, .head(head))
            }
            let limits = BodyLimits(maxTrailerBytes: maxHeaderBytes, maxTrailers: maxHeaders, maxBodyBytes: .max)
            state = .body(BodyDecoder(framing: head.framing, limits: limits))
            return (end, .head(head))
        }
    }

    private mutating func makeHead(_ head: UnsafeRawBufferPointer, firstLineEnd: Int) throws(HTTPParseError) -> ResponseHead {
        let line = try StatusLine(head.slice(0..<firstLineEnd))
        var framing = FramingFields()
        var lines = FieldLines(head, from: firstLineEnd + 2)
        var fields = HTTPFields()
        swap(&fields, &spare)
        fields.removeAll(keepingCapacity: true)   // a buffer still shared is copied here: no worse than a new one
        fields.reserveCapacity(bytes: head.count)  // the section is smaller than the head
        var count = 0
        while let raw = try lines.next() {
            guard count < maxHeaders else { throw .badRequest("too many response header fields") }
            count += 1
            try raw.validate(head)
            let name = head.slice(raw.name)
            let kind = FieldKind(name)
            try framing.add(kind, value: head.slice(raw.value))
            // The kind answers for the framing fields; only other names are looked up (TE, Trailer...).
            if endToEnd && (kind.isHopByHop || kind == .other && HopByHop.isHopByHop(name)) { continue }
            fields.append(name: name, value: head.slice(raw.value))
        }
        // Keep-Alive and Upgrade are hop-by-hop already; other names only when a Connection field lists them.
        if endToEnd && (framing.connection.close || !framing.connection.others.isEmpty) {
            let connection = framing.connection
            fields.removeAll { name, _ in connection.names(name) }
        }
        let bodyFraming = try responseFraming(status: line.status, declared: framing.declaredFraming(versionMinor: line.versionMinor))
        // A body delimited by close can't leave the connection reusable (RFC 9112 §9.3).
        let keepAlive = bodyFraming != .untilClose && framing.keepAlive(versionMinor: line.versionMinor)
        let reason = String(decoding: head.slice(line.reason), as: UTF8.self)
        return ResponseHead(status: line.status, reason: reason, versionMinor: line.versionMinor, fields: fields,
                            framing: bodyFraming, keepAlive: keepAlive, connection: framing.connection,
                            contentLength: framing.contentLength)
    }

    /// RFC 9112 §6.3, in its order. The fields are validated first even when ignored, so a malformed
    /// Content-Length is never forwarded.
    private func responseFraming(status: Int, declared: BodyFraming?) -> BodyFraming {
        // 101: the connection becomes whatever was upgraded to (RFC 9110 §15.2.2).
        if status == 101 { return .untilClose }
        // HEAD responses, 1xx, 204 and 304 have no content (¶1).
        if requestKind == .head || status < 200 || status == 204 || status == 304 { return .none }
        // 2xx to CONNECT: a tunnel starts after the head (¶2).
        if requestKind == .connect && status < 300 { return .untilClose }
        // No framing fields: the body runs until the server closes (¶8).
        return declared ?? .untilClose
    }
}
