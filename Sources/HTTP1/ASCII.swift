#if canImport(Glibc)
import Glibc
#endif

/// Byte classes from the ABNF of RFC 9110 §5.6 and RFC 3986, as bit masks so the hot loops do no table
/// lookups and touch no globals.
@usableFromInline enum ASCII {
    static let htab: UInt8 = 0x09
    static let lf: UInt8 = 0x0A
    static let cr: UInt8 = 0x0D
    static let sp: UInt8 = 0x20
    static let dquote: UInt8 = 0x22
    static let comma: UInt8 = 0x2C
    static let slash: UInt8 = 0x2F
    static let colon: UInt8 = 0x3A
    static let semicolon: UInt8 = 0x3B
    static let equals: UInt8 = 0x3D
    static let question: UInt8 = 0x3F
    static let backslash: UInt8 = 0x5C
    static let del: UInt8 = 0x7F

    /// tchar = "!" / "#" / "$" / "%" / "&" / "'" / "*" / "+" / "-" / "." / "^" / "_" / "`" / "|" / "~"
    ///       / DIGIT / ALPHA (RFC 9110 §5.6.2)
    @inline(__always)
    static func isTchar(_ b: UInt8) -> Bool { inMask(b, lo: 0x03FF_6CFA_0000_0000, hi: 0x57FF_FFFF_C7FF_FFFE) }

    /// reg-name characters: unreserved / sub-delims (RFC 3986 §3.2.2); "%" is handled by the caller.
    @inline(__always)
    static func isRegNameChar(_ b: UInt8) -> Bool { inMask(b, lo: 0x2BFF_7FD2_0000_0000, hi: 0x47FF_FFFE_87FF_FFFE) }

    /// field-vchar, SP or HTAB: anything but controls and DEL; obs-text passes (RFC 9110 §5.5).
    @inline(__always)
    static func isFieldValueByte(_ b: UInt8) -> Bool { b >= sp ? b != del : b == htab }

    /// VCHAR (RFC 5234 B.1): visible ASCII, no space.
    @inline(__always)
    static func isVisible(_ b: UInt8) -> Bool { b &- 0x21 < 0x5E }

    @inline(__always)
    static func isDigit(_ b: UInt8) -> Bool { b &- 0x30 < 10 }

    @inline(__always)
    static func isOWS(_ b: UInt8) -> Bool { b == sp || b == htab }

    @inlinable @inline(__always)
    static func lower(_ b: UInt8) -> UInt8 { b &- 0x41 < 26 ? b | 0x20 : b }

    @inline(__always)
    static func hexValue(_ b: UInt8) -> UInt8? {
        if b &- 0x30 < 10 { return b &- 0x30 }
        let l = b | 0x20
        return l &- 0x61 < 6 ? l &- 0x61 &+ 10 : nil
    }

    // MARK: Eight bytes at a time
    // Head scanning looks at every byte; most are ordinary text, which these tests pass over a word at a
    // time. Each is exact for "any byte in the word": a borrow or carry only spills into bytes above
    // one that already answers the question.

    @inlinable static var ones: UInt64 { 0x0101_0101_0101_0101 }
    @inlinable static var highBits: UInt64 { 0x8080_8080_8080_8080 }

    /// Whether any of the eight bytes of `x` is below `n` (n <= 128).
    @inline(__always)
    static func anyBelow(_ x: UInt64, _ n: UInt8) -> Bool { (x &- ones &* UInt64(n)) & ~x & highBits != 0 }

    /// Whether all eight bytes of `x` are SP or visible ASCII (0x20...0x7E): no control, DEL or obs-text.
    @inline(__always)
    static func isPlainText(_ x: UInt64) -> Bool { ((x &- ones &* 0x20) | (x &+ ones) | x) & highBits == 0 }

    /// The index of the first `byte` in `buf` from `start`, or `buf.count`. A word at a time: in
    /// `x ^ pattern` the wanted bytes are zero, and the lowest flagged byte is always a true one.
    @inline(__always)
    static func firstIndex(of byte: UInt8, in buf: UnsafeRawBufferPointer, from start: Int) -> Int {
        var i = start
        let pattern = ones &* UInt64(byte)
        while i &+ 8 <= buf.count {
            let v = buf.word(at: i) ^ pattern
            let zeros = (v &- ones) & ~v & highBits
            if zeros != 0 { return i &+ zeros.trailingZeroBitCount >> 3 }
            i &+= 8
        }
        while i < buf.count && buf[i] != byte { i += 1 }
        return i
    }

