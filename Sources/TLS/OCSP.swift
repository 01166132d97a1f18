internal import COpenSSL
import Foundation

extension X509Certificate {
    /// The OCSP responders named in the Authority Information Access extension (RFC 5280
    /// §4.2.2.1, id-ad-ocsp); empty when the issuer publishes none (Let's Encrypt since 2025).
    public var ocspURLs: [String] {
        guard let stack = X509_get1_ocsp(x509) else { return [] }
        defer { X509_email_free(stack) }
        return (0..<OPENSSL_sk_num(stack)).compactMap { i in
            OPENSSL_sk_value(stack, i).map { String(cString: $0.assumingMemoryBound(to: CChar.self)) }
        }
    }
}

/// What one OCSP response says about the certificate it was asked for, once checked.
public enum OCSPVerdict: Equatable, Sendable {
    /// Signed by the issuer (or its delegated responder), status good, inside its validity: staple it.
    /// `nextUpdate` is the response's own, or an hour after thisUpdate when it has none.
    case good(thisUpdate: Date, nextUpdate: Date)
    /// Verified, and the certificate is revoked: never stapled.
    case revoked(at: Date)
    /// Not usable (undecodable, unsuccessful, wrong signer, another certificate, unknown, stale).
    case refused(String)
}

/// The OCSP question for one certificate (RFC 6960 §4.1.1): the CertID (SHA-1 of the issuer's
/// name and key, and the serial) as a DER request, and the check of the answer against the issuer.
public final class OCSPRequest: @unchecked Sendable {  // immutable after init; OpenSSL only reads the handles
    /// The responder from the leaf's AIA extension.
    public let url: String
    /// The DER `OCSPRequest` to POST (`application/ocsp-request`, RFC 6960 Appendix A.1).
    public let der: [UInt8]
    /// Hex SHA-256 of the CertID: names this certificate's responses (cache files, reuse on reload).
    public let certIDHash: String
    /// The serial in hex, for logs.
    public let serialHex: String
    private let certID: OpaquePointer  // OCSP_CERTID, owned
    private let issuer: X509Certificate

    /// A response without nextUpdate is treated as valid for this long after its thisUpdate.
    public static let defaultValidity: TimeInterval = 3600
    /// Clock skew allowed on thisUpdate (nginx and OpenSSL's `ocsp` use 5 minutes).
    public static let clockSkew: Int = 300

    /// nil when `leaf` names no OCSP responder. Throws when the chain has no issuer for the leaf.
    public init?(leaf: X509Certificate, chain: [X509Certificate]) throws(TLSError) {
        guard let url = leaf.ocspURLs.first(where: { $0.hasPrefix("http://") || $0.hasPrefix("https://") }) else { return nil }
        guard chain.count > 1, leaf.isIssued(by: chain[1]) else {
            throw TLSError("OCSP_cert_to_id", reason: "the file carries no issuer certificate after the leaf; append the "
                           + "intermediate so the OCSP response can be requested and checked")
        }
        ERR_clear_error()
        guard let id = OCSP_cert_to_id(EVP_sha1(), leaf.x509, chain[1].x509) else { throw TLSError("OCSP_cert_to_id") }
        certID = id
        issuer = chain[1]
        self.url = url
        serialHex = leaf.serialHex
        // The request takes its own copy of the id (add0 takes ownership).
        guard let request = OCSP_REQUEST_new() else { throw TLSError("OCSP_REQUEST_new") }
        defer { OCSP_REQUEST_free(request) }
        guard let copy = OCSP_CERTID_dup(id) else { throw TLSError("OCSP_CERTID_dup") }
        guard OCSP_request_add0_id(request, copy) != nil else { OCSP_CERTID_free(copy); throw TLSError("OCSP_request_add0_id") }
        der = try Self.encode("i2d_OCSP_REQUEST") { i2d_OCSP_REQUEST(request, $0) }
        let idDER = try Self.encode("i2d_OCSP_CERTID") { i2d_OCSP_CERTID(id, $0) }
        certIDHash = Self.sha256Hex(idDER)
    }

    deinit { OCSP_CERTID_free(certID) }

