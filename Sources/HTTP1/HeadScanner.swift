/// Finds where a head (start line, field lines, empty line) or a trailer section ends, remembering how
/// far it looked so that a head arriving in pieces is scanned once, not from byte 0 on every call.
///
/// It also proves every line ends in CRLF. A bare CR or a bare LF is where two parsers most often
/// disagree about line boundaries (the request-smuggling lever), so both are errors here even though
/// RFC 9112 §2.2 lets a recipient treat a bare LF as a line end.
struct HeadBoundary: Sendable {
    enum Outcome: Equatable {
        case incomplete
        /// `end` is just past the empty line's CRLF; `firstLineEnd` is the CR ending the first line.
        case complete(end: Int, firstLineEnd: Int)
        /// No empty line within `limit` bytes; `firstLineComplete` tells an oversize start line apart.
        case tooLarge(firstLineComplete: Bool)
    }

    /// Bytes already known to hold no end of head. Valid only while the caller keeps the bytes.
    private(set) var scanned = 0
    private var firstLineEnd: Int?

    var isEmpty: Bool { scanned == 0 }

    mutating func scan(_ buf: UnsafeRawBufferPointer, limit: Int) throws(HTTPParseError) -> Outcome {
        if scanned > buf.count { self = .init() }  // the caller broke the contract; start over safely
        var i = scanned
        let stop = Swift.min(buf.count, limit)
        while i < stop {
            // Most bytes are text: skip eight at a time while none of them is CR, LF or another control.
            if i &+ 8 <= stop, !ASCII.anyBelow(buf.word(at: i), ASCII.cr + 1) { i &+= 8; continue }
            let b = buf[i]
            if b > ASCII.cr { i += 1; continue }
            if b == ASCII.lf { throw .badRequest("bare LF in head (RFC 9112 §2.2)") }
            guard b == ASCII.cr else { i += 1; continue }  // other controls are judged line by line
            guard i + 1 < buf.count else { break }  // judge this CR when its next byte arrives
            guard buf[i + 1] == ASCII.lf else { throw .badRequest("bare CR in head (RFC 9112 §2.2)") }
            let lineEnd = i
            if firstLineEnd == nil { firstLineEnd = lineEnd }
            i += 2
            // An empty line: CRLF at the very start (empty trailer section) or right after another CRLF.
            if lineEnd == 0 || buf[lineEnd - 1] == ASCII.lf {
                let first = firstLineEnd ?? lineEnd
                self = .init()
                return i <= limit ? .complete(end: i, firstLineEnd: first) : .tooLarge(firstLineComplete: true)
            }
        }
        scanned = i
        return i >= limit ? .tooLarge(firstLineComplete: firstLineEnd != nil) : .incomplete
    }
}

/// One field line: name and OWS-trimmed value as ranges into the section's buffer (RFC 9112 §5).
struct RawField {
    var name: Range<Int>
    var value: Range<Int>
    var valueIsASCII: Bool
}

/// Walks the field lines of a section that `HeadBoundary` has proven complete, so every line is known
/// to end in CRLF and the section in an empty line; the loops below rely on that to stop.
struct FieldLines {
    private let buf: UnsafeRawBufferPointer
    private var position: Int

    init(_ buf: UnsafeRawBufferPointer, from position: Int) {
        self.buf = buf
        self.position = position
    }

    /// The next field, or nil at the empty line that ends the section.
    mutating func next() throws(HTTPParseError) -> RawField? {
        let start = position
        let first = buf[start]
        if first == ASCII.cr { position += 2; return nil }
        // obs-fold, or whitespace between the start line and the first field: reject (RFC 9112 §5.2, §2.2).
        if ASCII.isOWS(first) { throw .badRequest("obs-fold or leading whitespace in field line (RFC 9112 §5.2)") }
        let nameEnd = try scanName(from: start)
        let (value, ascii, lineEnd) = try scanValue(from: nameEnd + 1)
        position = lineEnd + 2
        return RawField(name: start..<nameEnd, value: value, valueIsASCII: ascii)
    }

    /// field-name = token, immediately followed by ":" (RFC 9110 §5.1, RFC 9112 §5.1).
    private func scanName(from start: Int) throws(HTTPParseError) -> Int {
        var i = start
        while true {
            let b = buf[i]
            if b == ASCII.colon { break }
            if ASCII.isTchar(b) { i += 1; continue }
            // No whitespace is allowed between name and colon (RFC 9112 §5.1).
            if ASCII.isOWS(b) { throw .badRequest("whitespace between field name and colon (RFC 9112 §5.1)") }
            if b == ASCII.cr { throw .badRequest("field line without a colon (RFC 9112 §5)") }
            throw .badRequest("invalid character in field name (RFC 9110 §5.1)")
        }
        guard i > start else { throw .badRequest("empty field name (RFC 9110 §5.1)") }
        return i
    }

    /// field-value = *field-content, without leading/trailing OWS; CTLs other than HTAB are invalid
    /// (RFC 9110 §5.5).
    private func scanValue(from start: Int) throws(HTTPParseError) -> (Range<Int>, Bool, Int) {
        var i = start
        while ASCII.isOWS(buf[i]) { i += 1 }
        let valueStart = i
        var ascii = true
        // Eight bytes at a time while they are SP or visible ASCII; otherwise one by one up to the next
        // word. The line ends in CRLF, and CR never passes as text, so both loops stop at its end.
        line: while true {
            if i &+ 8 <= buf.count, ASCII.isPlainText(buf.word(at: i)) { i &+= 8; continue }
            for _ in 0..<8 {
                let b = buf[i]
                if b == ASCII.cr { break line }
                guard ASCII.isFieldValueByte(b) else {
                    throw .badRequest("control character in field value (RFC 9110 §5.5)")
                }
                if b >= 0x80 { ascii = false }
                i += 1
            }
        }
        var valueEnd = i
        while valueEnd > valueStart && ASCII.isOWS(buf[valueEnd - 1]) { valueEnd -= 1 }
        return (valueStart..<valueEnd, ascii, i)
    }
}

extension RawField {
    /// obs-text is allowed (RFC 9110 §5.5), but bytes that are not UTF-8 are rejected rather than
    /// repaired: a proxy that re-serialises a changed value would forward a different message than the
    /// one it checked (and every String made of the value later must equal the bytes).
    func validate(_ buf: UnsafeRawBufferPointer) throws(HTTPParseError) {
        if valueIsASCII { return }
        guard String(validating: buf.slice(value), as: UTF8.self) != nil else {
            throw .badRequest("field value is not valid UTF-8")
        }
    }

    func makeField(_ buf: UnsafeRawBufferPointer) throws(HTTPParseError) -> HTTPField {
        try validate(buf)
        return HTTPField(name: buf.slice(name).asciiString(), value: String(decoding: buf.slice(value), as: UTF8.self))
    }
}

/// Parses a complete field section (trailers) into fields, enforcing the count limit.
func parseFieldSection(_ buf: UnsafeRawBufferPointer, from start: Int, maxFields: Int,
                       tooMany: HTTPParseError) throws(HTTPParseError) -> [HTTPField] {
    var lines = FieldLines(buf, from: start)
    var fields: [HTTPField] = []
    while let raw = try lines.next() {
        guard fields.count < maxFields else { throw tooMany }
        fields.append(try raw.makeField(buf))
    }
    return fields
}
