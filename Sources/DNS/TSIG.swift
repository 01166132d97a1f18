internal import COpenSSL
import Foundation

/// A TSIG key (RFC 8945): its name, as in named.conf's `key "NAME" { … }`, and the shared secret.
/// Only HMAC-SHA256 is supported (`algorithm hmac-sha256;`), the one RFC 8945 §6 requires.
public struct TSIGKey: Sendable {
    public let name: String
    let secret: [UInt8]
    /// RFC 8945 §6: "hmac-sha256."
    static let algorithm = "hmac-sha256"

    public init(name: String, secret: [UInt8]) throws(DNSError) {
        guard !secret.isEmpty else { throw DNSError(.badKey, "TSIG key \(name): the secret is empty") }
        _ = try DNSName.labels(name)
        self.name = name; self.secret = secret
    }

    /// The secret as named.conf writes it (`secret "…";`, base64, as `tsig-keygen` prints it).
    public init(name: String, base64Secret: String) throws(DNSError) {
        guard let data = Data(base64Encoded: base64Secret.trimmingCharacters(in: .whitespacesAndNewlines)) else {
            throw DNSError(.badKey, "TSIG key \(name): the secret is not base64 (copy it from the key's `secret \"…\";` line)")
        }
        try self.init(name: name, secret: Array(data))
    }
}

/// A request as sent: the signed bytes and the MAC that the response's TSIG must chain from.
public struct SignedRequest: Sendable {
    public let bytes: [UInt8]
    public let id: UInt16
    public let mac: [UInt8]
}

/// TSIG signing and verification (RFC 8945 §4–5) with HMAC-SHA256, through OpenSSL's EVP_MAC.
public enum TSIG {
    /// RFC 8945 §10 recommends 300 s.
    public static let defaultFudge: UInt16 = 300

    /// Appends a TSIG record to `message` (RFC 8945 §4.3.1: the MAC covers the message as it is
    /// without the TSIG, then the TSIG variables).
    public static func sign(_ message: DNSMessage, key: TSIGKey, timeSigned: UInt64 = currentTime(),
                            fudge: UInt16 = defaultFudge) throws(DNSError) -> SignedRequest {
        let unsigned = try message.encode()
        var digestInput = unsigned
        digestInput += try variables(key: key, timeSigned: timeSigned, fudge: fudge, error: .noError, other: [])
        let mac = try hmacSHA256(key: key.secret, digestInput)
        let record = try tsigRecord(key: key, timeSigned: timeSigned, fudge: fudge, mac: mac, originalID: message.header.id)
        var signed = message
        signed.additionals.append(record)
        return SignedRequest(bytes: try signed.encode(), id: message.header.id, mac: mac)
    }

    /// Checks the TSIG of a response to `request` (RFC 8945 §5.3 and §4.3.2: the MAC covers the
    /// request's MAC, the response without its TSIG and with the original ID, then the
    /// variables). Returns the parsed response. A server that rejected our signature answers
    /// unsigned with NOTAUTH: that is reported as `.tsig` with the server's TSIG error.
    public static func verify(response bytes: [UInt8], to request: SignedRequest, key: TSIGKey,
                              now: UInt64 = currentTime()) throws(DNSError) -> DNSMessage {
        var offsets: [Int] = []
        let message = try DNSMessage.decode(bytes, additionalOffsets: &offsets)
        guard let last = message.additionals.last, last.type == .tsig, let start = offsets.last else {
            throw DNSError(.tsig, "the response (\(message.header.rcode)) carries no TSIG; the server did not sign it (does it know key \(key.name)?)",
                           rcode: message.header.rcode)
        }
        let fields = try TSIGFields(last)
        if fields.error != .noError {
            throw DNSError(.tsig, "the server rejected our TSIG with \(fields.error): \(advice(fields.error, key: key))",
                           rcode: message.header.rcode, tsigError: fields.error)
        }
        guard last.name.lowercased() == key.name.lowercased(), fields.algorithm.lowercased() == TSIGKey.algorithm else {
            throw DNSError(.tsig, "the response is signed with key \(last.name) (\(fields.algorithm)), not \(key.name) (\(TSIGKey.algorithm))")
        }
        // The response as it was before the TSIG was added: ARCOUNT one less, the original ID.
        var unsigned = Array(bytes[0..<start])
        unsigned[0] = UInt8(fields.originalID >> 8); unsigned[1] = UInt8(fields.originalID & 0xFF)
        let arcount = (UInt16(unsigned[10]) << 8 | UInt16(unsigned[11])) - 1
        unsigned[10] = UInt8(arcount >> 8); unsigned[11] = UInt8(arcount & 0xFF)
        var w = DNSWriter()
        w.u16(UInt16(request.mac.count))
        var digestInput = w.bytes + request.mac + unsigned
        digestInput += try variables(key: key, timeSigned: fields.timeSigned, fudge: fields.fudge, error: fields.error, other: fields.other)
        let expected = try hmacSHA256(key: key.secret, digestInput)
        guard fields.mac.count == expected.count, CRYPTO_memcmp(fields.mac, expected, expected.count) == 0 else {
            throw DNSError(.tsig, "the response's TSIG MAC does not verify: a different secret for key \(key.name), or the answer was altered",
                           tsigError: .badSig)
        }
        let skew = now > fields.timeSigned ? now - fields.timeSigned : fields.timeSigned - now
        guard skew <= UInt64(fields.fudge) else {
            throw DNSError(.tsig, "the response was signed \(skew) s away from our clock (fudge \(fields.fudge) s); check both clocks",
                           tsigError: .badTime)
        }
        var stripped = message
        stripped.additionals.removeLast()
        return stripped
    }

