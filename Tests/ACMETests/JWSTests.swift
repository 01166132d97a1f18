import Foundation
import Testing
@testable import ACME
import TLS

@Suite struct Base64URLTests {
    @Test func roundTripsWithoutPadding() {
        for n in 0..<40 {
            let bytes = (0..<n).map { UInt8(($0 * 37 + 251) & 0xff) }
            let text = Base64URL.encode(bytes)
            #expect(!text.contains("=") && !text.contains("+") && !text.contains("/"))
            #expect(Base64URL.decode(text) == bytes)
        }
    }

    @Test func knownValues() {
        // RFC 4648 §10 vectors, padding removed; 0xfb 0xff uses both URL-safe characters.
        #expect(Base64URL.encode("foob") == "Zm9vYg")
        #expect(Base64URL.encode("fooba") == "Zm9vYmE")
        #expect(Base64URL.encode([0xfb, 0xff]) == "-_8")
        #expect(Base64URL.decode("-_8") == [0xfb, 0xff])
        #expect(Base64URL.decode("a") == nil)
        #expect(Base64URL.decode("ab+/") == nil)
    }
}

@Suite struct JWSTests {
    /// RFC 7638 §3.1: the example RSA key's thumbprint, through the same canonicalisation the EC key uses.
    @Test func thumbprintMatchesRFC7638Example() {
        let n = "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw"
        #expect(JWK.thumbprint(requiredMembers: ["n": n, "e": "AQAB", "kty": "RSA"]) == "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs")
    }

    @Test func accountKeyJWKAndThumbprint() throws {
        let key = try AccountKey.generate()
        #expect(Base64URL.decode(key.jwk.x)?.count == 32)
        #expect(Base64URL.decode(key.jwk.y)?.count == 32)
        let canonical = #"{"crv":"P-256","kty":"EC","x":"\#(key.jwk.x)","y":"\#(key.jwk.y)"}"#
        #expect(key.thumbprint == Base64URL.encode(Digest.sha256(Array(canonical.utf8))))
        #expect(key.keyAuthorization(token: "tok") == "tok.\(key.thumbprint)")
    }

    @Test func protectedHeaderCarriesJWKOrKid() throws {
        let key = try AccountKey.generate()
        let withJWK = try JWS.sign(payload: Array("{}".utf8), url: "https://ca/new-acct", nonce: "n1", key: key, kid: nil)
        let header = try JSONSerialization.jsonObject(with: Data(Base64URL.decode(withJWK.protected)!)) as! [String: Any]
        #expect(header["alg"] as? String == "ES256")
        #expect(header["nonce"] as? String == "n1")
        #expect(header["url"] as? String == "https://ca/new-acct")
        #expect(header["jwk"] != nil && header["kid"] == nil)

        let withKid = try JWS.sign(payload: nil, url: "https://ca/order/1", nonce: "n2", key: key, kid: "https://ca/acct/7")
        let header2 = try JSONSerialization.jsonObject(with: Data(Base64URL.decode(withKid.protected)!)) as! [String: Any]
        #expect(header2["kid"] as? String == "https://ca/acct/7" && header2["jwk"] == nil)
        #expect(withKid.payload == "")  // POST-as-GET (RFC 8555 §6.3)
    }

    @Test func signatureVerifiesInSwiftAndWithOpenSSLCLI() throws {
        let key = try AccountKey.generate()
        let jws = try JWS.sign(payload: Array(#"{"hello":"world"}"#.utf8), url: "https://ca/x", nonce: "abc", key: key, kid: "k")
        let signingInput = Array("\(jws.protected).\(jws.payload)".utf8)
        let raw = try #require(Base64URL.decode(jws.signature))
        #expect(raw.count == 64)
        #expect(key.key.verifyES256(signingInput, signature: raw))
        var tampered = raw
        tampered[10] ^= 1
        #expect(!key.key.verifyES256(signingInput, signature: tampered))

        // Independent check: `openssl dgst -verify` over the DER form of r || s.
        let dir = try TempDir()
        try Data(signingInput).write(to: dir.url("input"))
        try Data(ECDSASignature.der(fromRaw: raw)).write(to: dir.url("sig.der"))
        try Data(key.key.publicKeyPEM()).write(to: dir.url("pub.pem"))
        let result = try run("/usr/bin/openssl", ["dgst", "-sha256", "-verify", dir.path("pub.pem"), "-signature", dir.path("sig.der"), dir.path("input")])
        #expect(result.status == 0, "openssl said: \(result.output)")
        #expect(result.output.contains("Verified OK"))
    }

    @Test func externalAccountBindingIsHS256OverTheJWK() throws {
        let key = try AccountKey.generate()
        let mac = Array("0123456789abcdef0123456789abcdef".utf8)
        let eab = try JWS.externalAccountBinding(accountKey: key, keyID: "kid-1", macKey: mac, url: "https://ca/new-acct")
        let header = try JSONSerialization.jsonObject(with: Data(Base64URL.decode(eab.protected)!)) as! [String: Any]
        #expect(header["alg"] as? String == "HS256" && header["kid"] as? String == "kid-1" && header["nonce"] == nil)
        let payload = try JSONDecoder().decode(JWK.self, from: Data(Base64URL.decode(eab.payload)!))
        #expect(payload == key.jwk)
        let expected = try Digest.hmacSHA256(key: mac, Array("\(eab.protected).\(eab.payload)".utf8))
        #expect(eab.signature == Base64URL.encode(expected))
    }

    /// RFC 4231 test case 2 pins the HMAC primitive itself.
    @Test func hmacKnownAnswer() throws {
        let mac = try Digest.hmacSHA256(key: Array("Jefe".utf8), Array("what do ya want for nothing?".utf8))
        #expect(mac.map { String(format: "%02x", $0) }.joined() == "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843")
    }

    @Test func csrCarriesEveryNameAndVerifies() throws {
        let key = try PrivateKey.generateP256()
        let der = try CertificateRequest.der(names: ["a.example", "b.example"], key: key)
        let dir = try TempDir()
        try Data(der).write(to: dir.url("csr.der"))
        let result = try run("/usr/bin/openssl", ["req", "-inform", "DER", "-in", dir.path("csr.der"), "-noout", "-verify", "-text"])
        #expect(result.status == 0, "\(result.output)")
        #expect(result.output.contains("DNS:a.example, DNS:b.example"))
        #expect(throws: TLSError.self) { try CertificateRequest.der(names: ["a.example,DNS:evil"], key: key) }
    }

    @Test func alpnChallengeCertificateHasCriticalAcmeIdentifier() throws {
        let key = try PrivateKey.generateP256()
        let keyAuth = "token.thumb"
        let cert = try ALPNChallengeCertificate.make(name: "a.example", keyAuthorization: keyAuth, key: key)
        #expect(cert.dnsNames == ["a.example"])
        #expect(ALPNChallengeCertificate.acmeIdentifier(of: cert) == Digest.sha256(Array(keyAuth.utf8)))
        let dir = try TempDir()
        try Data(cert.pem()).write(to: dir.url("c.pem"))
        let result = try run("/usr/bin/openssl", ["x509", "-in", dir.path("c.pem"), "-noout", "-text"])
        #expect(result.output.contains("1.3.6.1.5.5.7.1.31: critical"))
    }
}
