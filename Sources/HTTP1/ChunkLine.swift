/// chunk = chunk-size [ chunk-ext ] CRLF; last-chunk = 1*("0") [ chunk-ext ] CRLF (RFC 9112 §7.1).
enum ChunkLine {
    /// Longest chunk line accepted; extensions have no use to us, so this only needs to be generous.
    static let maxLength = 4096
    /// Largest chunk size accepted: far above any real chunk, and far from Int64 overflow.
    static let maxSize: Int64 = 1 << 62

    /// Index of the CR ending the line at the start of `buf`, nil if more bytes are needed. Bare CR and
    /// bare LF are rejected here, as in heads (RFC 9112 §2.2, §7.1).
    static func findEnd(_ buf: UnsafeRawBufferPointer, from scanned: Int) throws(HTTPParseError) -> (end: Int?, scanned: Int) {
        var i = scanned
        while i < buf.count {
            let b = buf[i]
            if b == ASCII.lf { throw .badRequest("bare LF in chunk line (RFC 9112 §7.1)") }
            if b == ASCII.cr {
                guard i + 1 < buf.count else { break }
                guard buf[i + 1] == ASCII.lf else { throw .badRequest("bare CR in chunk line (RFC 9112 §7.1)") }
                return (i, i)
            }
            i += 1
            if i > maxLength { throw .badRequest("chunk line too long (RFC 9112 §7.1)") }
        }
        return (nil, i)
    }

    /// The chunk size of a line without its CRLF. Whitespace is rejected everywhere, including the BWS the
    /// grammar tolerates around ";", since senders never need it and lenient peers disagree about it.
    static func parse(_ line: UnsafeRawBufferPointer) throws(HTTPParseError) -> Int64 {
        var i = 0
        var size: Int64 = 0
        while i < line.count, let digit = ASCII.hexValue(line[i]) {
            guard size <= maxSize >> 4 else { throw .badRequest("chunk size too large (RFC 9112 §7.1)") }
            size = size << 4 | Int64(digit)
            guard size <= maxSize else { throw .badRequest("chunk size too large (RFC 9112 §7.1)") }
            i += 1
        }
        guard i > 0 else { throw .badRequest("invalid chunk size (RFC 9112 §7.1)") }
        try validateExtensions(line.slice(i..<line.count))
        return size
    }

    /// chunk-ext = *( ";" chunk-ext-name [ "=" chunk-ext-val ] ), chunk-ext-val = token / quoted-string
    /// (RFC 9112 §7.1.1). Valid extensions are ignored, invalid ones rejected.
    private static func validateExtensions(_ ext: UnsafeRawBufferPointer) throws(HTTPParseError) {
        var i = 0
        while i < ext.count {
            guard ext[i] == ASCII.semicolon else { throw .badRequest("invalid chunk extension (RFC 9112 §7.1.1)") }
            i = try skipToken(ext, from: i + 1)
            guard i < ext.count, ext[i] == ASCII.equals else { continue }
            i += 1
            if i < ext.count, ext[i] == ASCII.dquote {
                i = try skipQuotedString(ext, from: i + 1)
            } else {
                i = try skipToken(ext, from: i)
            }
        }
    }

    private static func skipToken(_ ext: UnsafeRawBufferPointer, from start: Int) throws(HTTPParseError) -> Int {
        var i = start
        while i < ext.count, ASCII.isTchar(ext[i]) { i += 1 }
        guard i > start else { throw .badRequest("invalid chunk extension (RFC 9112 §7.1.1)") }
        return i
    }

    /// quoted-string = DQUOTE *( qdtext / quoted-pair ) DQUOTE (RFC 9110 §5.6.4); returns the index after
    /// the closing quote. The line holds no CR or LF by now, so only other controls need checking.
    private static func skipQuotedString(_ ext: UnsafeRawBufferPointer, from start: Int) throws(HTTPParseError) -> Int {
        var i = start
        while i < ext.count {
            let b = ext[i]
            guard ASCII.isFieldValueByte(b) else { break }
            if b == ASCII.dquote { return i + 1 }
            if b == ASCII.backslash {
                guard i + 1 < ext.count, ASCII.isFieldValueByte(ext[i + 1]) else { break }
                i += 1
            }
            i += 1
        }
        throw .badRequest("invalid quoted string in chunk extension (RFC 9110 §5.6.4)")
    }
}
