/// request-line = method SP request-target SP HTTP-version (RFC 9112 §3). Single spaces only: the
/// RFC's lenient "whitespace-delimited" parsing (§3) is exactly where front and back ends disagree.
struct RequestLine {
    var method: Range<Int>
    var target: Range<Int>
    var versionMinor: Int

    init(_ line: UnsafeRawBufferPointer) throws(HTTPParseError) {
        guard !line.isEmpty else { throw .badRequest("empty request line (RFC 9112 §3)") }
        var i = 0
        while i < line.count, ASCII.isTchar(line[i]) { i += 1 }
        // method = token (RFC 9110 §9.1)
        guard i > 0, i < line.count, line[i] == ASCII.sp else { throw .badRequest("invalid method (RFC 9110 §9.1)") }
        method = 0..<i
        let targetStart = i + 1
        i = targetStart
        // request-target has no whitespace or controls (RFC 9112 §3.2); raw non-ASCII is not a URI either.
        while i < line.count, ASCII.isVisible(line[i]) { i += 1 }
        guard i > targetStart, i < line.count, line[i] == ASCII.sp else {
            throw .badRequest("invalid request target (RFC 9112 §3.2)")
        }
        target = targetStart..<i
        versionMinor = try HTTPVersion.parse(line.slice(i + 1..<line.count))
    }
}

/// status-line = HTTP-version SP status-code SP [ reason-phrase ] (RFC 9112 §4).
struct StatusLine {
    var versionMinor: Int
    var status: Int
    var reason: Range<Int>

    init(_ line: UnsafeRawBufferPointer) throws(HTTPParseError) {
        guard line.count >= 12, line[8] == ASCII.sp else { throw .badRequest("malformed status line (RFC 9112 §4)") }
        versionMinor = try HTTPVersion.parse(line.slice(0..<8))
        // status-code = 3DIGIT, and only 1xx..5xx are defined classes (RFC 9110 §15).
        let d = (line[9], line[10], line[11])
        guard d.0 &- 0x31 < 5, ASCII.isDigit(d.1), ASCII.isDigit(d.2) else {
            throw .badRequest("invalid status code (RFC 9110 §15)")
        }
        status = Int(d.0 &- 0x30) * 100 + Int(d.1 &- 0x30) * 10 + Int(d.2 &- 0x30)
        // The SP before an empty reason is required, but its absence is harmless; accepting it costs nothing.
        if line.count == 12 { reason = 12..<12; return }
        guard line[12] == ASCII.sp else { throw .badRequest("malformed status line (RFC 9112 §4)") }
        // reason-phrase = 1*( HTAB / SP / VCHAR / obs-text ) (RFC 9112 §4)
        for i in 13..<line.count where !ASCII.isFieldValueByte(line[i]) {
            throw .badRequest("control character in reason phrase (RFC 9112 §4)")
        }
        reason = 13..<line.count
    }
}

/// HTTP-version = "HTTP" "/" DIGIT "." DIGIT, case-sensitive (RFC 9112 §2.3).
enum HTTPVersion {
    /// The minor version of HTTP/1.0 or HTTP/1.1; other well-formed versions are 505 (RFC 9110 §15.6.6).
    static func parse(_ v: UnsafeRawBufferPointer) throws(HTTPParseError) -> Int {
        guard v.count == 8, v.slice(0..<5).equals("HTTP/"), ASCII.isDigit(v[5]), v[6] == 0x2E,
              ASCII.isDigit(v[7]) else {
            throw .badRequest("malformed HTTP version (RFC 9112 §2.3)")
        }
        guard v[5] == 0x31, v[7] == 0x30 || v[7] == 0x31 else {
            throw .versionNotSupported("unsupported HTTP version (RFC 9110 §15.6.6)")
        }
        return Int(v[7] &- 0x30)
    }
}
