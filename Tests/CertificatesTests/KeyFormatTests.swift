import COpenSSL
import Testing
@testable import TLS

/// Private keys in the PEM formats met in practice decode on the reused-decoder path, and the
/// rest still get OpenSSL's general reader (and its error).
@Suite struct KeyFormatTests {
    /// The key in its type-specific form: SEC1 "EC PRIVATE KEY" or PKCS#1 "RSA PRIVATE KEY".
    static func typeSpecificPEM(_ key: PrivateKey, label: String) throws -> [UInt8] {
        var der: UnsafeMutablePointer<UInt8>?
        let len = i2d_PrivateKey(key.pkey, &der)
        guard len > 0, let der else { throw TLSError("i2d_PrivateKey") }
        defer { COpenSSL_free(der) }
        return try writePEM("PEM_write_bio") { PEM_write_bio($0, label, "", der, Int(len)) > 0 ? 1 : 0 }
    }

    @Test(arguments: [false, true]) func everyCommonFormatTakesTheFastPath(rsa: Bool) throws {
        let key = rsa ? try PrivateKey.generateRSA() : try PrivateKey.generateP256()
        let cert = try SelfSigned.make(names: ["k.test"], key: key)
        let pkcs8 = try key.pem()
        let typeSpecific = try Self.typeSpecificPEM(key, label: rsa ? "RSA PRIVATE KEY" : "EC PRIVATE KEY")
        for pem in [pkcs8, typeSpecific, try cert.pem() + pkcs8] {
            let fast = try #require(KeyDecoders.firstKey(pem: pem))
            #expect(PrivateKey(owning: fast).matches(cert))
            let parsed = try PrivateKey.parse(pem: pem)
            #expect(parsed.matches(cert) && parsed.type == (rsa ? .rsa : .ecdsa))
        }
    }

    @Test func decodersAreReusedAcrossKeys() throws {
        // Many keys through the same pooled decoder: each decode must yield its own key.
        let keys = try (0..<5).map { _ in try PrivateKey.generateP256() }
        let certs = try keys.map { try SelfSigned.make(names: ["r.test"], key: $0) }
        for (key, cert) in zip(keys, certs) {
            let parsed = try PrivateKey.parse(pem: try key.pem())
            #expect(parsed.matches(cert))
            #expect(certs.filter { parsed.matches($0) }.count == 1)
        }
    }

    @Test func otherInputFallsBackToOpenSSLsReader() throws {
        let junk = Array("-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n".utf8)
        #expect(KeyDecoders.firstKey(pem: junk) == nil)
        #expect(throws: TLSError.self) { try PrivateKey.parse(pem: junk) }
        let certOnly = try SelfSigned.make(names: ["c.test"], key: try PrivateKey.generateP256()).pem()
        #expect(KeyDecoders.firstKey(pem: certOnly) == nil)
        #expect(throws: TLSError.self) { try PrivateKey.parse(pem: certOnly) }
    }
}
