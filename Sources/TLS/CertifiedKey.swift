internal import COpenSSL
import Locking

/// A certificate chain (leaf first) with the private key of its leaf: what one handshake serves.
/// Built and checked once, when the certificate is loaded; a handshake that picks it installs it
/// on its own connection (`SSL_use_cert_and_key`, which only takes references) unless its loop's
/// context carries it already (`TLSContext.Carried`), so a loaded certificate costs its parsed
/// X509s and key and no SSL_CTX of its own.
public final class CertifiedKey: @unchecked Sendable {  // immutable after init but the staple (behind its lock); handshakes only up-ref its handles
    public let chain: [X509Certificate]
    public let key: PrivateKey
    public let keyType: KeyType
    /// A TLS-ALPN-01 answer (RFC 8737): its handshake must negotiate "acme-tls/1" and nothing else.
    public let acmeChallenge: Bool
    /// The intermediates as SSL_use_cert_and_key takes them (nil: the leaf alone); owned here.
    let intermediates: OpaquePointer?
    /// The OCSP response handshakes staple (OCSPStapling.swift).
    let stapled = Locked<OCSPStaple?>(nil)

    public var leaf: X509Certificate { chain[0] }

    public init(chain: [X509Certificate], key: PrivateKey, acmeChallenge: Bool = false) throws(TLSError) {
        guard let leaf = chain.first else { throw TLSError("CertifiedKey", reason: "empty certificate chain") }
        guard let type = key.type else { throw TLSError("CertifiedKey", reason: "unsupported key type (expected ECDSA or RSA)") }
        guard key.matches(leaf) else { throw TLSError("X509_check_private_key", reason: "the private key does not belong to the certificate") }
        self.chain = chain
        self.key = key
        keyType = type
        self.acmeChallenge = acmeChallenge
        guard chain.count > 1 else { intermediates = nil; return }
        guard let stack = COpenSSL_sk_X509_new_null() else { throw TLSError("sk_X509_new_null") }
        intermediates = stack
        for cert in chain.dropFirst() {
            X509_up_ref(cert.x509)
            guard COpenSSL_sk_X509_push(stack, cert.x509) > 0 else { X509_free(cert.x509); throw TLSError("sk_X509_push") }
        }
    }

    deinit { if let intermediates { COpenSSL_sk_X509_pop_free(intermediates) } }

    /// Installs this chain and key on one connection (from the ClientHello callback).
    func install(on ssl: OpaquePointer) -> Bool {
        SSL_use_cert_and_key(ssl, leaf.x509, key.pkey, intermediates, 1) == 1
    }
}
