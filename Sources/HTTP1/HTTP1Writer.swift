/// Serialises HTTP/1.1 heads and chunks (RFC 9112). Callers pass fields that came from the parsers or
/// from configuration; values must not hold CR or LF (checked in debug builds).
public enum HTTP1Writer {
    /// "METHOD target HTTP/1.1\r\n" + fields + "\r\n" (RFC 9112 §3).
    public static func appendRequestHead(method: String, target: String, fields: [HTTPField], into out: inout [UInt8]) {
        appendRequestLine(method: method, target: target, room: size(of: fields) + 2, into: &out)
        appendFields(fields, into: &out)
        appendHeadEnd(into: &out)
    }

    /// "HTTP/1.1 status reason\r\n" + fields + "\r\n" (RFC 9112 §4); a nil reason becomes the standard
    /// phrase. The SP after the code is always written, even before an empty phrase.
    public static func appendResponseHead(status: Int, reason: String?, fields: [HTTPField], into out: inout [UInt8]) {
        appendStatusLine(status: status, reason: reason, room: size(of: fields) + 2, into: &out)
        appendFields(fields, into: &out)
        appendHeadEnd(into: &out)
    }

    // A head written piece by piece, so a forwarder adds its own fields on the way instead of
    // building a new field list: the start line, any fields, then the end.

    /// "METHOD target HTTP/1.1\r\n", with room reserved for `room` more bytes of head.
    public static func appendRequestLine(method: String, target: String, room: Int, into out: inout [UInt8]) {
        ensureRoom(&out, method.utf8.count + target.utf8.count + 11 + room)
        append(method, to: &out)
        out.append(ASCII.sp)
        append(target, to: &out)
        out.append(contentsOf: " HTTP/1.1\r\n".utf8)
    }

    /// "HTTP/1.1 status reason\r\n", with room reserved for `room` more bytes of head.
    public static func appendStatusLine(status: Int, reason: String?, room: Int, into out: inout [UInt8]) {
        precondition((100...999).contains(status), "status code must be three digits (RFC 9110 §15)")
        ensureRoom(&out, 13 + (reason?.utf8.count ?? 32) + 2 + room)
        out.append(contentsOf: "HTTP/1.1 ".utf8)
        out.append(UInt8(0x30 + status / 100))
        out.append(UInt8(0x30 + status / 10 % 10))
        out.append(UInt8(0x30 + status % 10))
        out.append(ASCII.sp)
        append(reason ?? reasonPhrase(status), to: &out)
        out.append(contentsOf: crlf)
    }

    /// "name: value\r\n".
    public static func appendField(_ name: String, _ value: String, into out: inout [UInt8]) {
        assert(!value.utf8.contains(ASCII.cr) && !value.utf8.contains(ASCII.lf), "CR/LF in field value")
        append(name, to: &out)
        out.append(ASCII.colon)
        out.append(ASCII.sp)
        append(value, to: &out)
        out.append(contentsOf: crlf)
    }

    /// "Content-Length: n\r\n", the number written without a String.
    public static func appendContentLength(_ n: Int64, into out: inout [UInt8]) {
        out.append(contentsOf: "Content-Length: ".utf8)
        appendDecimal(n, into: &out)
        out.append(contentsOf: crlf)
    }

    /// The empty line that ends a head.
    public static func appendHeadEnd(into out: inout [UInt8]) { out.append(contentsOf: crlf) }

    /// Bytes `appendFields` writes for `fields`: room to reserve before writing them.
    public static func size(of fields: [HTTPField]) -> Int {
        var n = 0
        for f in fields { n += f.name.utf8.count + f.value.utf8.count + 4 }
        return n
    }

    /// "hex\r\n" data "\r\n" (RFC 9112 §7.1). Empty data writes nothing: a zero-size chunk would end the body.
    public static func appendChunk(_ data: UnsafeRawBufferPointer, into out: inout [UInt8]) {
        guard !data.isEmpty else { return }
        appendHex(data.count, into: &out)
        out.append(contentsOf: crlf)
        out.append(contentsOf: data)
        out.append(contentsOf: crlf)
    }

    /// "0\r\n" trailers "\r\n" (RFC 9112 §7.1, §7.1.2).
    public static func appendLastChunk(trailers: [HTTPField], into out: inout [UInt8]) {
        out.append(contentsOf: "0\r\n".utf8)
        appendFields(trailers, into: &out)
        out.append(contentsOf: crlf)
    }

    private static let crlf: [UInt8] = [ASCII.cr, ASCII.lf]

    public static func appendFields(_ fields: [HTTPField], into out: inout [UInt8]) {
        for field in fields { appendField(field.name, field.value, into: &out) }
    }

    /// Fields kept in wire form are written with one copy.
    public static func appendFields(_ fields: HTTPFields, into out: inout [UInt8]) {
        out.append(contentsOf: fields.bytes)
    }

    public static func size(of fields: HTTPFields) -> Int { fields.bytes.count }

    /// One allocation for a whole head; never an exact-size one on a buffer that keeps growing
    /// (that would undo Array's geometric growth).
    @inline(__always) private static func ensureRoom(_ out: inout [UInt8], _ extra: Int) {
        let needed = out.count + extra
        if out.capacity < needed { out.reserveCapacity(Swift.max(needed, out.capacity * 2)) }
    }

    private static func appendDecimal(_ n: Int64, into out: inout [UInt8]) {
        precondition(n >= 0)
        var digits: (UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8,
                     UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8) =
            (0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0)
        var count = 0
        var rest = n
        withUnsafeMutableBytes(of: &digits) { d in
            repeat {
                d[19 - count] = UInt8(0x30 + rest % 10)
                rest /= 10
                count += 1
            } while rest > 0
            out.append(contentsOf: d[(20 - count)...])
        }
    }

    /// One copy of the string's UTF-8 storage (appending `.utf8` goes byte by byte).
    @inline(__always) private static func append(_ text: String, to out: inout [UInt8]) {
        text.withBytes { out.append(contentsOf: $0) }
    }

    private static func appendHex(_ n: Int, into out: inout [UInt8]) {
        var shift = (Int.bitWidth - n.leadingZeroBitCount - 1) / 4 * 4
        while shift >= 0 {
            let digit = UInt8((n >> shift) & 0xF)
            out.append(digit < 10 ? 0x30 + digit : 0x57 + digit)
            shift -= 4
        }
    }
}
