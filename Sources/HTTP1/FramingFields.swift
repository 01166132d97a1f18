/// What Content-Length, Transfer-Encoding and Connection said, gathered field by field and judged once
/// the head is complete (RFC 9112 §6, RFC 9110 §7.6.1). Shared by requests and responses.
struct FramingFields {
    private(set) var contentLength: Int64?
    private var transfer = TransferCodings()
    private(set) var connection = ConnectionOptions()

    mutating func add(_ kind: FieldKind, value: UnsafeRawBufferPointer) throws(HTTPParseError) {
        switch kind {
        case .contentLength: try addContentLength(value)
        case .transferEncoding: try transfer.add(value)
        case .connection: try addConnection(value)
        default: break
        }
    }

    /// The framing the fields declare, or nil when they declare none (the caller knows the default).
    func declaredFraming(versionMinor: Int) throws(HTTPParseError) -> BodyFraming? {
        guard transfer.isPresent else { return contentLength.map { .length($0) } }
        // Both present is the classic smuggling vector; we reject rather than let TE win (RFC 9112 §6.3 ¶3).
        if contentLength != nil { throw .badRequest("Content-Length and Transfer-Encoding together (RFC 9112 §6.3)") }
        // An HTTP/1.0 message with Transfer-Encoding has faulty framing (RFC 9112 §6.1).
        if versionMinor == 0 { throw .badRequest("Transfer-Encoding in an HTTP/1.0 message (RFC 9112 §6.1)") }
        try transfer.validate()
        return .chunked
    }

    /// HTTP/1.1 persists unless "close"; HTTP/1.0 only with "keep-alive" (RFC 9112 §9.3).
    func keepAlive(versionMinor: Int) -> Bool {
        if connection.close { return false }
        return versionMinor >= 1 || connection.keepAlive
    }

    /// Content-Length = 1*DIGIT (RFC 9110 §8.6). A repeated field or a list ("5, 5") is rejected even when
    /// the values agree: the RFC lets recipients merge them, but a peer that doesn't would frame differently.
    private mutating func addContentLength(_ value: UnsafeRawBufferPointer) throws(HTTPParseError) {
        guard contentLength == nil else { throw .badRequest("repeated Content-Length (RFC 9110 §8.6)") }
        guard !value.isEmpty else { throw .badRequest("empty Content-Length (RFC 9110 §8.6)") }
        var n: Int64 = 0
        for b in value {
            guard ASCII.isDigit(b) else {
                throw .badRequest(b == ASCII.comma ? "Content-Length list (RFC 9110 §8.6)"
                                                   : "invalid Content-Length (RFC 9110 §8.6)")
            }
            let (times10, o1) = n.multipliedReportingOverflow(by: 10)
            let (sum, o2) = times10.addingReportingOverflow(Int64(b &- 0x30))
            guard !o1, !o2 else { throw .badRequest("Content-Length overflows (RFC 9110 §8.6)") }
            n = sum
        }
        contentLength = n
    }

    /// Connection = #connection-option; options are case-insensitive tokens (RFC 9110 §7.6.1).
    private mutating func addConnection(_ value: UnsafeRawBufferPointer) throws(HTTPParseError) {
        try forEachListElement(value) { (element) throws(HTTPParseError) in
            guard element.allSatisfy(ASCII.isTchar) else {
                throw .badRequest("invalid Connection option (RFC 9110 §7.6.1)")
            }
            connection.add(element)
        }
    }
}

/// The options of the Connection fields (RFC 9110 §7.6.1). The three every connection uses are flags;
/// only other options (rare) are kept as names, so a usual head allocates nothing for them.
public struct ConnectionOptions: Sendable, Equatable {
    public var close = false
    public var keepAlive = false
    public var upgrade = false
    /// Other options, lower-cased, in order: names of fields meant for this hop only.
    public var others: [String] = []

    public init(close: Bool = false, keepAlive: Bool = false, upgrade: Bool = false, others: [String] = []) {
        self.close = close
        self.keepAlive = keepAlive
        self.upgrade = upgrade
        self.others = others
    }

