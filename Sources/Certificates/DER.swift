/// A strict reader of DER (ITU-T X.690 §10): one-byte tags, definite lengths in their shortest
/// form, nothing past the end of its input. It answers nil to anything else, never traps, and
/// never reads outside `bytes`: its callers treat nil as "not understood here".
struct DERReader {
    /// One tag-length-value; `content` indexes the reader's bytes.
    struct Element {
        let tag: UInt8
        let content: Range<Int>
    }

    // X.690 §8 universal tags, and the constructed context tags X.509 uses.
    static let boolean: UInt8 = 0x01, integer: UInt8 = 0x02, bitString: UInt8 = 0x03, octetString: UInt8 = 0x04
    static let objectIdentifier: UInt8 = 0x06, utcTime: UInt8 = 0x17, generalizedTime: UInt8 = 0x18, sequence: UInt8 = 0x30
    static func context(_ n: UInt8, constructed: Bool) -> UInt8 { 0x80 | (constructed ? 0x20 : 0) | n }

    let bytes: [UInt8]
    private(set) var position: Int
    let end: Int

    init(_ bytes: [UInt8]) { self.init(bytes, 0..<bytes.count) }

    init(_ bytes: [UInt8], _ range: Range<Int>) {
        self.bytes = bytes
        position = range.lowerBound
        end = range.upperBound
    }

    var isAtEnd: Bool { position >= end }

    /// The next element's tag, without consuming it.
    var nextTag: UInt8? { position < end ? bytes[position] : nil }

    /// The next element, whatever its tag.
    mutating func read() -> Element? {
        var p = position
        guard p + 2 <= end else { return nil }
        let tag = bytes[p]
        guard tag & 0x1f != 0x1f else { return nil }  // multi-byte tags: not in certificates or keys
        let first = Int(bytes[p + 1])
        p += 2
        var length = first
        if first >= 0x80 {
            let count = first & 0x7f
            guard count >= 1, count <= 3, p + count <= end else { return nil }  // indefinite (0x80) or > 16 MiB
            length = 0
            for _ in 0..<count { length = length << 8 | Int(bytes[p]); p += 1 }
            // Shortest form only (X.690 §10.1): a long form must need all its bytes.
            guard length >= 0x80, length >> (8 * (count - 1)) != 0 else { return nil }
        }
        guard length <= end - p else { return nil }
        position = p + length
        return Element(tag: tag, content: p..<(p + length))
    }

    /// The next element if it has `tag`; nothing is consumed otherwise.
    mutating func read(_ tag: UInt8) -> Element? {
        guard nextTag == tag else { return nil }
        return read()
    }

    /// A reader over one element's content.
    func reader(_ element: Element) -> DERReader { DERReader(bytes, element.content) }

    func slice(_ element: Element) -> ArraySlice<UInt8> { bytes[element.content] }

    func equals(_ element: Element, _ expected: [UInt8]) -> Bool { bytes[element.content].elementsEqual(expected) }
}

/// PEM blocks (RFC 7468): label and decoded bytes, in file order. Text outside the blocks is
/// ignored, as OpenSSL does. nil for anything unusual (headers such as "Proc-Type", a missing
/// END line, bad base64, a marker OpenSSL would not take as one): the caller then lets OpenSSL
/// read the file.
enum PEMBlocks {
    struct Block {
        let label: String
        let der: [UInt8]
    }

    private static let begin = Array("-----BEGIN ".utf8), end = Array("-----END ".utf8), dashes = Array("-----".utf8)

