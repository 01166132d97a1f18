/// A sans-I/O HTTP/1.1 request parser (RFC 9112): feed it bytes, it says what they mean. Anything
/// malformed or ambiguous throws; the caller answers `error.status` and closes, never forwarding it.
public struct RequestParser: Sendable {
    private enum State: Sendable {
        case head
        case body(BodyDecoder)
        case failed(HTTPParseError)
    }

    /// RFC 9112 §2.2 asks servers to ignore at least one empty line before a request line (old clients
    /// sent CRLF after a POST body); a few are tolerated, more is garbage.
    static let maxLeadingEmptyLines = 4

    private let maxHeaderBytes: Int
    private let maxHeaders: Int
    private let maxBodyBytes: Int64
    private var state = State.head
    private var boundary = HeadBoundary()
    private var leadingEmptyLines = 0

    /// - Parameters:
    ///   - maxHeaderBytes: request line + fields + empty line; also the trailer section's limit.
    ///   - maxHeaders: field lines in the head; also the trailer section's limit.
    ///   - maxBodyBytes: larger Content-Length or chunked bodies are 413 (RFC 9110 §15.5.14).
    public init(maxHeaderBytes: Int = 16384, maxHeaders: Int = 100, maxBodyBytes: Int64 = .max) {
        self.maxHeaderBytes = maxHeaderBytes
        self.maxHeaders = maxHeaders
        self.maxBodyBytes = maxBodyBytes
    }

    /// Parses from the start of `input`. Returns how many bytes of `input` were consumed and what they
    /// meant; the caller drops the consumed prefix and calls again with what remains (+ new bytes).
    /// After a throw, the connection must be closed (the parser keeps throwing the same error).
    public mutating func parse(_ input: UnsafeRawBufferPointer) throws(HTTPParseError) -> (consumed: Int, event: RequestEvent) {
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
                    state = .head
                    return (consumed, .end(trailers: trailers))
                }
            }
        } catch {
            state = .failed(error)
            throw error
        }
    }

    private mutating func parseHead(_ input: UnsafeRawBufferPointer) throws(HTTPParseError) -> (consumed: Int, event: RequestEvent) {
        let offset = try skipLeadingEmptyLines(input)
        let rest = input.slice(offset..<input.count)
        switch try boundary.scan(rest, limit: maxHeaderBytes) {
        case .incomplete:
            return (offset, .needMore)
        case .tooLarge(let firstLineComplete):
            // An oversize request line is a malformed request (RFC 9112 §3); oversize fields are 431 (RFC 6585 §5).
            throw firstLineComplete ? .fieldsTooLarge("request head too large (RFC 6585 §5)")
                                    : .badRequest("request line too long (RFC 9112 §3)")
        case .complete(let end, let firstLineEnd):
            let head = try makeHead(rest.slice(0..<end), firstLineEnd: firstLineEnd)
            // Refuse a body that would be too large before any of it is read (RFC 9110 §15.5.14).
            if case .length(let n) = head.framing, n > maxBodyBytes { throw .contentTooLarge("Content-Length too large") }
            leadingEmptyLines = 0
            let limits = BodyLimits(maxTrailerBytes: maxHeaderBytes, maxTrailers: maxHeaders, maxBodyBytes: maxBodyBytes)
            state = .body(BodyDecoder(framing: head.framing, limits: limits))
            return (offset + end, .head(head))
        }
    }

    /// Consumes the CRLFs tolerated before a request line (RFC 9112 §2.2), only while no head has begun.
    private mutating func skipLeadingEmptyLines(_ input: UnsafeRawBufferPointer) throws(HTTPParseError) -> Int {
        guard boundary.isEmpty else { return 0 }
        var offset = 0
        while offset + 1 < input.count, input[offset] == ASCII.cr, input[offset + 1] == ASCII.lf {
            leadingEmptyLines += 1
            guard leadingEmptyLines <= Self.maxLeadingEmptyLines else {
                throw .badRequest("too many empty lines before the request line (RFC 9112 §2.2)")
            }
            offset += 2
        }
        return offset
    }

    private func makeHead(_ head: UnsafeRawBufferPointer, firstLineEnd: Int) throws(HTTPParseError) -> RequestHead {
        let line = try RequestLine(head.slice(0..<firstLineEnd))
        let method = head.slice(line.method)
        let target = try RequestTarget(head.slice(line.target), method: method)
        var fields = RequestFields(versionMinor: line.versionMinor)
        var lines = FieldLines(head, from: firstLineEnd + 2)
        var list = HTTPFields()
        list.reserveCapacity(bytes: head.count)  // the section is smaller than the head
        while let raw = try lines.next() {
            guard list.count < maxHeaders else { throw .fieldsTooLarge("too many header fields (RFC 6585 §5)") }
            try raw.validate(head)
            try fields.add(FieldKind(head.slice(raw.name)), value: head.slice(raw.value))
            list.append(name: head.slice(raw.name), value: head.slice(raw.value))
        }
        return try fields.makeHead(method: method.asciiString(), target: target, fields: list)
    }
}