    public static func currentTime() -> UInt64 { UInt64(max(0, Date().timeIntervalSince1970)) }

    /// What to check for a TSIG error the server sent.
    static func advice(_ error: DNSRCode, key: TSIGKey) -> String {
        switch error {
        case .badSig: "the MAC did not verify: check that the secret matches the server's `key \"\(key.name)\" { secret …; }`"
        case .badKey: "the server does not know key \(key.name) with hmac-sha256: check the key name and algorithm in named.conf"
        case .badTime: "our clock and the server's differ by more than the fudge: check both clocks (NTP)"
        default: "check the key name, secret and algorithm"
        }
    }

    /// RFC 8945 §4.3.3: the TSIG variables, names in canonical (lowercase, uncompressed) form.
    static func variables(key: TSIGKey, timeSigned: UInt64, fudge: UInt16, error: DNSRCode, other: [UInt8]) throws(DNSError) -> [UInt8] {
        var w = DNSWriter()
        try w.name(key.name, lowercased: true)
        w.u16(DNSClass.any.rawValue)
        w.u32(0)
        try w.name(TSIGKey.algorithm, lowercased: true)
        w.u48(timeSigned)
        w.u16(fudge)
        w.u16(error.rawValue)
        w.u16(UInt16(other.count))
        return w.bytes + other
    }

    /// RFC 8945 §4.2: the TSIG RR (class ANY, TTL 0).
    static func tsigRecord(key: TSIGKey, timeSigned: UInt64, fudge: UInt16, mac: [UInt8], originalID: UInt16) throws(DNSError) -> DNSRecord {
        var w = DNSWriter()
        try w.name(TSIGKey.algorithm, lowercased: true)
        w.u48(timeSigned)
        w.u16(fudge)
        w.u16(UInt16(mac.count))
        w.bytes += mac
        w.u16(originalID)
        w.u16(DNSRCode.noError.rawValue)
        w.u16(0)
        return DNSRecord(name: key.name, type: .tsig, dnsClass: .any, ttl: 0, data: .raw(w.bytes))
    }

    static func hmacSHA256(key: [UInt8], _ input: [UInt8]) throws(DNSError) -> [UInt8] {
        ERR_clear_error()
        guard let mac = EVP_MAC_fetch(nil, "HMAC", nil) else { throw DNSError(.crypto, "EVP_MAC_fetch(HMAC) failed") }
        defer { EVP_MAC_free(mac) }
        guard let ctx = EVP_MAC_CTX_new(mac) else { throw DNSError(.crypto, "EVP_MAC_CTX_new failed") }
        defer { EVP_MAC_CTX_free(ctx) }
        var secret = key
        let keyed = secret.withUnsafeMutableBufferPointer { COpenSSL_HMAC_SHA256_set_key(ctx, $0.baseAddress, $0.count) }
        guard keyed == 1, EVP_MAC_init(ctx, nil, 0, nil) == 1, EVP_MAC_update(ctx, input, input.count) == 1 else {
            ERR_clear_error(); throw DNSError(.crypto, "EVP_MAC_init/update (HMAC-SHA256) failed")
        }
        var out = [UInt8](repeating: 0, count: 32)
        var length = 0
        guard EVP_MAC_final(ctx, &out, &length, out.count) == 1, length == 32 else {
            ERR_clear_error(); throw DNSError(.crypto, "EVP_MAC_final (HMAC-SHA256) failed")
        }
        return out
    }
}

/// The RDATA of a TSIG record (RFC 8945 §4.2), parsed.
struct TSIGFields {
    let algorithm: String
    let timeSigned: UInt64
    let fudge: UInt16
    let mac: [UInt8]
    let originalID: UInt16
    let error: DNSRCode
    let other: [UInt8]

    init(_ record: DNSRecord) throws(DNSError) {
        guard case .raw(let rdata) = record.data else { throw DNSError(.malformed, "TSIG record without RDATA") }
        var r = DNSReader(bytes: rdata)
        algorithm = try r.name()
        timeSigned = try r.u48()
        fudge = try r.u16()
        mac = Array(try r.take(Int(try r.u16())))
        originalID = try r.u16()
        error = DNSRCode(rawValue: try r.u16())
        other = Array(try r.take(Int(try r.u16())))
        guard r.remaining == 0 else { throw DNSError(.malformed, "TSIG RDATA has \(r.remaining) bytes left over") }
    }
}