    /// Checks a responder's answer as nginx's `ssl_stapling_verify` does: a successful response,
    /// signed by the issuer or by a responder the issuer delegated (id-kp-OCSPSigning), about this
    /// certificate, with thisUpdate no later than `now` + 5 min and nextUpdate after `now`.
    public func check(response: [UInt8], now: Date = Date()) -> OCSPVerdict {
        ERR_clear_error()
        defer { ERR_clear_error() }
        let decoded = response.withUnsafeBufferPointer { buf -> OpaquePointer? in
            var p = buf.baseAddress
            return d2i_OCSP_RESPONSE(nil, &p, buf.count)
        }
        guard let parsed = decoded else { return .refused("not a DER OCSP response (\(TLSError.drainQueue()))") }
        defer { OCSP_RESPONSE_free(parsed) }
        let status = OCSP_response_status(parsed)
        guard status == OCSP_RESPONSE_STATUS_SUCCESSFUL else {
            return .refused("the responder answered \(String(cString: OCSP_response_status_str(Int(status)))) (status \(status))")
        }
        guard let basic = OCSP_response_get1_basic(parsed) else { return .refused("no basic response inside (\(TLSError.drainQueue()))") }
        defer { OCSP_BASICRESP_free(basic) }
        if let refusal = verifySigner(basic) { return .refused(refusal) }
        var certStatus: Int32 = -1, reason: Int32 = -1
        var revoked: UnsafeMutablePointer<ASN1_GENERALIZEDTIME>?, thisUpdate: UnsafeMutablePointer<ASN1_GENERALIZEDTIME>?
        var nextUpdate: UnsafeMutablePointer<ASN1_GENERALIZEDTIME>?
        guard OCSP_resp_find_status(basic, certID, &certStatus, &reason, &revoked, &thisUpdate, &nextUpdate) == 1, let thisUpdate else {
            return .refused("the response does not cover this certificate (serial \(serialHex))")
        }
        guard OCSP_check_validity(thisUpdate, nextUpdate, Self.clockSkew, -1) == 1 else {
            return .refused("thisUpdate/nextUpdate out of range (\(TLSError.drainQueue()))")
        }
        let from = X509Certificate.date(thisUpdate)
        let until = nextUpdate.map { X509Certificate.date($0) } ?? from.addingTimeInterval(Self.defaultValidity)
        switch certStatus {
        case V_OCSP_CERTSTATUS_GOOD: break
        case V_OCSP_CERTSTATUS_REVOKED: return .revoked(at: revoked.map { X509Certificate.date($0) } ?? from)
        default: return .refused("the responder does not know this certificate (status unknown)")
        }
        guard from <= now.addingTimeInterval(TimeInterval(Self.clockSkew)) else { return .refused("thisUpdate \(from) is in the future") }
        guard until > now else { return .refused("stale: its nextUpdate \(until) has passed") }
        return .good(thisUpdate: from, nextUpdate: until)
    }

    /// nil when the signature verifies against the issuer (trusted directly: OCSP_TRUSTOTHER), or
    /// a delegated responder certificate chains to it (the issuer as a partial-chain anchor); any
    /// other signer is refused (OCSP_NOEXPLICIT: no root's say-so instead of the issuer's).
    private func verifySigner(_ basic: OpaquePointer) -> String? {
        guard let store = X509_STORE_new() else { return "X509_STORE_new failed" }
        defer { X509_STORE_free(store) }
        guard let certs = COpenSSL_sk_X509_new_null() else { return "sk_X509_new_null failed" }
        defer { COpenSSL_sk_X509_pop_free(certs) }
        X509_up_ref(issuer.x509)
        guard COpenSSL_sk_X509_push(certs, issuer.x509) > 0 else { X509_free(issuer.x509); return "sk_X509_push failed" }
        guard X509_STORE_add_cert(store, issuer.x509) == 1,
              X509_STORE_set_flags(store, UInt(X509_V_FLAG_PARTIAL_CHAIN)) == 1 else { return "X509_STORE_add_cert failed" }
        guard OCSP_basic_verify(basic, certs, store, UInt(OCSP_TRUSTOTHER | OCSP_NOEXPLICIT)) == 1 else {
            return "not signed by the certificate's issuer or a responder it delegated (\(TLSError.drainQueue()))"
        }
        return nil
    }

    private static func encode(_ call: String, _ body: (UnsafeMutablePointer<UnsafeMutablePointer<UInt8>?>) -> Int32) throws(TLSError) -> [UInt8] {
        var out: UnsafeMutablePointer<UInt8>?
        let len = body(&out)
        guard len > 0, let out else { throw TLSError(call) }
        defer { COpenSSL_free(out) }
        return Array(UnsafeBufferPointer(start: out, count: Int(len)))
    }

    private static func sha256Hex(_ bytes: [UInt8]) -> String {
        var digest = [UInt8](repeating: 0, count: 32)
        var len: UInt32 = 0
        _ = EVP_Digest(bytes, bytes.count, &digest, &len, EVP_sha256(), nil)
        return digest.map { String(format: "%02x", $0) }.joined()
    }
}
