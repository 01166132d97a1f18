import XCTest
@testable import HTTP1

/// The eight-bytes-at-a-time tests must answer exactly as the byte-by-byte definitions they replace,
/// whatever the other seven bytes hold (a borrow or carry between bytes is where such tests go wrong).
final class ASCIIWordTests: XCTestCase {
    /// Every byte value at every position, among neighbours drawn from the values around each boundary.
    private func words(_ body: (UInt64, [UInt8]) -> Void) {
        let edges: [UInt8] = [0x00, 0x09, 0x0C, 0x0D, 0x0E, 0x1F, 0x20, 0x21, 0x40, 0x41, 0x5A, 0x5B,
                              0x60, 0x61, 0x7A, 0x7B, 0x7E, 0x7F, 0x80, 0xC1, 0xDA, 0xFF]
        var rng = SystemRandomNumberGenerator()
        for position in 0..<8 {
            for value in 0...255 {
                for _ in 0..<12 {
                    var bytes = (0..<8).map { _ in edges.randomElement(using: &rng)! }
                    bytes[position] = UInt8(value)
                    let word = bytes.withUnsafeBytes { $0.word(at: 0) }
                    body(word, bytes)
                }
            }
        }
    }

    func testAnyBelowMatchesTheBytes() {
        words { word, bytes in
            for n: UInt8 in [0x0E, 0x20, 0x80] {
                XCTAssertEqual(ASCII.anyBelow(word, n), bytes.contains { $0 < n }, "\(bytes) below \(n)")
            }
        }
    }

    func testPlainTextMatchesTheBytes() {
        words { word, bytes in
            XCTAssertEqual(ASCII.isPlainText(word), bytes.allSatisfy { (0x20...0x7E).contains($0) }, "\(bytes)")
        }
    }

    func testLowerWordMatchesTheBytes() {
        words { word, bytes in
            let lowered = withUnsafeBytes(of: ASCII.lower(word: word)) { Array($0) }
            XCTAssertEqual(lowered, bytes.map(ASCII.lower), "\(bytes)")
        }
    }

    func testFirstIndexMatchesTheBytes() {
        var rng = SystemRandomNumberGenerator()
        let alphabet: [UInt8] = [0x00, 0x0D, 0x0A, 0x3A, 0x3B, 0x39, 0x61, 0x80, 0xBA, 0xFF, 0x0C, 0x0E]
        for length in 0..<40 {
            for _ in 0..<300 {
                let bytes = (0..<length).map { _ in alphabet.randomElement(using: &rng)! }
                for byte: UInt8 in [0x3A, 0x0D] {
                    for start in [0, 1, length / 2, length] where start <= length {
                        let expected = bytes[start...].firstIndex(of: byte) ?? length
                        let found = bytes.withUnsafeBytes { ASCII.firstIndex(of: byte, in: $0, from: start) }
                        XCTAssertEqual(found, expected, "\(byte) in \(bytes) from \(start)")
                    }
                }
            }
        }
    }

    func testEqualsLowercasedAtEveryLength() {
        let names: [StaticString] = ["te", "host", "cookie", "upgrade", "trailer", "x-header", "connection",
                                     "content-length", "proxy-connection", "transfer-encoding",
                                     "proxy-authorization", "x-a-rather-long-field-name-indeed"]
        for literal in names {
            let lower = Array(UnsafeBufferPointer(start: literal.utf8Start, count: literal.utf8CodeUnitCount))
            func equals(_ bytes: [UInt8]) -> Bool { bytes.withUnsafeBytes { $0.equalsLowercased(literal) } }
            XCTAssertTrue(equals(lower))
            XCTAssertTrue(equals(lower.map { $0 &- 0x61 < 26 ? $0 - 0x20 : $0 }), "\(literal) upper case")
            XCTAssertFalse(equals(lower.dropLast()), "\(literal) shorter")
            XCTAssertFalse(equals(lower + [0x61]), "\(literal) longer")
            // One byte off anywhere, including ones that differ only in bit 0x20 but are not letters.
            for i in lower.indices {
                for replacement: UInt8 in [lower[i] ^ 0x01, lower[i] ^ 0x20, lower[i] | 0x80, 0x0D] where replacement != lower[i] {
                    var bytes = lower
                    bytes[i] = replacement
                    let expected = bytes.map(ASCII.lower) == lower
                    XCTAssertEqual(equals(bytes), expected, "\(literal) with byte \(i) = \(replacement)")
                }
            }
        }
    }

    /// Values of every length with a control byte, obs-text or trailing whitespace at every position:
    /// the word-wise value scan finds the same value, the same errors and the same line end.
    func testFieldValuesAtEveryPosition() throws {
        func parse(_ value: [UInt8]) -> Result<String, Error> {
            let head = Array("HTTP/1.1 200 OK\r\nx-v:".utf8) + value + Array("\r\nx-next: 1\r\n\r\n".utf8)
            var parser = ResponseParser()
            return Result {
                try head.withUnsafeBytes { buf in
                    guard case (_, .head(let h)) = try parser.parse(buf) else { return "incomplete" }
                    return "[\(h.fields.firstValue(named: "x-v") ?? "-")] \(h.fields.firstValue(named: "x-next") ?? "-")"
                }
            }
        }
        for length in 0..<24 {
            let base = (0..<length).map { UInt8(0x61 + $0 % 26) }
            XCTAssertEqual(try parse(base).get(), "[\(String(decoding: base, as: UTF8.self))] 1")
            for i in 0..<length {
                var v = base
                v[i] = 0x01
                XCTAssertThrowsError(try parse(v).get(), "control at \(i) of \(length)")
                v[i] = 0x7F
                XCTAssertThrowsError(try parse(v).get(), "DEL at \(i) of \(length)")
                v[i] = 0x09
                let trimmed = v.drop { $0 == 0x09 }.reversed().drop { $0 == 0x09 }.reversed()
                XCTAssertEqual(try parse(v).get(), "[\(String(decoding: trimmed, as: UTF8.self))] 1", "tab at \(i) of \(length)")
                v = base
                v.replaceSubrange(i..<(i + 1), with: Array("é".utf8))
                XCTAssertEqual(try parse(v).get(), "[\(String(decoding: v, as: UTF8.self))] 1", "obs-text at \(i) of \(length)")
                v[i] = 0xC3
                v.remove(at: i + 1)
                XCTAssertThrowsError(try parse(v).get(), "invalid UTF-8 at \(i) of \(length)")
            }
            let padded = [0x20, 0x09] + base + [0x20, 0x20, 0x09, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20]
            XCTAssertEqual(try parse(padded).get(), "[\(String(decoding: base, as: UTF8.self))] 1")
        }
    }
}