    static func parse(_ text: [UInt8]) -> [Block]? {
        // OpenSSL reads PEM line by line: a marker counts only at the start of a line, alone on it.
        // One elsewhere would make the two readers see different blocks (a leaf OpenSSL skips).
        guard onlyAtLineStarts(begin, in: text), onlyAtLineStarts(end, in: text) else { return nil }
        var blocks: [Block] = []
        var i = 0
        while let start = find(begin, in: text, from: i) {
            let labelStart = start + begin.count
            guard let labelEnd = find(dashes, in: text, from: labelStart), labelEnd - labelStart <= 64,
                  let bodyStart = lineEnd(text, at: labelEnd + dashes.count) else { return nil }
            let label = text[labelStart..<labelEnd]
            guard let close = find(end, in: text, from: bodyStart) else { return nil }
            let closeLabel = close + end.count
            guard closeLabel + label.count + dashes.count <= text.count,
                  text[closeLabel..<(closeLabel + label.count)].elementsEqual(label),
                  text[(closeLabel + label.count)..<(closeLabel + label.count + dashes.count)].elementsEqual(dashes),
                  let next = lineEnd(text, at: closeLabel + label.count + dashes.count),
                  let der = Base64.decode(text[bodyStart..<close]) else { return nil }
            blocks.append(Block(label: String(decoding: label, as: UTF8.self), der: der))
            i = next
        }
        return blocks
    }

    private static func onlyAtLineStarts(_ marker: [UInt8], in text: [UInt8]) -> Bool {
        var i = 0
        while let at = find(marker, in: text, from: i) {
            if at > 0 && text[at - 1] != UInt8(ascii: "\n") { return false }
            i = at + 1
        }
        return true
    }

    /// Where the next line starts when a line ends at `i` (LF, CRLF, or the end of the text).
    private static func lineEnd(_ text: [UInt8], at i: Int) -> Int? {
        if i == text.count { return i }
        if text[i] == UInt8(ascii: "\n") { return i + 1 }
        if text[i] == UInt8(ascii: "\r"), i + 1 < text.count, text[i + 1] == UInt8(ascii: "\n") { return i + 2 }
        return nil
    }

    private static func find(_ needle: [UInt8], in text: [UInt8], from: Int) -> Int? {
        guard let first = needle.first, needle.count <= text.count else { return nil }
        var i = from
        while i + needle.count <= text.count {
            if text[i] == first && text[i..<(i + needle.count)].elementsEqual(needle) { return i }
            i += 1
        }
        return nil
    }
}

/// Standard base64 (RFC 4648 §4) with line breaks; padding only at the end. Anything else
/// (a header line's ':', stray characters) is refused.
enum Base64 {
    private static let invalid: UInt8 = 0xff, skip: UInt8 = 0xfe
    private static let table: [UInt8] = {
        var t = [UInt8](repeating: invalid, count: 256)
        for (i, c) in "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/".utf8.enumerated() { t[Int(c)] = UInt8(i) }
        for c in " \t\r\n".utf8 { t[Int(c)] = skip }
        return t
    }()

    static func decode(_ text: ArraySlice<UInt8>) -> [UInt8]? {
        var valid = true
        let out = [UInt8](unsafeUninitializedCapacity: text.count * 3 / 4 + 1) { out, initialized in
            var acc: UInt32 = 0, bits: UInt32 = 0, padding = 0, n = 0
            table.withUnsafeBufferPointer { table in
                text.withUnsafeBufferPointer { input in
                    for c in input {
                        if c == UInt8(ascii: "=") { padding += 1; continue }
                        let v = table[Int(c)]
                        if v == skip { continue }
                        guard v != invalid, padding == 0 else { valid = false; return }
                        acc = acc << 6 | UInt32(v)
                        bits += 6
                        if bits >= 8 {
                            bits -= 8
                            out[n] = UInt8(truncatingIfNeeded: acc >> bits)
                            n += 1
                        }
                    }
                }
            }
            // Whole quanta only: leftover bits must be the zero bits of a padded end.
            valid = valid && padding <= 2 && ((bits == 0 && padding == 0) || (bits == 4 && padding == 2) || (bits == 2 && padding == 1))
                && acc & ((1 << bits) - 1) == 0
            initialized = n
        }
        return valid ? out : nil
    }
}
