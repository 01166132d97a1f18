internal import COpenSSL

/// PKCS#10 certificate signing requests (RFC 2986) for ACME finalize (RFC 8555 §7.4).
public enum CertificateRequest {
    /// A DER CSR for `names` signed by `key`: every name in subjectAltName, the first also as the
    /// subject CN (CAs take the SANs; a CN keeps old tools readable). Names are checked first
    /// because they are passed to OpenSSL's extension config syntax, where "," would split them.
    public static func der(names: [String], key: PrivateKey) throws(TLSError) -> [UInt8] {
        guard let first = names.first else { throw TLSError("CertificateRequest", reason: "no names") }
        for name in names where !isPlainDNSName(name) {
            throw TLSError("CertificateRequest", reason: "not a DNS name: \(name)")
        }
        ERR_clear_error()
        guard let req = X509_REQ_new() else { throw TLSError("X509_REQ_new") }
        defer { X509_REQ_free(req) }
        X509_REQ_set_version(req, 0)  // v1, the only version (RFC 2986 §4.1)
        guard let subject = X509_NAME_new() else { throw TLSError("X509_NAME_new") }
        defer { X509_NAME_free(subject) }
        // A CN holds at most 64 characters (RFC 5280 ub-common-name); longer names live only in the SAN.
        if first.utf8.count <= 64 {
            X509_NAME_add_entry_by_txt(subject, "CN", MBSTRING_ASC, first, -1, -1, 0)
        }
        X509_REQ_set_subject_name(req, subject)
        guard X509_REQ_set_pubkey(req, key.pkey) == 1 else { throw TLSError("X509_REQ_set_pubkey") }
        let san = names.map { "DNS:\($0)" }.joined(separator: ",")
        guard let ext = X509V3_EXT_conf_nid(nil, nil, NID_subject_alt_name, san) else { throw TLSError("X509V3_EXT_conf_nid(subjectAltName)") }
        guard let exts = COpenSSL_sk_X509_EXTENSION_new_null() else { X509_EXTENSION_free(ext); throw TLSError("sk_new_null") }
        defer { COpenSSL_sk_X509_EXTENSION_pop_free(exts) }
        guard COpenSSL_sk_X509_EXTENSION_push(exts, ext) > 0 else { X509_EXTENSION_free(ext); throw TLSError("sk_push") }
        guard X509_REQ_add_extensions(req, exts) == 1 else { throw TLSError("X509_REQ_add_extensions") }
        guard X509_REQ_sign(req, key.pkey, EVP_sha256()) > 0 else { throw TLSError("X509_REQ_sign") }
        var out: UnsafeMutablePointer<UInt8>?
        let len = i2d_X509_REQ(req, &out)
        guard len > 0, let out else { throw TLSError("i2d_X509_REQ") }
        defer { COpenSSL_free(out) }
        return Array(UnsafeBufferPointer(start: out, count: Int(len)))
    }

    /// Letters, digits, '-', '.', and a leading "*." for wildcards: what a DNS SAN may hold.
    static func isPlainDNSName(_ name: String) -> Bool {
        var rest = Substring(name)
        if rest.hasPrefix("*.") { rest = rest.dropFirst(2) }
        return !rest.isEmpty && rest.utf8.count <= 253 && rest.utf8.allSatisfy { b in
            (b >= 0x61 && b <= 0x7a) || (b >= 0x41 && b <= 0x5a) || (b >= 0x30 && b <= 0x39) || b == 0x2d || b == 0x2e
        }
    }
}
