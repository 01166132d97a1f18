@testable import DNS
import Testing

@Suite struct TSIGTests {
    static let key = try! TSIGKey(name: "acme", base64Secret: "c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0LTMyYg==")

    @Test func hmacMatchesRFC4231() throws {
        // RFC 4231 §4.3, test case 2.
        let mac = try TSIG.hmacSHA256(key: Array("Jefe".utf8), Array("what do ya want for nothing?".utf8))
        #expect(mac.map { String($0, radix: 16).count == 1 ? "0" + String($0, radix: 16) : String($0, radix: 16) }.joined()
                == "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843")
    }

    @Test func signsAnUpdateWithATSIGRecordLast() throws {
        let update = DNSUpdate(zone: "example.test").addChallenge(domain: "www.example.test", value: "abc", id: 0x4242)
        let signed = try TSIG.sign(update, key: Self.key, timeSigned: 1_700_000_000)
        let message = try DNSMessage(decoding: signed.bytes)
        #expect(message.header.opcode == .update)
        #expect(message.additionals.count == 1)
        let tsig = message.additionals[0]
        #expect(tsig.type == .tsig && tsig.dnsClass == .any && tsig.ttl == 0 && tsig.name == "acme")
        let fields = try TSIGFields(tsig)
        #expect(fields.algorithm == "hmac-sha256" && fields.timeSigned == 1_700_000_000 && fields.fudge == 300)
        #expect(fields.originalID == 0x4242 && fields.mac == signed.mac && fields.mac.count == 32)
        // The MAC is over the unsigned message and the variables (RFC 8945 §4.3.1), computed here by hand.
        var vars: [UInt8] = [4] + Array("acme".utf8) + [0, 0, 255, 0, 0, 0, 0, 11] + Array("hmac-sha256".utf8) + [0]
        vars += [0, 0, 0x65, 0x53, 0xF1, 0x00, 0x01, 0x2C, 0, 0, 0, 0]
        #expect(try TSIG.hmacSHA256(key: Self.key.secret, update.encode() + vars) == signed.mac)
    }

    /// Plays the server: signs a response chained to the request's MAC, as RFC 8945 §4.3.2 says.
    static func serverResponse(to request: SignedRequest, key: TSIGKey, time: UInt64, rcode: DNSRCode = .noError) throws -> [UInt8] {
        let response = DNSMessage(header: DNSHeader(id: request.id, isResponse: true, opcode: .update, rcode: rcode),
                                  questions: [DNSQuestion(name: "example.test", type: .soa)])
        let body = try response.encode()
        let vars = try TSIG.variables(key: key, timeSigned: time, fudge: 300, error: .noError, other: [])
        let mac = try TSIG.hmacSHA256(key: key.secret, [0, UInt8(request.mac.count)] + request.mac + body + vars)
        var signed = response
        signed.additionals.append(try TSIG.tsigRecord(key: key, timeSigned: time, fudge: 300, mac: mac, originalID: request.id))
        return try signed.encode()
    }

    @Test func verifiesASignedResponseAndRejectsATamperedByte() throws {
        let request = try TSIG.sign(DNSUpdate(zone: "example.test").deleteChallenge(domain: "www.example.test", value: "abc"),
                                    key: Self.key, timeSigned: 1_700_000_000)
        let response = try Self.serverResponse(to: request, key: Self.key, time: 1_700_000_001)
        let verified = try TSIG.verify(response: response, to: request, key: Self.key, now: 1_700_000_002)
        #expect(verified.additionals.isEmpty && verified.header.rcode == .noError)
        for index in [3, 13, response.count - 40, response.count - 1] {
            var tampered = response
            tampered[index] ^= 0x01
            #expect(throws: DNSError.self) { try TSIG.verify(response: tampered, to: request, key: Self.key, now: 1_700_000_002) }
        }
        let otherKey = try TSIGKey(name: "acme", secret: Array("another secret".utf8))
        let wrong = #expect(throws: DNSError.self) { try TSIG.verify(response: response, to: request, key: otherKey, now: 1_700_000_002) }
        #expect(wrong?.code == .tsig && wrong?.tsigError == .badSig)
        let late = #expect(throws: DNSError.self) { try TSIG.verify(response: response, to: request, key: Self.key, now: 1_700_000_400) }
        #expect(late?.tsigError == .badTime)
        // A response chained to another request's MAC does not verify either.
        let other = try TSIG.sign(DNSUpdate(zone: "example.test").deleteChallenge(domain: "x.example.test", value: "y", id: request.id),
                                  key: Self.key, timeSigned: 1_700_000_000)
        #expect(throws: DNSError.self) { try TSIG.verify(response: response, to: other, key: Self.key, now: 1_700_000_002) }
    }

    @Test func reportsAnUnsignedResponse() throws {
        let request = try TSIG.sign(DNSUpdate(zone: "example.test").addChallenge(domain: "a.example.test", value: "v"), key: Self.key)
        let bare = try DNSMessage(header: DNSHeader(id: request.id, isResponse: true, opcode: .update, rcode: .refused)).encode()
        let error = #expect(throws: DNSError.self) { try TSIG.verify(response: bare, to: request, key: Self.key) }
        #expect(error?.code == .tsig && error?.rcode == .refused)
    }

    @Test func rejectsASecretThatIsNotBase64() {
        let error = #expect(throws: DNSError.self) { try TSIGKey(name: "acme", base64Secret: "not base64!") }
        #expect(error?.code == .badKey)
    }

    @Test func buildsTheUpdateSections() throws {
        let zone = DNSUpdate(zone: "example.test")
        let add = zone.addChallenge(domain: "www.example.test", value: "abc", ttl: 120)
        #expect(add.header.opcode == .update && add.questions == [DNSQuestion(name: "example.test", type: .soa)])
        #expect(add.answers.isEmpty)
        #expect(add.authorities == [DNSRecord(name: "_acme-challenge.www.example.test", type: .txt, ttl: 120, data: .txt([Array("abc".utf8)]))])
        let delete = zone.deleteChallenge(domain: "*.example.test", value: "abc")
        #expect(delete.authorities == [DNSRecord(name: "_acme-challenge.example.test", type: .txt, dnsClass: .none, ttl: 0, data: .txt([Array("abc".utf8)]))])
        let bytes = try delete.encode()
        #expect(bytes[2] == 0x28)  // opcode 5
        #expect(try DNSMessage(decoding: bytes) == delete)
    }
}