    mutating func add(_ option: UnsafeRawBufferPointer) {
        if option.equalsLowercased("close") { close = true }
        else if option.equalsLowercased("keep-alive") { keepAlive = true }
        else if option.equalsLowercased("upgrade") { upgrade = true }
        else { others.append(option.lowercasedASCIIString()) }
    }

    /// Whether a field called `name` is one the Connection fields name (and so not forwarded).
    public func names(_ name: UnsafeRawBufferPointer) -> Bool {
        (close && name.equalsLowercased("close")) || (keepAlive && name.equalsLowercased("keep-alive"))
            || (upgrade && name.equalsLowercased("upgrade"))
            || (!others.isEmpty && others.contains { HTTPFields.nameEquals(name, $0) })
    }
}

/// Calls `body` for each element of a comma-separated list, OWS trimmed. Empty elements are skipped as
/// RFC 9110 §5.6.1 requires of recipients, unless `keepEmpty` asks to see (and reject) them.
func forEachListElement(_ value: UnsafeRawBufferPointer, keepEmpty: Bool = false,
                        _ body: (UnsafeRawBufferPointer) throws(HTTPParseError) -> Void) throws(HTTPParseError) {
    var start = 0
    while start <= value.count {
        var end = start
        while end < value.count, value[end] != ASCII.comma { end += 1 }
        let raw = value.slice(start..<end)
        let element = raw.slice(raw.trimmingOWS())
        if keepEmpty || !element.isEmpty { try body(element) }
        start = end + 1
    }
}

/// The Transfer-Encoding list across all its fields (RFC 9112 §6.1, §7). Only "chunked" is implemented;
/// other codings are 501 (RFC 9112 §6.1) so that no peer is left to guess where the body ends.
private struct TransferCodings {
    private(set) var isPresent = false
    private var codings = 0
    private var chunkedCount = 0
    private var lastIsChunked = false
    private var hasUnsupported = false

    mutating func add(_ value: UnsafeRawBufferPointer) throws(HTTPParseError) {
        isPresent = true
        try forEachListElement(value, keepEmpty: true) { (coding) throws(HTTPParseError) in try addCoding(coding) }
    }

    /// transfer-coding = token *( OWS ";" OWS transfer-parameter ) (RFC 9112 §7). Empty elements are
    /// rejected here, unlike other lists: nothing legitimate sends them and smuggling payloads do.
    private mutating func addCoding(_ element: UnsafeRawBufferPointer) throws(HTTPParseError) {
        var tokenEnd = 0
        while tokenEnd < element.count, ASCII.isTchar(element[tokenEnd]) { tokenEnd += 1 }
        guard tokenEnd > 0 else { throw .badRequest("invalid Transfer-Encoding (RFC 9112 §7)") }
        let rest = element.slice(tokenEnd..<element.count)
        let params = rest.slice(rest.trimmingOWS())
        guard params.isEmpty || params[0] == ASCII.semicolon else {
            throw .badRequest("invalid Transfer-Encoding (RFC 9112 §7)")
        }
        codings += 1
        if element.slice(0..<tokenEnd).equalsLowercased("chunked") {
            // chunked defines no parameters (RFC 9112 §7.1).
            guard params.isEmpty else { throw .badRequest("parameters on chunked (RFC 9112 §7.1)") }
            chunkedCount += 1
            lastIsChunked = true
        } else {
            hasUnsupported = true
            lastIsChunked = false
        }
    }

    func validate() throws(HTTPParseError) {
        // chunked must be applied exactly once and last (RFC 9112 §7, §6.3 ¶4).
        if chunkedCount > 1 { throw .badRequest("chunked applied more than once (RFC 9112 §7)") }
        if chunkedCount == 1 && !lastIsChunked { throw .badRequest("chunked is not the final transfer coding (RFC 9112 §6.3)") }
        if hasUnsupported { throw .notImplemented("unsupported transfer coding (RFC 9112 §6.1)") }
    }
}
