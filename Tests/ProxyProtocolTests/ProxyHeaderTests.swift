import Testing
@testable import ProxyProtocol

/// The PROXY header reader against the specification's examples and every way a header can be
/// wrong, and the writer against the reader.
@Suite struct ProxyHeaderTests {
    func parse(_ text: String) -> ProxyHeaderParse { ProxyHeader.parse(Array(text.utf8)) }

    @Test func v1TCP4AndTCP6AndUnknown() {
        let line = "PROXY TCP4 192.0.2.1 198.51.100.7 56324 443\r\n"
        #expect(parse(line + "\u{16}\u{03}\u{01}") == .header(ProxyHeader(
            version: 1, source: .init(address: [192, 0, 2, 1], port: 56324), destination: .init(address: [198, 51, 100, 7], port: 443),
            length: line.utf8.count)))
        guard case .header(let h6) = parse("PROXY TCP6 2001:db8::1 ::ffff:192.0.2.1 1 65535\r\n") else { Issue.record(); return }
        #expect(h6.source == .init(address: [0x20, 0x01, 0x0d, 0xb8] + [UInt8](repeating: 0, count: 11) + [1], port: 1))
        #expect(h6.destination?.address == [UInt8](repeating: 0, count: 10) + [0xff, 0xff, 192, 0, 2, 1] && h6.destination?.port == 65535)
        #expect(parse("PROXY UNKNOWN\r\n") == .header(ProxyHeader(version: 1, source: nil, destination: nil, length: 15)))
        #expect(parse("PROXY UNKNOWN ffff::1 ffff::2 1 2\r\n") == .header(ProxyHeader(version: 1, source: nil, destination: nil, length: 35)))
    }

    @Test func v1Prefixes() {
        let line = "PROXY TCP4 192.0.2.1 198.51.100.7 56324 443\r\n"
        for cut in 1..<line.utf8.count {
            #expect(ProxyHeader.parse(Array(line.utf8.prefix(cut))) == .incomplete, "\(cut) bytes")
        }
    }

    @Test func v1Mistakes() {
        let cases = [
            "GET / HTTP/1.1\r\n", "PROXY  TCP4 192.0.2.1 198.51.100.7 1 2\r\n", "PROXY TCP4 192.0.2.1 198.51.100.7 1 2\n",
            "PROXY TCP4 192.0.2.1 198.51.100.7 1 2\rX", "PROXY TCP5 192.0.2.1 198.51.100.7 1 2\r\n", "PROXY TCP4 192.0.2.1 198.51.100.7 1\r\n",
            "PROXY TCP4 192.0.2.1 198.51.100.7 1 2 3\r\n", "PROXY TCP4 192.0.2.256 198.51.100.7 1 2\r\n",
            "PROXY TCP4 192.0.2.01 198.51.100.7 1 2\r\n", "PROXY TCP4 2001:db8::1 198.51.100.7 1 2\r\n",
            "PROXY TCP6 192.0.2.1 2001:db8::2 1 2\r\n", "PROXY TCP6 2001:db8::1::2 2001:db8::2 1 2\r\n",
            "PROXY TCP4 192.0.2.1 198.51.100.7 65536 2\r\n", "PROXY TCP4 192.0.2.1 198.51.100.7 01 2\r\n",
            "PROXY TCP4 192.0.2.1 198.51.100.7 +1 2\r\n", "PROXY TCP4 192.0.2.1 198.51.100.7 1 2 \r\n",
            "PROXY TCP4 192.0.2.1\t198.51.100.7 1 2\r\n", "proxy TCP4 192.0.2.1 198.51.100.7 1 2\r\n",
            "PROXY\r\n",
            // A sign is not a hex digit (found by fuzzing: Swift's UInt16(_:radix:) reads "+000").
            "PROXY TCP6 2001:db8:+000:0:0:0:0:1 ::1 1 2\r\n", "PROXY TCP6 +1::1 ::1 1 2\r\n", "PROXY TCP6 ::1 ::-0 1 2\r\n",
        ]
        for c in cases {
            guard case .invalid = parse(c) else { Issue.record("accepted: \(c.debugDescription)"); continue }
        }
        // No CRLF within 107 bytes: too long, not "incomplete" forever.
        guard case .invalid(let why) = parse("PROXY TCP4 " + String(repeating: "1", count: 100)) else { Issue.record(); return }
        #expect(why.contains("longer than 107"))
        // 107 bytes with the CRLF is the longest line; one more is refused, not read (found by fuzzing).
        let longest = "PROXY UNKNOWN " + String(repeating: "x", count: 107 - 16) + "\r\n"
        #expect(parse(longest) == .header(ProxyHeader(version: 1, source: nil, destination: nil, length: 107)))
        guard case .invalid = parse("PROXY UNKNOWN x" + longest.dropFirst(14)) else { Issue.record("accepted a 108-byte line"); return }
        #expect(ProxyHeader.parse(Array(longest.utf8.prefix(106))) == .incomplete)
    }

    static let v2Inet: [UInt8] = ProxyHeader.v2Signature + [0x21, 0x11, 0x00, 0x0C, 192, 0, 2, 1, 198, 51, 100, 7, 0xDC, 0x04, 0x01, 0xBB]

    @Test func v2InetInet6LocalAndUnspec() {
        #expect(ProxyHeader.parse(Self.v2Inet + [0x16]) == .header(ProxyHeader(
            version: 2, source: .init(address: [192, 0, 2, 1], port: 56324), destination: .init(address: [198, 51, 100, 7], port: 443),
            length: 28)))
        let six = ProxyHeader.v2Signature + [0x21, 0x21, 0x00, 0x24] + [UInt8](repeating: 0, count: 15) + [1] + [UInt8](repeating: 0, count: 15) + [2]
            + [0x00, 0x50, 0x01, 0xBB]
        guard case .header(let h6) = ProxyHeader.parse(six) else { Issue.record(); return }
        #expect(h6.source?.address.last == 1 && h6.source?.port == 80 && h6.destination?.port == 443 && h6.length == 52)
        // LOCAL (the balancer's own health check): the block is skipped, whatever it holds.
        let local = ProxyHeader.v2Signature + [0x20, 0x00, 0x00, 0x03, 0xAA, 0xBB, 0xCC]
        #expect(ProxyHeader.parse(local) == .header(ProxyHeader(version: 2, source: nil, destination: nil, length: 19)))
        let unspec = ProxyHeader.v2Signature + [0x21, 0x00, 0x00, 0x00]
        #expect(ProxyHeader.parse(unspec) == .header(ProxyHeader(version: 2, source: nil, destination: nil, length: 16)))
        let unix = ProxyHeader.v2Signature + [0x21, 0x31, 0x00, 0xD8] + [UInt8](repeating: 0x2F, count: 216)
        #expect(ProxyHeader.parse(unix) == .header(ProxyHeader(version: 2, source: nil, destination: nil, length: 232)))
    }

    @Test func v2TLVsAndChecksum() {
        var header = ProxyHeader.v2Signature + [0x21, 0x11, 0x00, 0x00, 192, 0, 2, 1, 198, 51, 100, 7, 0xDC, 0x04, 0x01, 0xBB]
        header += [0x01, 0x00, 0x02] + Array("h2".utf8)                 // ALPN
        header += [0x04, 0x00, 0x01, 0x00]                              // NOOP: dropped
        header += [0x02, 0x00, 0x09] + Array("a.example".utf8)          // authority
        header += [0x03, 0x00, 0x04, 0, 0, 0, 0]                        // CRC32C, filled in below
        let length = header.count - 16
        header[14] = UInt8(length >> 8); header[15] = UInt8(length & 0xFF)
        let crc = CRC32C.checksum(header)
        header[header.count - 4] = UInt8(crc >> 24); header[header.count - 3] = UInt8(crc >> 16 & 0xFF)
        header[header.count - 2] = UInt8(crc >> 8 & 0xFF); header[header.count - 1] = UInt8(crc & 0xFF)
        guard case .header(let h) = ProxyHeader.parse(header) else { Issue.record("refused a valid header"); return }
        #expect(h.tlvs.map(\.type) == [0x01, 0x02, 0x03] && h.tlvs[0].value == Array("h2".utf8) && h.length == header.count)
        var corrupt = header
        corrupt[20] ^= 1
        #expect(ProxyHeader.parse(corrupt) == .invalid("PROXY v2 CRC32C does not match the header"))
        // The standard check value of CRC-32C.
        #expect(CRC32C.checksum(Array("123456789".utf8)) == 0xE306_9283)
    }

    @Test func v2Prefixes() {
        for cut in 1..<Self.v2Inet.count {
            #expect(ProxyHeader.parse(Array(Self.v2Inet.prefix(cut))) == .incomplete, "\(cut) bytes")
        }
    }

    @Test func v2Mistakes() {
        let sig = ProxyHeader.v2Signature
        let cases: [[UInt8]] = [
            [0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D, 0x0A, 0x51, 0x55, 0x49, 0x54, 0x0B],        // signature's last byte
            sig + [0x11, 0x11, 0x00, 0x0C] + [UInt8](repeating: 0, count: 12),                 // version 1 in a v2 header
            sig + [0x22, 0x11, 0x00, 0x0C] + [UInt8](repeating: 0, count: 12),                 // command 2
            sig + [0x21, 0x12, 0x00, 0x0C] + [UInt8](repeating: 0, count: 12),                 // DGRAM
            sig + [0x21, 0x41, 0x00, 0x0C] + [UInt8](repeating: 0, count: 12),                 // family 4
            sig + [0x21, 0x11, 0x00, 0x0B] + [UInt8](repeating: 0, count: 11),                 // INET block too short
            sig + [0x21, 0x21, 0x00, 0x0C] + [UInt8](repeating: 0, count: 12),                 // INET6 block too short
            sig + [0x21, 0x11, 0x00, 0x0E] + [UInt8](repeating: 0, count: 12) + [0x01, 0x00],  // TLV header cut
            sig + [0x21, 0x11, 0x00, 0x10] + [UInt8](repeating: 0, count: 12) + [0x01, 0x00, 0x05, 0x41], // TLV overruns
            sig + [0x21, 0x11, 0x00, 0x12] + [UInt8](repeating: 0, count: 12) + [0x03, 0x00, 0x03, 1, 2, 3], // CRC of 3 bytes
            sig + [0x21, 0x11, 0x04, 0x00],                                                   // 1040 bytes: oversized
        ]
        for c in cases {
            guard case .invalid = ProxyHeader.parse(c) else { Issue.record("accepted: \(c)"); continue }
        }
    }

    @Test func writtenHeadersReadBack() {
        let v4 = ProxyHeader.Endpoint(address: [203, 0, 113, 9], port: 51000)
        let v6 = ProxyHeader.Endpoint(address: [0x20, 0x01, 0x0d, 0xb8] + [UInt8](repeating: 0, count: 11) + [9], port: 443)
        let line = ProxyHeader.v1(source: v4, destination: .init(address: [127, 0, 0, 1], port: 8080))
        #expect(String(decoding: line, as: UTF8.self) == "PROXY TCP4 203.0.113.9 127.0.0.1 51000 8080\r\n")
        #expect(ProxyHeader.parse(line) == .header(ProxyHeader(version: 1, source: v4, destination: .init(address: [127, 0, 0, 1], port: 8080),
                                                               length: line.count)))
        // Mixed families: the IPv4 end is written IPv4-mapped.
        guard case .header(let mixed) = ProxyHeader.parse(ProxyHeader.v1(source: v4, destination: v6)) else { Issue.record(); return }
        #expect(mixed.source?.address == [UInt8](repeating: 0, count: 10) + [0xff, 0xff, 203, 0, 113, 9] && mixed.destination == v6)
        let binary = ProxyHeader.v2(source: v6, destination: v6)
        #expect(ProxyHeader.parse(binary) == .header(ProxyHeader(version: 2, source: v6, destination: v6, length: 52)))
        #expect(ProxyHeader.parse(ProxyHeader.v2(source: v4, destination: v4)) == .header(ProxyHeader(version: 2, source: v4, destination: v4, length: 28)))
    }
}
