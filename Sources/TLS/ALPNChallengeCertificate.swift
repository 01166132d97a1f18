internal import COpenSSL
import Locking

/// TLS-ALPN-01 (RFC 8737): the certificate a server presents to the CA's validator when the
/// ClientHello offers ALPN "acme-tls/1" for a name under validation.
public enum ALPNChallengeCertificate {
    /// The ALPN protocol the validator offers (RFC 8737 §6.2); the handshake must select it.
    public static let alpnProtocol: StaticString = "acme-tls/1"
    /// id-pe-acmeIdentifier (RFC 8737 §6.1).
    public static let acmeIdentifierOID = "1.3.6.1.5.5.7.1.31"

    /// A self-signed certificate for `name` carrying the critical acmeIdentifier extension whose
    /// value is the DER OCTET STRING of SHA-256(keyAuthorization) (RFC 8737 §3). The SAN holds
    /// exactly that one name (§3: "MUST contain ... only the domain name being validated").
    public static func make(name: String, keyAuthorization: String, key: PrivateKey) throws(TLSError) -> X509Certificate {
        guard canAnswer(name) else {
            throw TLSError("ALPNChallengeCertificate", reason: "not a DNS name: \(name)")
        }
        // Short-lived: it only has to outlive one validation.
        return try SelfSigned.make(names: [name], key: key, lifetime: 7 * 24 * 3600) { (x: OpaquePointer) throws(TLSError) in
            try addAcmeIdentifier(to: x, digest: Digest.sha256(Array(keyAuthorization.utf8)))
        }
    }

    /// Whether `make` takes `name`: a DNS name, not a wildcard (RFC 8737 §3 validates one name).
    public static func canAnswer(_ name: String) -> Bool {
        CertificateRequest.isPlainDNSName(name) && !name.hasPrefix("*.")
    }

    /// The extension's extnValue wraps the DER of `Authorization ::= OCTET STRING (SIZE (32))`, so
    /// the bytes inside extnValue are 04 20 followed by the digest.
    private static func addAcmeIdentifier(to x: OpaquePointer, digest: [UInt8]) throws(TLSError) {
        guard let obj = OBJ_txt2obj(acmeIdentifierOID, 1) else { throw TLSError("OBJ_txt2obj(acmeIdentifier)") }
        defer { ASN1_OBJECT_free(obj) }
        guard let value = ASN1_OCTET_STRING_new() else { throw TLSError("ASN1_OCTET_STRING_new") }
        defer { ASN1_OCTET_STRING_free(value) }
        let inner: [UInt8] = [0x04, 0x20] + digest
        guard ASN1_OCTET_STRING_set(value, inner, Int32(inner.count)) == 1 else { throw TLSError("ASN1_OCTET_STRING_set") }
        guard let ext = X509_EXTENSION_create_by_OBJ(nil, obj, 1, value) else { throw TLSError("X509_EXTENSION_create_by_OBJ") }
        defer { X509_EXTENSION_free(ext) }
        guard X509_add_ext(x, ext, -1) == 1 else { throw TLSError("X509_add_ext(acmeIdentifier)") }
    }

    /// The raw acmeIdentifier payload (the 32-byte digest) of `certificate`, or nil: for tests and
    /// for checking what is being served.
    public static func acmeIdentifier(of certificate: X509Certificate) -> [UInt8]? {
        guard let obj = OBJ_txt2obj(acmeIdentifierOID, 1) else { return nil }
        defer { ASN1_OBJECT_free(obj) }
        let index = X509_get_ext_by_OBJ(certificate.x509, obj, -1)
        guard index >= 0, let ext = X509_get_ext(certificate.x509, index), X509_EXTENSION_get_critical(ext) == 1,
              let data = X509_EXTENSION_get_data(ext), let bytes = ASN1_STRING_get0_data(data) else { return nil }
        let all = Array(UnsafeBufferPointer(start: bytes, count: Int(ASN1_STRING_length(data))))
        guard all.count == 34, all[0] == 0x04, all[1] == 0x20 else { return nil }
        return Array(all[2...])
    }
}

/// TLS-ALPN-01 answers under validation, by lower-cased name, each checked and ready to install
/// when it is presented. The ACME solver writes it; the certificate store reads it from the ClientHello
/// callback when "acme-tls/1" is offered (a lock and a dictionary read: fine on the loop thread,
/// and empty almost always).
public final class ALPNChallengeTable: Sendable {
    public struct Entry: Sendable {
        public let certificate: X509Certificate
        public let key: PrivateKey
        public let certifiedKey: CertifiedKey
    }
    private let entries = Locked<[String: Entry]>([:])

    public init() {}

    public func entry(for name: String) -> Entry? { entries.withLock { $0[name.lowercased()] } }
    public func present(name: String, certificate: X509Certificate, key: PrivateKey) throws(TLSError) {
        let certified = try CertifiedKey(chain: [certificate], key: key, acmeChallenge: true)
        present(name: name, Entry(certificate: certificate, key: key, certifiedKey: certified))
    }
    public func present(name: String, _ entry: Entry) { entries.withLock { $0[name.lowercased()] = entry } }

    /// The answer for `name` under a fresh P-256 key, for answers stored elsewhere (a cluster's
    /// store): built before `present`, which then only swaps it in.
    public static func entry(name: String, keyAuthorization: String) throws(TLSError) -> Entry {
        let key = try PrivateKey.generateP256()
        let certificate = try ALPNChallengeCertificate.make(name: name, keyAuthorization: keyAuthorization, key: key)
        return Entry(certificate: certificate, key: key, certifiedKey: try CertifiedKey(chain: [certificate], key: key, acmeChallenge: true))
    }
    public func cleanUp(name: String) { entries.withLock { $0[name.lowercased()] = nil } }
    public var count: Int { entries.withLock { $0.count } }
}
