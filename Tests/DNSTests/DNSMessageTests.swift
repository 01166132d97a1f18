@testable import DNS
import Testing

@Suite struct DNSMessageTests {
    static let soa = DNSSOA(mname: "ns1.example.test", rname: "hostmaster.example.test", serial: 2026120101,
                            refresh: 3600, retry: 600, expire: 86400, minimum: 60)

    static func sample() -> DNSMessage {
        DNSMessage(header: DNSHeader(id: 0xBEEF, isResponse: true, authoritative: true, recursionDesired: true, rcode: .nxDomain),
                   questions: [DNSQuestion(name: "_acme-challenge.www.example.test", type: .txt)],
                   answers: [DNSRecord(name: "_acme-challenge.www.example.test", ttl: 60, .txt("abc")),
                             DNSRecord(name: "alias.example.test", ttl: 300, .cname("www.example.test")),
                             DNSRecord(name: "www.example.test", ttl: 300, .a([192, 0, 2, 7]))],
                   authorities: [DNSRecord(name: "example.test", ttl: 3600, .soa(soa)),
                                 DNSRecord(name: "example.test", ttl: 3600, .ns("ns1.example.test"))],
                   additionals: [DNSRecord(name: "ns1.example.test", type: DNSType(rawValue: 99), ttl: 5, data: .raw([1, 2, 3]))])
    }

    @Test func roundTripsEverySection() throws {
        let message = Self.sample()
        let bytes = try message.encode()
        #expect(bytes[0] == 0xBE && bytes[1] == 0xEF)
        #expect(bytes[2] == 0x85 && bytes[3] == 0x03)  // QR, AA, RD; NXDOMAIN
        #expect(try DNSMessage(decoding: bytes) == message)
    }

    @Test func encodesAQueryExactly() throws {
        let bytes = try DNSMessage.query(id: 0x1234, name: "a.bc", type: .txt).encode()
        #expect(bytes == [0x12, 0x34, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 1, 0x61, 2, 0x62, 0x63, 0, 0, 16, 0, 1])
    }

    @Test func splitsLongTXTValuesIntoCharacterStrings() throws {
        let value = String(repeating: "x", count: 600)
        guard case .txt(let strings) = DNSRecordData.txt(value) else { Issue.record("not TXT"); return }
        #expect(strings.map(\.count) == [255, 255, 90])
        let record = DNSRecord(name: "t.example.test", ttl: 1, .txt(value))
        let back = try DNSMessage(decoding: DNSMessage(header: DNSHeader(id: 1), answers: [record]).encode())
        #expect(back.answers[0].data.text == value)
    }

    @Test func escapesOddLabelBytesBothWays() throws {
        let name = "a\\.b.c\\\\d.\\007x"
        let bytes = try DNSMessage.query(id: 1, name: name, type: .a).encode()
        #expect(Array(bytes[12..<20]) == [3, 0x61, 0x2E, 0x62, 3, 0x63, 0x5C, 0x64])
        #expect(try DNSMessage(decoding: bytes).questions[0].name == name)
        #expect(try DNSMessage(decoding: DNSMessage.query(id: 1, name: "", type: .ns).encode()).questions[0].name == "")
        // A final dot is the root; an escaped backslash before it does not escape it.
        #expect(try DNSMessage(decoding: DNSMessage.query(id: 1, name: "example.test.", type: .ns).encode()).questions[0].name == "example.test")
        #expect(try DNSName.labels("a\\\\.") == [[0x61, 0x5C]])
        #expect(try DNSName.labels("a\\.") == [[0x61, 0x2E]])
    }

    @Test func rejectsNamesThatDoNotFit() {
        let longLabel = String(repeating: "a", count: 64) + ".test"
        #expect(throws: DNSError.self) { try DNSMessage.query(id: 1, name: longLabel, type: .a).encode() }
        let longName = Array(repeating: String(repeating: "a", count: 60), count: 5).joined(separator: ".")
        #expect(throws: DNSError.self) { try DNSMessage.query(id: 1, name: longName, type: .a).encode() }
        #expect(throws: DNSError.self) { try DNSMessage.query(id: 1, name: "a..b", type: .a).encode() }
    }

