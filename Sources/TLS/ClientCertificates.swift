internal import COpenSSL

/// Client certificates (mutual TLS) for one listener: the CAs (and revocation lists) a client's
/// certificate must chain to, whether one is required, and for which server names. The
/// ClientHello callback asks for a certificate only on handshakes the policy covers.
public final class ClientCertificatePolicy: @unchecked Sendable {  // immutable after init; OpenSSL only reads the store while verifying
    let store: OpaquePointer
    public let required: Bool
    /// Exact names and one-label wildcards ("*.example.com"); empty: every handshake.
    let names: Set<String>
    /// The session context of handshakes asked for a certificate: a session (ticket) from a
    /// handshake that was not asked cannot resume one that is (OpenSSL refuses the mismatch).
    private let sessionContext: [UInt8]

    public init(caFile: String, crlFile: String?, required: Bool, names: [String]) throws(TLSError) {
        ERR_clear_error()
        guard let store = X509_STORE_new() else { throw TLSError("X509_STORE_new") }
        self.store = store
        self.required = required
        self.names = Set(names.map { $0.lowercased() })
        // From the files' contents, not their names: a session from before a CA or CRL change
        // (from any node: ticket keys are shared) never resumes past the new check.
        var material = Array("edgeproxy-mtls:\(required):\(names.sorted().joined(separator: ","))".utf8)
        for file in [caFile] + (crlFile.map { [$0] } ?? []) {
            guard let bio = BIO_new_file(file, "r") else { throw TLSError("BIO_new_file(\(file))") }
            defer { BIO_free(bio) }
            var chunk = [UInt8](repeating: 0, count: 16384)
            while true {
                let n = BIO_read(bio, &chunk, Int32(chunk.count))
                if n <= 0 { break }
                material += chunk.prefix(Int(n))
            }
        }
        sessionContext = Digest.sha256(material)
        guard X509_STORE_load_file(store, caFile) == 1 else { throw TLSError("X509_STORE_load_file(\(caFile))") }
        if let crlFile {
            guard let bio = BIO_new_file(crlFile, "r") else { throw TLSError("BIO_new_file(\(crlFile))") }
            defer { BIO_free(bio) }
            var count = 0
            while let crl = PEM_read_bio_X509_CRL(bio, nil, nil, nil) {
                defer { X509_CRL_free(crl) }
                guard X509_STORE_add_crl(store, crl) == 1 else { throw TLSError("X509_STORE_add_crl(\(crlFile))") }
                count += 1
            }
            ERR_clear_error()  // the end of the file reads as an error
            guard count > 0 else { throw TLSError("PEM_read_bio_X509_CRL", reason: "\(crlFile) holds no PEM CRL") }
            // Every certificate of the chain is checked against its issuer's CRL.
            X509_STORE_set_flags(store, UInt(X509_V_FLAG_CRL_CHECK | X509_V_FLAG_CRL_CHECK_ALL))
        }
    }

    deinit { X509_STORE_free(store) }

    /// Whether handshakes (by SNI) and requests (by Host) for this name need a client certificate.
    public func covers(_ serverName: String?) -> Bool {
        guard !names.isEmpty else { return true }
        guard let name = serverName else { return false }
        if names.contains(name) { return true }
        guard let dot = name.firstIndex(of: ".") else { return false }
        return names.contains("*" + name[dot...])
    }

    /// Inside the ClientHello callback: ask this client for a certificate. Required: a missing or
    /// failing one ends the handshake with OpenSSL's alert. Optional: the handshake goes on, and
    /// only a certificate that verified is reported (`TLSConnection.clientCertificate`).
    func request(on ssl: OpaquePointer) {
        _ = COpenSSL_SSL_set1_verify_cert_store(ssl, store)
        _ = sessionContext.withUnsafeBufferPointer { SSL_set_session_id_context(ssl, $0.baseAddress, UInt32($0.count)) }
        if required {
            SSL_set_verify(ssl, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, nil)
        } else {
            SSL_set_verify(ssl, SSL_VERIFY_PEER, acceptAny)
        }
    }
}

/// Optional client certificates: the verification result is kept (SSL_get_verify_result), the
/// handshake is not failed for it.
private let acceptAny: @convention(c) (Int32, OpaquePointer?) -> Int32 = { _, _ in 1 }

