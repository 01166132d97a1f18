internal import COpenSSL

/// ES256 (ECDSA P-256 + SHA-256) as JOSE wants it (RFC 7518 §3.4): the signature is the raw
/// 32-byte r followed by the 32-byte s, not OpenSSL's DER SEQUENCE. Used to sign ACME requests.
extension PrivateKey {
    /// Signs `message` with this P-256 key; returns r || s (64 bytes).
    public func signES256(_ message: [UInt8]) throws(TLSError) -> [UInt8] {
        ERR_clear_error()
        guard let md = EVP_MD_CTX_new() else { throw TLSError("EVP_MD_CTX_new") }
        defer { EVP_MD_CTX_free(md) }
        guard EVP_DigestSignInit(md, nil, EVP_sha256(), nil, pkey) == 1 else { throw TLSError("EVP_DigestSignInit") }
        var len = 0
        guard EVP_DigestSign(md, nil, &len, message, message.count) == 1 else { throw TLSError("EVP_DigestSign(size)") }
        var der = [UInt8](repeating: 0, count: len)
        guard EVP_DigestSign(md, &der, &len, message, message.count) == 1 else { throw TLSError("EVP_DigestSign") }
        return try ECDSASignature.raw(fromDER: Array(der.prefix(len)))
    }

    /// The uncompressed P-256 public point: x and y, 32 bytes each (what a JWK carries, RFC 7518 §6.2.1).
    public func p256PublicCoordinates() throws(TLSError) -> (x: [UInt8], y: [UInt8]) {
        var point = [UInt8](repeating: 0, count: 65)
        var len = 0
        ERR_clear_error()
        // "pub" is OSSL_PKEY_PARAM_PUB_KEY; EC keys encode it uncompressed (0x04 || x || y) by default.
        guard EVP_PKEY_get_octet_string_param(pkey, "pub", &point, point.count, &len) == 1, len == 65, point[0] == 4 else {
            throw TLSError("EVP_PKEY_get_octet_string_param(pub)", reason: "not an uncompressed P-256 public key")
        }
        return (Array(point[1..<33]), Array(point[33..<65]))
    }

    /// The public half as a PEM "PUBLIC KEY" (SubjectPublicKeyInfo), e.g. for `openssl dgst -verify`.
    public func publicKeyPEM() throws(TLSError) -> [UInt8] {
        try writePEM("PEM_write_bio_PUBKEY") { PEM_write_bio_PUBKEY($0, pkey) }
    }

    /// Verifies an ES256 signature (r || s) over `message` with this key's public half.
    public func verifyES256(_ message: [UInt8], signature: [UInt8]) -> Bool {
        defer { ERR_clear_error() }
        guard let der = try? ECDSASignature.der(fromRaw: signature), let md = EVP_MD_CTX_new() else { return false }
        defer { EVP_MD_CTX_free(md) }
        guard EVP_DigestVerifyInit(md, nil, EVP_sha256(), nil, pkey) == 1 else { return false }
        return EVP_DigestVerify(md, der, der.count, message, message.count) == 1
    }
}

/// Conversions between OpenSSL's DER ECDSA-Sig-Value and JOSE's fixed-width r || s.
public enum ECDSASignature {
    public static func raw(fromDER der: [UInt8]) throws(TLSError) -> [UInt8] {
        let sig = der.withUnsafeBufferPointer { buf -> OpaquePointer? in
            var p: UnsafePointer<UInt8>? = buf.baseAddress
            return d2i_ECDSA_SIG(nil, &p, buf.count)
        }
        guard let sig else { throw TLSError("d2i_ECDSA_SIG") }
        defer { ECDSA_SIG_free(sig) }
        var r: OpaquePointer?, s: OpaquePointer?
        ECDSA_SIG_get0(sig, &r, &s)
        var out = [UInt8](repeating: 0, count: 64)
        // Fixed width: a leading zero byte must still be written (a short r is a classic JWS bug).
        guard let r, let s,
              out.withUnsafeMutableBufferPointer({ BN_bn2binpad(r, $0.baseAddress, 32) == 32 && BN_bn2binpad(s, $0.baseAddress! + 32, 32) == 32 })
        else { throw TLSError("BN_bn2binpad") }
        return out
    }

    public static func der(fromRaw raw: [UInt8]) throws(TLSError) -> [UInt8] {
        guard raw.count == 64 else { throw TLSError("ECDSASignature.der", reason: "ES256 signatures are 64 bytes") }
        guard let sig = ECDSA_SIG_new() else { throw TLSError("ECDSA_SIG_new") }
        defer { ECDSA_SIG_free(sig) }
        let r = BN_bin2bn(raw, 32, nil)
        let s = raw.withUnsafeBufferPointer { BN_bin2bn($0.baseAddress! + 32, 32, nil) }
        guard let r, let s, ECDSA_SIG_set0(sig, r, s) == 1 else { throw TLSError("ECDSA_SIG_set0") }
        var out: UnsafeMutablePointer<UInt8>?
        let len = i2d_ECDSA_SIG(sig, &out)
        guard len > 0, let out else { throw TLSError("i2d_ECDSA_SIG") }
        defer { COpenSSL_free(out) }
        return Array(UnsafeBufferPointer(start: out, count: Int(len)))
    }
}

/// One-shot digests for ACME (key authorizations, thumbprints, EAB MACs).
public enum Digest {
    public static func sha256(_ data: [UInt8]) -> [UInt8] {
        var out = [UInt8](repeating: 0, count: 32)
        var len: UInt32 = 0
        let ok = EVP_Digest(data, data.count, &out, &len, EVP_sha256(), nil) == 1
        precondition(ok && len == 32, "EVP_Digest(SHA-256) cannot fail on a working libcrypto")
        return out
    }

    /// HMAC-SHA256 (RFC 2104) via EVP_Q_mac: HMAC() and HMAC_CTX are deprecated in OpenSSL 3.
    public static func hmacSHA256(key: [UInt8], _ data: [UInt8]) throws(TLSError) -> [UInt8] {
        var out = [UInt8](repeating: 0, count: 32)
        var len = 0
        ERR_clear_error()
        guard EVP_Q_mac(nil, "HMAC", nil, "SHA256", nil, key, key.count, data, data.count, &out, out.count, &len) != nil,
              len == 32 else { throw TLSError("EVP_Q_mac(HMAC-SHA256)") }
        return out
    }
}
