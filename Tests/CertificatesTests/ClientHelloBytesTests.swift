import Testing
@testable import TLS

/// The ClientHello extension readers, fed extension bodies as OpenSSL hands them over.
@Suite struct ClientHelloBytesTests {
    static func u16(_ n: Int) -> [UInt8] { [UInt8(n >> 8), UInt8(n & 0xff)] }

    /// A well-formed server_name body (RFC 6066 §3) holding one host_name.
    static func sni(_ name: [UInt8]) -> [UInt8] { u16(3 + name.count) + [0] + u16(name.count) + name }
    static func sni(_ name: String) -> [UInt8] { sni(Array(name.utf8)) }

    /// A well-formed ALPN body (RFC 7301 §3.1).
    static func alpn(_ names: [String]) -> [UInt8] {
        let list = names.flatMap { [UInt8($0.utf8.count)] + Array($0.utf8) }
        return u16(list.count) + list
    }

    static func serverName(_ b: [UInt8]) -> String? { b.withUnsafeBufferPointer(ClientHelloBytes.serverName) }
    static func offersACME(_ b: [UInt8]) -> Bool {
        b.withUnsafeBufferPointer { ClientHelloBytes.offers(ALPNChallengeCertificate.alpnProtocol, alpn: $0) }
    }

    /// What the reader returned before it scanned bytes: Unicode lower case, one trailing dot off.
    static func reference(_ name: [UInt8]) -> String {
        var s = String(decoding: name, as: UTF8.self).lowercased()
        if s.hasSuffix(".") { s.removeLast() }
        return s
    }

    @Test(arguments: [
        ("a.test", "a.test"), ("B.Test", "b.test"), ("A.TEST.", "a.test"), ("a.test.", "a.test"),
        ("a.test..", "a.test."), (".", ""), ("x", "x"),
        ("Www.Some-Longer-Name.Example.COM.", "www.some-longer-name.example.com"),
        ("a-much-longer-lower-case-name.example.com", "a-much-longer-lower-case-name.example.com"),
        ("ÉCOLE.test.", "école.test"),
    ])
    func serverNameIsLowerCaseWithoutTrailingDot(_ sent: String, _ read: String) {
        #expect(Self.serverName(Self.sni(sent)) == read)
    }

    @Test func serverNameMatchesTheUnicodeLowerCasingForAnyBytes() {
        var rng = SystemRandomNumberGenerator()
        let alphabet = Array("aZz.-09AM".utf8) + [0x00, 0x7f, 0xc3, 0x89, 0xff, 0x2e]
        for _ in 0..<2000 {
            let name = (0..<Int.random(in: 1...40, using: &rng)).map { _ in alphabet.randomElement(using: &rng)! }
            #expect(Self.serverName(Self.sni(name)) == Self.reference(name), "\(name)")
        }
    }

    @Test func malformedServerNameReadsAsNone() {
        let good = Self.sni("a.test")
        #expect(Self.serverName([]) == nil)
        #expect(Self.serverName(Array(good.prefix(5))) == nil)                  // lengths only
        #expect(Self.serverName(Self.sni("")) == nil)
        #expect(Self.serverName(Array(good.dropLast())) == nil)                 // name cut short
        #expect(Self.serverName(good + [0]) == nil)                             // bytes after the list
        #expect(Self.serverName(Self.u16(good.count - 1) + good.dropFirst(2)) == nil)  // list length too long
        #expect(Self.serverName(Self.u16(good.count - 3) + good.dropFirst(2)) == nil)  // list length too short
        var other = good; other[2] = 1                                          // not host_name
        #expect(Self.serverName(other) == nil)
        var long = good; long[4] += 1                                           // name length past the list
        #expect(Self.serverName(long) == nil)
        // A second entry after the first: OpenSSL refuses the hello, so no name is read.
        let two = Self.sni("a.test").dropFirst(2) + Self.sni("b.test").dropFirst(2)
        #expect(Self.serverName(Self.u16(two.count) + two) == nil)
    }

    @Test func acmeTLS1IsFoundAnywhereInAWellFormedList() {
        #expect(Self.offersACME(Self.alpn(["acme-tls/1"])))
        #expect(Self.offersACME(Self.alpn(["h2", "http/1.1", "acme-tls/1"])))
        #expect(Self.offersACME(Self.alpn(["acme-tls/1", "h2"])))
        #expect(!Self.offersACME(Self.alpn(["h2", "http/1.1"])))
        #expect(!Self.offersACME(Self.alpn(["acme-tls/10", "acme-tls/", "ACME-TLS/1"])))
        #expect(!Self.offersACME(Self.alpn([])))
        #expect(!Self.offersACME([]))
    }

    @Test func malformedALPNOffersNothing() {
        let good = Self.alpn(["h2", "acme-tls/1"])
        #expect(!Self.offersACME(good + [0]))                                   // list length short of the body
        #expect(!Self.offersACME(Array(good.dropLast())))                       // cut short
        #expect(!Self.offersACME(Self.u16(good.count - 1) + good.dropFirst(2))) // list length too long
        // An entry overrunning the list before acme-tls/1: nothing after it is read.
        let overrun: [UInt8] = [40] + Array("h2".utf8) + [10] + Array("acme-tls/1".utf8)
        #expect(!Self.offersACME(Self.u16(overrun.count) + overrun))
    }
}