/// A verified client certificate, as the origin is told of it.
public struct ClientIdentity: Sendable, Equatable {
    /// RFC 2253 distinguished name.
    public var subject: String
    /// "DNS:…", "email:…", "URI:…", "IP:…" entries of subjectAltName.
    public var subjectAltNames: [String]
    /// SHA-256 of the certificate's DER, lower-case hex.
    public var sha256: String
}

extension TLSConnection {
    /// Whether this handshake was asked for a client certificate (its name is covered by the policy).
    public var askedForClientCertificate: Bool { SSL_get_ex_data(ssl, TLSContext.clientAuthAskedIndex) != nil }

    /// The client's certificate when it sent one that verified; nil otherwise.
    public var clientCertificate: ClientIdentity? {
        guard SSL_get_verify_result(ssl) == X509_V_OK, let peer = SSL_get1_peer_certificate(ssl) else { return nil }
        let cert = X509Certificate(owning: peer)
        return ClientIdentity(subject: cert.subjectRFC2253, subjectAltNames: cert.subjectAltNames, sha256: cert.sha256Hex)
    }
}

extension X509Certificate {
    var subjectRFC2253: String {
        guard let name = X509_get_subject_name(x509), let bio = BIO_new(BIO_s_mem()) else { return "" }
        defer { BIO_free(bio) }
        guard X509_NAME_print_ex(bio, name, 0, COpenSSL_XN_FLAG_RFC2253()) >= 0 else { return "" }
        var data: UnsafeMutablePointer<CChar>?
        let len = COpenSSL_BIO_get_mem_data(bio, &data)
        guard len > 0, let data else { return "" }
        return String(decoding: UnsafeRawBufferPointer(start: data, count: Int(len)), as: UTF8.self)
    }

    var subjectAltNames: [String] {
        guard let raw = X509_get_ext_d2i(x509, NID_subject_alt_name, nil, nil) else { return [] }
        let stack = OpaquePointer(raw)
        defer { GENERAL_NAMES_free(stack) }
        var out: [String] = []
        for i in 0..<OPENSSL_sk_num(stack) {
            guard let item = OPENSSL_sk_value(stack, i) else { continue }
            let gn = item.assumingMemoryBound(to: GENERAL_NAME.self)
            let prefix: String
            switch gn.pointee.type {
            case GEN_DNS: prefix = "DNS:"
            case GEN_EMAIL: prefix = "email:"
            case GEN_URI: prefix = "URI:"
            case GEN_IPADD: prefix = "IP:"
            default: continue
            }
            // Every kind above is an ASN1_STRING in the union; IP addresses are raw octets.
            guard let s = gn.pointee.d.ia5 else { continue }
            let str = UnsafePointer(UnsafeRawPointer(s).assumingMemoryBound(to: ASN1_STRING.self))
            guard let bytes = ASN1_STRING_get0_data(str) else { continue }
            let buffer = UnsafeBufferPointer(start: bytes, count: Int(ASN1_STRING_length(str)))
            if gn.pointee.type == GEN_IPADD {
                guard buffer.count == 4 || buffer.count == 16 else { continue }
                out.append(prefix + (buffer.count == 4 ? buffer.map(String.init).joined(separator: ".")
                                     : stride(from: 0, to: 16, by: 2).map { String(UInt16(buffer[$0]) << 8 | UInt16(buffer[$0 + 1]), radix: 16) }
                                        .joined(separator: ":")))
            } else {
                // Only printable ASCII reaches a request field: a CR or LF in a name must not
                // start a field of its own towards the origin.
                out.append(prefix + String(decoding: buffer.map { $0 >= 0x20 && $0 < 0x7F && $0 != UInt8(ascii: ",") ? $0 : UInt8(ascii: "?") }, as: UTF8.self))
            }
        }
        return out
    }

    var sha256Hex: String {
        var md = [UInt8](repeating: 0, count: 32)
        var len: UInt32 = 0
        guard X509_digest(x509, EVP_sha256(), &md, &len) == 1 else { return "" }
        return md.prefix(Int(len)).map { String(format: "%02x", $0) }.joined()
    }
}
