import DNS
import Foundation
import TestSupport
import Testing

/// Against a real BIND: signed UPDATEs for the DNS-01 TXT record, queries, TCP fallback and
/// how a wrong key is reported.
@Suite(.serialized) struct BINDTests {
    @Test func addsQueriesAndDeletesTheChallengeRecord() throws {
        let named = try Named()
        defer { named.stop() }
        let client = named.client
        let key = try TSIGKey(name: "acme", base64Secret: Named.secret)
        let zone = DNSUpdate(zone: "example.test")
        let name = DNSUpdate.challengeName(for: "www.example.test")
        #expect(try client.query(name: name, type: .txt).isEmpty)

        try client.update(zone.addChallenge(domain: "www.example.test", value: "abc", ttl: 60), key: key)
        try client.update(zone.addChallenge(domain: "www.example.test", value: "def", ttl: 60), key: key)
        let added = try client.query(name: name, type: .txt)
        #expect(Set(added.compactMap(\.data.text)) == ["abc", "def"])
        #expect(added.allSatisfy { $0.name == name && $0.ttl == 60 && $0.type == .txt })
        // BIND's own client sees the same records.
        let dig = try run("/usr/bin/dig", ["+short", "-p", String(named.port), "@127.0.0.1", name, "TXT"])
        #expect(dig.status == 0 && dig.output.contains("\"abc\"") && dig.output.contains("\"def\""), "dig: \(dig.output)")

        try client.update(zone.deleteChallenge(domain: "www.example.test", value: "abc"), key: key)
        #expect(try client.query(name: name, type: .txt).compactMap(\.data.text) == ["def"])
        try client.update(zone.deleteChallenge(domain: "www.example.test", value: "def"), key: key)
        #expect(try client.query(name: name, type: .txt).isEmpty)
    }

    @Test func fallsBackToTCPWhenTheAnswerIsTruncated() throws {
        let named = try Named()
        defer { named.stop() }
        // Over UDP without EDNS the answer does not fit: BIND sets TC (dig shows it, not retrying).
        let udp = try run("/usr/bin/dig", ["+ignore", "+noedns", "+notcp", "-p", String(named.port), "@127.0.0.1", "big.example.test", "TXT"])
        #expect(udp.output.contains(" tc"), "dig: \(udp.output)")
        let records = try named.client.query(name: "big.example.test", type: .txt)
        #expect(records.count == 9)
        #expect(records.compactMap(\.data.text).contains(String(repeating: "5", count: 60)))
        let soa = try named.client.query(name: "example.test", type: .soa)
        guard case .soa(let data)? = soa.first?.data else { Issue.record("no SOA: \(soa)"); return }
        #expect(data.mname == "ns1.example.test" && data.minimum == 60)
    }

    @Test func reportsAWrongSecretOrKeyName() throws {
        let named = try Named()
        defer { named.stop() }
        let update = DNSUpdate(zone: "example.test").addChallenge(domain: "www.example.test", value: "abc")
        let wrongSecret = try TSIGKey(name: "acme", secret: Array("not the secret named knows".utf8))
        let badSig = #expect(throws: DNSError.self) { try named.client.update(update, key: wrongSecret) }
        #expect(badSig?.code == .tsig && badSig?.rcode == .notAuth && badSig?.tsigError == .badSig)
        #expect(badSig?.reason.contains("secret") == true)

        let unknown = try TSIGKey(name: "someone-else", base64Secret: Named.secret)
        let badKey = #expect(throws: DNSError.self) { try named.client.update(update, key: unknown) }
        #expect(badKey?.tsigError == .badKey && badKey?.reason.contains("key name") == true)

        // Signed correctly with a key named knows, but that `allow-update` does not list.
        let reader = try TSIGKey(name: "reader", base64Secret: Named.secret)
        let notAllowed = #expect(throws: DNSError.self) { try named.client.update(update, key: reader) }
        #expect(notAllowed?.code == .rcode && notAllowed?.rcode == .refused)
        #expect(notAllowed?.reason.contains("allow-update") == true, "\(String(describing: notAllowed))")

        // Signed correctly but for a zone named does not serve.
        let otherZone = DNSUpdate(zone: "other.test").addChallenge(domain: "www.other.test", value: "abc")
        let refused = #expect(throws: DNSError.self) { try named.client.update(otherZone, key: try TSIGKey(name: "acme", base64Secret: Named.secret)) }
        #expect(refused?.rcode == .notAuth || refused?.rcode == .refused)
        #expect(try named.client.query(name: "_acme-challenge.www.example.test", type: .txt).isEmpty)
    }
}
