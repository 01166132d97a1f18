import COpenSSL
import Testing
@testable import Certificates
@testable import TLS

/// Chains that carry the same issuer share one parsed copy of it.
@Suite struct IssuerCacheTests {
    /// A certificate for `name` issued (and signed) by `ca`.
    static func leaf(_ name: String, key: PrivateKey, ca: X509Certificate, caKey: PrivateKey) throws -> X509Certificate {
        let x = try #require(X509_new())
        let cert = X509Certificate(owning: x)
        X509_set_version(x, 2)
        ASN1_INTEGER_set(X509_get_serialNumber(x), Int.random(in: 1..<Int(Int32.max)))
        X509_gmtime_adj(X509_getm_notBefore(x), -3600)
        X509_gmtime_adj(X509_getm_notAfter(x), 86400)
        X509_NAME_add_entry_by_txt(X509_get_subject_name(x), "CN", MBSTRING_ASC, name, -1, -1, 0)
        X509_set_issuer_name(x, X509_get_subject_name(ca.x509))
        X509_set_pubkey(x, key.pkey)
        let ext = try #require(X509V3_EXT_conf_nid(nil, nil, NID_subject_alt_name, "DNS:\(name)"))
        X509_add_ext(x, ext, -1)
        X509_EXTENSION_free(ext)
        #expect(X509_sign(x, caKey.pkey, EVP_sha256()) > 0)
        return cert
    }

    @Test func chainsShareTheirIssuer() throws {
        let caKey = try PrivateKey.generateP256()
        let ca = try SelfSigned.make(names: ["ca.test"], key: caKey)
        var bundles: [CertificateBundle] = []
        for name in ["a.test", "b.test"] {
            let key = try PrivateKey.generateP256()
            let pem = try Self.leaf(name, key: key, ca: ca, caKey: caKey).pem() + ca.pem()
            bundles.append(try CertificateLoader.bundle(chainPEM: pem, keyPEM: try key.pem(), source: name))
        }
        let (a, b) = (try #require(bundles[0].certified).chain, try #require(bundles[1].certified).chain)
        #expect(a.count == 2 && b.count == 2)
        #expect(a[1] === b[1])
        #expect(a[0] !== b[0] && a[0].serialHex != b[0].serialHex)
        #expect(a[1].serialHex == ca.serialHex)

        // Another issuer is another entry.
        let otherKey = try PrivateKey.generateP256()
        let other = try SelfSigned.make(names: ["ca2.test"], key: otherKey)
        let key = try PrivateKey.generateP256()
        let c = try X509Certificate.parseChain(pem: try Self.leaf("c.test", key: key, ca: other, caKey: otherKey).pem() + other.pem())
        #expect(c.count == 2 && c[1] !== a[1] && c[1].serialHex == other.serialHex)
    }

    @Test func chainParsingStopsAtTheFirstBadCertificate() throws {
        let key = try PrivateKey.generateP256()
        let good = try SelfSigned.make(names: ["g.test"], key: key).pem()
        let bad = Array("-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n".utf8)
        #expect(try X509Certificate.parseChain(pem: good + bad + good).count == 1)
        // Non-certificate blocks are skipped, as PEM_read_bio_X509 does.
        #expect(try X509Certificate.parseChain(pem: try key.pem() + good).count == 1)
    }
}