    /// A response written by hand the way servers compress: the answer's owner is a pointer to
    /// the question's name, the CNAME target a label then a pointer into it.
    @Test func followsCompressionPointers() throws {
        var bytes: [UInt8] = [0xAB, 0xCD, 0x81, 0x80, 0, 1, 0, 2, 0, 0, 0, 0]
        bytes += [3, 0x77, 0x77, 0x77, 7] + Array("example".utf8) + [4] + Array("test".utf8) + [0]  // offset 12
        bytes += [0, 5, 0, 1]
        bytes += [0xC0, 12, 0, 5, 0, 1, 0, 0, 0, 60, 0, 6, 3, 0x63, 0x64, 0x6E, 0xC0, 16]  // www… CNAME cdn.example.test
        bytes += [0xC0, 46, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4, 10, 0, 0, 1]  // cdn.example.test A (pointer to the CNAME's RDATA)
        let message = try DNSMessage(decoding: bytes)
        #expect(message.questions == [DNSQuestion(name: "www.example.test", type: .cname)])
        #expect(message.answers[0].name == "www.example.test")
        #expect(message.answers[0].data == .cname("cdn.example.test"))
        #expect(message.answers[1].name == "cdn.example.test")
        #expect(message.answers[1].data == .a([10, 0, 0, 1]))
    }

    @Test func rejectsAPointerLoop() {
        // The question's name is a pointer to itself; then one that points forward to a pointer back.
        let selfLoop: [UInt8] = [0, 1, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0xC0, 12, 0, 1, 0, 1]
        let error = #expect(throws: DNSError.self) { try DNSMessage(decoding: selfLoop) }
        #expect(error?.code == .malformed)
        let pair: [UInt8] = [0, 1, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0xC0, 14, 0xC0, 12, 0, 1, 0, 1]
        #expect(throws: DNSError.self) { try DNSMessage(decoding: pair) }
    }

    @Test func rejectsEveryTruncation() throws {
        let bytes = try Self.sample().encode()
        for length in 0..<bytes.count {
            let error = #expect(throws: DNSError.self) { try DNSMessage(decoding: Array(bytes[0..<length])) }
            #expect(error?.code == .malformed)
        }
        #expect(throws: DNSError.self) { try DNSMessage(decoding: bytes + [0]) }
    }

    @Test func rejectsBadLengthsAndCounts() {
        // ANCOUNT 65535 in a 12-byte message; an A record with RDLENGTH 5; a TXT string longer than its RDATA.
        #expect(throws: DNSError.self) { try DNSMessage(decoding: [0, 1, 0x80, 0, 0, 0, 0xFF, 0xFF, 0, 0, 0, 0]) }
        let head: [UInt8] = [0, 1, 0x80, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1, 0x61, 0]
        #expect(throws: DNSError.self) { try DNSMessage(decoding: head + [0, 1, 0, 1, 0, 0, 0, 1, 0, 5, 1, 2, 3, 4, 5]) }
        #expect(throws: DNSError.self) { try DNSMessage(decoding: head + [0, 16, 0, 1, 0, 0, 0, 1, 0, 3, 5, 0x61, 0x62]) }
        // A name pointer inside RDATA that runs past RDLENGTH into the next bytes.
        #expect(throws: DNSError.self) { try DNSMessage(decoding: head + [0, 5, 0, 1, 0, 0, 0, 1, 0, 1, 0xC0, 12]) }
        // The reserved label types 0x40 and 0x80.
        #expect(throws: DNSError.self) { try DNSMessage(decoding: [0, 1, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0x41, 0, 0, 1, 0, 1]) }
    }

    @Test func survivesGarbage() {
        var generator = SystemRandomNumberGenerator()
        let seed = (try? Self.sample().encode()) ?? []
        for round in 0..<3000 {
            var bytes = seed
            if round % 2 == 0 {
                for _ in 0..<(1 + round % 6) { bytes[Int.random(in: 0..<bytes.count, using: &generator)] = .random(in: 0...255, using: &generator) }
            } else {
                bytes = (0..<Int.random(in: 0..<80, using: &generator)).map { _ in .random(in: 0...255, using: &generator) }
            }
            // Either outcome is fine; the decoder must not trap.
            _ = try? DNSMessage(decoding: bytes)
        }
    }
}
