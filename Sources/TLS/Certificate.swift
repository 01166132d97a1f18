internal import COpenSSL
import Foundation

/// Owner of one X509.
public final class X509Certificate: @unchecked Sendable {  // immutable after init; OpenSSL X509 reads are thread-safe
    let x509: OpaquePointer

    /// Takes ownership of `x509`.
    init(owning x509: OpaquePointer) { self.x509 = x509 }
    deinit { X509_free(x509) }

    /// DNS names from the subjectAltName extension, lower-cased (the subject CN only when there is no SAN).
    public var dnsNames: [String] {
        var names: [String] = []
        if let raw = X509_get_ext_d2i(x509, NID_subject_alt_name, nil, nil) {
            let stack = OpaquePointer(raw)
            for i in 0..<OPENSSL_sk_num(stack) {
                guard let item = OPENSSL_sk_value(stack, i) else { continue }
                let gn = item.assumingMemoryBound(to: GENERAL_NAME.self)
                guard gn.pointee.type == GEN_DNS, let ia5 = gn.pointee.d.dNSName else { continue }
                let str = UnsafePointer(UnsafeRawPointer(ia5).assumingMemoryBound(to: ASN1_STRING.self))
                if let data = ASN1_STRING_get0_data(str) {
                    let len = Int(ASN1_STRING_length(str))
                    names.append(String(decoding: UnsafeBufferPointer(start: data, count: len), as: UTF8.self).lowercased())
                }
            }
            GENERAL_NAMES_free(stack)
        }
        if names.isEmpty, let subject = X509_get_subject_name(x509) {
            var buf = [CChar](repeating: 0, count: 256)
            if X509_NAME_get_text_by_NID(subject, NID_commonName, &buf, Int32(buf.count)) > 0 {
                names.append(buf.withUnsafeBufferPointer { String(cString: $0.baseAddress!) }.lowercased())
            }
        }
        return names
    }

    /// PEM text of this certificate.
    public func pem() throws(TLSError) -> [UInt8] {
        try writePEM("PEM_write_bio_X509") { PEM_write_bio_X509($0, x509) }
    }

    /// DER encoding of this certificate.
    public func der() throws(TLSError) -> [UInt8] {
        var out: UnsafeMutablePointer<UInt8>?
        let len = i2d_X509(x509, &out)
        guard len > 0, let out else { throw TLSError("i2d_X509") }
        defer { COpenSSL_free(out) }
        return Array(UnsafeBufferPointer(start: out, count: Int(len)))
    }

    /// Whether `issuer` signed this certificate (names and key identifiers match; X509_check_issued).
    public func isIssued(by issuer: X509Certificate) -> Bool {
        let ok = X509_check_issued(issuer.x509, x509) == X509_V_OK
        ERR_clear_error()
        return ok
    }

    public var serialHex: String {
        guard let serial = X509_get_serialNumber(x509), let bn = ASN1_INTEGER_to_BN(serial, nil) else { return "" }
        defer { BN_free(bn) }
        guard let hex = BN_bn2hex(bn) else { return "" }
        defer { COpenSSL_free(hex) }
        return String(cString: hex)
    }

    /// The serial's DER content octets (two's complement, so a leading 0x00 when the top bit is set).
    public var serialDERContent: [UInt8] {
        guard let serial = X509_get0_serialNumber(x509), let bytes = ASN1_STRING_get0_data(serial) else { return [] }
        let magnitude = Array(UnsafeBufferPointer(start: bytes, count: Int(ASN1_STRING_length(serial))))
        return (magnitude.first ?? 0) >= 0x80 ? [0] + magnitude : magnitude
    }

    /// The keyIdentifier of the Authority Key Identifier extension, when present.
    public var authorityKeyIdentifier: [UInt8]? {
        guard let id = X509_get0_authority_key_id(x509), let bytes = ASN1_STRING_get0_data(id) else { return nil }
        return Array(UnsafeBufferPointer(start: bytes, count: Int(ASN1_STRING_length(id))))
    }

    public var notBefore: Date { Self.date(X509_get0_notBefore(x509)) }
    public var notAfter: Date { Self.date(X509_get0_notAfter(x509)) }

    public var subject: String { Self.nameLine(X509_get_subject_name(x509)) }
    public var issuer: String { Self.nameLine(X509_get_issuer_name(x509)) }