    /// `x` with its ASCII upper-case letters in lower case, every other byte as it was.
    @inlinable @inline(__always)
    static func lower(word x: UInt64) -> UInt64 {
        let low7 = x & ~highBits
        let aboveZ = low7 &+ ones &* 0x25   // high bit set where the byte's low seven bits exceed "Z"
        let fromA = low7 &+ ones &* 0x3F    // high bit set where they are at least "A"
        let upper = (fromA ^ aboveZ) & ~x & highBits
        return x | (upper >> 2)
    }

    @inline(__always)
    private static func inMask(_ b: UInt8, lo: UInt64, hi: UInt64) -> Bool {
        if b < 64 { return (lo >> UInt64(b)) & 1 == 1 }
        if b < 128 { return (hi >> UInt64(b &- 64)) & 1 == 1 }
        return false
    }
}

extension UnsafeRawBufferPointer {
    /// The bytes in `range`, re-based at 0 (no copy).
    @inline(__always)
    func slice(_ range: Range<Int>) -> UnsafeRawBufferPointer { UnsafeRawBufferPointer(rebasing: self[range]) }

    /// ASCII case-insensitive comparison with a lower-case literal. Inlinable: the fronts and the
    /// proxy compare every field name with a few literals, and a call per comparison cost more than
    /// the comparison.
    /// Names of eight bytes or more are compared a word at a time (the last word overlapping the one
    /// before it), shorter ones byte by byte.
    @inlinable
    public func equalsLowercased(_ literal: StaticString) -> Bool {
        let n = literal.utf8CodeUnitCount
        guard count == n else { return false }
        let l = UnsafeRawPointer(literal.utf8Start)
        guard n >= 8 else {
            for i in 0..<n where ASCII.lower(self[i]) != l.load(fromByteOffset: i, as: UInt8.self) { return false }
            return true
        }
        var i = 0
        while true {
            let word = ASCII.lower(word: loadUnaligned(fromByteOffset: i, as: UInt64.self))
            guard word == l.loadUnaligned(fromByteOffset: i, as: UInt64.self) else { return false }
            if i == n - 8 { return true }
            i = Swift.min(i + 8, n - 8)
        }
    }

    /// Byte-for-byte equality with a literal (case matters: the HTTP version, methods).
    @inline(__always)
    func equals(_ literal: StaticString) -> Bool {
        count == literal.utf8CodeUnitCount && (count == 0 || memcmp(baseAddress!, literal.utf8Start, count) == 0)
    }

    /// The eight bytes from `offset` as one word, the first in the lowest bits, for the tests in
    /// `ASCII` (the caller checks the bounds).
    @inline(__always)
    func word(at offset: Int) -> UInt64 { UInt64(littleEndian: loadUnaligned(fromByteOffset: offset, as: UInt64.self)) }

    func hasPrefixLowercased(_ literal: StaticString) -> Bool {
        count >= literal.utf8CodeUnitCount && slice(0..<literal.utf8CodeUnitCount).equalsLowercased(literal)
    }

    func firstIndex(of byte: UInt8) -> Int? {
        let i = ASCII.firstIndex(of: byte, in: self, from: 0)
        return i < count ? i : nil
    }

    /// Tokens and hosts are ASCII; building their String once from bytes avoids Character-level work.
    func asciiString() -> String { String(decoding: self, as: UTF8.self) }

    func lowercasedASCIIString() -> String {
        String(unsafeUninitializedCapacity: count) { out in
            for i in 0..<count { out[i] = ASCII.lower(self[i]) }
            return count
        }
    }

    /// The range without leading and trailing OWS (RFC 9110 §5.6.3).
    func trimmingOWS() -> Range<Int> {
        var start = 0, end = count
        while start < end, ASCII.isOWS(self[start]) { start += 1 }
        while end > start, ASCII.isOWS(self[end - 1]) { end -= 1 }
        return start..<end
    }
}

extension String {
    /// The UTF-8 bytes in place. `withUTF8` needs a `var` (a copy: a retain and a release); native and
    /// small strings, all this code meets, lend their bytes without one.
    @inlinable @inline(__always)
    public func withBytes<R>(_ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R {
        if let r = try utf8.withContiguousStorageIfAvailable({ try body(UnsafeRawBufferPointer($0)) }) { return r }
        var copy = self
        return try copy.withUTF8 { try body(UnsafeRawBufferPointer($0)) }
    }
}