    private static func nameLine(_ name: OpaquePointer?) -> String {
        guard let name, let line = X509_NAME_oneline(name, nil, 0) else { return "" }
        defer { COpenSSL_free(line) }
        return String(cString: line)
    }

    static func date(_ t: UnsafePointer<ASN1_TIME>?) -> Date {
        var tm = tm()
        guard let t, ASN1_TIME_to_tm(t, &tm) == 1 else { return .distantPast }
        return Date(timeIntervalSince1970: TimeInterval(timegm(&tm)))
    }

    /// Every certificate in a PEM text, in order, up to the first that does not decode. The ones
    /// after the leaf (its issuers) come from `IssuerCache`: chains share them.
    public static func parseChain(pem: [UInt8]) throws(TLSError) -> [X509Certificate] {
        ERR_clear_error()
        let bio = pem.withUnsafeBytes { BIO_new_mem_buf($0.baseAddress, Int32($0.count)) }
        guard let bio else { throw TLSError("BIO_new_mem_buf") }
        defer { BIO_free(bio); ERR_clear_error() }  // the loop ends on a "no start line" error at end of input
        var chain: [X509Certificate] = []
        var name: UnsafeMutablePointer<CChar>?, header: UnsafeMutablePointer<CChar>?, data: UnsafeMutablePointer<UInt8>?
        var len = 0
        while PEM_read_bio(bio, &name, &header, &data, &len) == 1 {
            defer { COpenSSL_free(name); COpenSSL_free(header); COpenSSL_free(data) }
            // The labels PEM_read_bio_X509 accepts; other blocks (the key of a NAME.pem) are skipped.
            guard let name, ["CERTIFICATE", "X509 CERTIFICATE"].contains(String(cString: name)) else { continue }
            let der = UnsafeRawBufferPointer(start: data, count: len)
            guard let cert = chain.isEmpty ? X509Certificate(der: der) : IssuerCache.certificate(der: der) else { break }
            chain.append(cert)
        }
        return chain
    }

    /// A certificate from its DER encoding, or nil.
    convenience init?(der: UnsafeRawBufferPointer) {
        var p = der.baseAddress?.assumingMemoryBound(to: UInt8.self)
        guard p != nil, let x = d2i_X509(nil, &p, der.count) else { return nil }
        self.init(owning: x)
    }
}

public enum KeyType: String, Sendable { case ecdsa, rsa }

/// Owner of one EVP_PKEY.
public final class PrivateKey: @unchecked Sendable {  // immutable after init
    let pkey: OpaquePointer

    init(owning pkey: OpaquePointer) { self.pkey = pkey }
    deinit { EVP_PKEY_free(pkey) }

    public var type: KeyType? {
        switch EVP_PKEY_get_base_id(pkey) {
        case EVP_PKEY_EC: return .ecdsa
        case EVP_PKEY_RSA: return .rsa
        default: return nil
        }
    }

    /// The first private key in a PEM text.
    public static func parse(pem: [UInt8]) throws(TLSError) -> PrivateKey {
        if let key = KeyDecoders.firstKey(pem: pem) { return PrivateKey(owning: key) }
        // Other formats (and the error to report) from OpenSSL's general, much slower reader.
        ERR_clear_error()
        let bio = pem.withUnsafeBytes { BIO_new_mem_buf($0.baseAddress, Int32($0.count)) }
        guard let bio else { throw TLSError("BIO_new_mem_buf") }
        defer { BIO_free(bio) }
        guard let key = PEM_read_bio_PrivateKey(bio, nil, nil, nil) else {
            throw TLSError("PEM_read_bio_PrivateKey", reason: "no private key found (expected a PEM \"PRIVATE KEY\" block)")
        }
        ERR_clear_error()
        return PrivateKey(owning: key)
    }

    /// A new P-256 key.
    public static func generateP256() throws(TLSError) -> PrivateKey {
        guard let ctx = EVP_PKEY_CTX_new_from_name(nil, "EC", nil) else { throw TLSError("EVP_PKEY_CTX_new_from_name") }
        defer { EVP_PKEY_CTX_free(ctx) }
        var key: OpaquePointer?
        guard EVP_PKEY_keygen_init(ctx) == 1, EVP_PKEY_CTX_set_group_name(ctx, "P-256") == 1,
              EVP_PKEY_generate(ctx, &key) == 1, let key else { throw TLSError("EVP_PKEY_generate(P-256)") }
        return PrivateKey(owning: key)
    }

    /// A new RSA key (for clients that cannot verify ECDSA).
    public static func generateRSA(bits: Int32 = 2048) throws(TLSError) -> PrivateKey {
        guard let ctx = EVP_PKEY_CTX_new_from_name(nil, "RSA", nil) else { throw TLSError("EVP_PKEY_CTX_new_from_name") }
        defer { EVP_PKEY_CTX_free(ctx) }
        var key: OpaquePointer?
        guard EVP_PKEY_keygen_init(ctx) == 1, EVP_PKEY_CTX_set_rsa_keygen_bits(ctx, bits) == 1,
              EVP_PKEY_generate(ctx, &key) == 1, let key else { throw TLSError("EVP_PKEY_generate(RSA)") }
        return PrivateKey(owning: key)
    }

    /// PEM text (PKCS#8, unencrypted) of this key: callers storing it must protect the file.
    public func pem() throws(TLSError) -> [UInt8] {
        try writePEM("PEM_write_bio_PrivateKey") { PEM_write_bio_PrivateKey($0, pkey, nil, nil, 0, nil, nil) }
    }

    /// Whether this key belongs to `certificate`.
    public func matches(_ certificate: X509Certificate) -> Bool {
        let ok = X509_check_private_key(certificate.x509, pkey) == 1
        ERR_clear_error()
        return ok
    }
}

public enum SelfSigned {
    /// A self-signed P-256 certificate for `names`, valid for a year: what serves when nothing is configured.
    public static func make(names: [String], key: PrivateKey) throws(TLSError) -> X509Certificate {
        try make(names: names, key: key, lifetime: 365 * 24 * 3600) { (_: OpaquePointer) throws(TLSError) in }
    }

    /// Random serial, valid from an hour ago for `lifetime` seconds, CN = the first name, SAN = all
    /// names; `extend` adds extensions before the signature.
    static func make(names: [String], key: PrivateKey, lifetime: Int,
                     extend: (OpaquePointer) throws(TLSError) -> Void) throws(TLSError) -> X509Certificate {
        ERR_clear_error()
        guard let x = X509_new() else { throw TLSError("X509_new") }
        let cert = X509Certificate(owning: x)
        X509_set_version(x, 2)
        var serial = [UInt8](repeating: 0, count: 16)
        RAND_bytes(&serial, 16)
        serial[0] &= 0x7f
        if let bn = BN_bin2bn(serial, 16, nil) { BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(x)); BN_free(bn) }
        X509_gmtime_adj(X509_getm_notBefore(x), -3600)
        X509_gmtime_adj(X509_getm_notAfter(x), lifetime)
        let name = X509_get_subject_name(x)
        X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, names.first ?? "localhost", -1, -1, 0)
        X509_set_issuer_name(x, name)
        X509_set_pubkey(x, key.pkey)
        let san = names.map { "DNS:\($0)" }.joined(separator: ",")
        guard let ext = X509V3_EXT_conf_nid(nil, nil, NID_subject_alt_name, san) else { throw TLSError("X509V3_EXT_conf_nid(subjectAltName)") }
        X509_add_ext(x, ext, -1)
        X509_EXTENSION_free(ext)
        try extend(x)
        guard X509_sign(x, key.pkey, EVP_sha256()) > 0 else { throw TLSError("X509_sign") }
        return cert
    }
}

/// Runs a PEM writer into a memory BIO and returns what it wrote.
func writePEM(_ call: String, _ write: (OpaquePointer) -> Int32) throws(TLSError) -> [UInt8] {
    ERR_clear_error()
    guard let bio = BIO_new(BIO_s_mem()) else { throw TLSError("BIO_new") }
    defer { BIO_free(bio) }
    guard write(bio) == 1 else { throw TLSError(call) }
    var data: UnsafeMutablePointer<CChar>?
    let len = COpenSSL_BIO_get_mem_data(bio, &data)
    guard let data, len > 0 else { return [] }
    return data.withMemoryRebound(to: UInt8.self, capacity: Int(len)) { Array(UnsafeBufferPointer(start: $0, count: Int(len))) }
}
