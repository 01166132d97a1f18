import Foundation
import TLS

/// The ACME account key: a P-256 key with its public JWK and RFC 7638 thumbprint precomputed.
public struct AccountKey: Sendable {
    public let key: PrivateKey
    /// Public JWK (RFC 7518 §6.2.1), members in the lexicographic order RFC 7638 §3.2 hashes.
    public let jwk: JWK
    /// base64url(SHA-256(canonical JWK)), the key-authorization suffix (RFC 8555 §8.1).
    public let thumbprint: String

    public init(_ key: PrivateKey) throws {
        guard key.type == .ecdsa else { throw ACMEError.unsupportedKey }
        let (x, y) = try key.p256PublicCoordinates()
        self.key = key
        jwk = JWK(x: Base64URL.encode(x), y: Base64URL.encode(y))
        thumbprint = JWK.thumbprint(requiredMembers: ["crv": jwk.crv, "kty": jwk.kty, "x": jwk.x, "y": jwk.y])
    }

    public static func generate() throws -> AccountKey { try AccountKey(PrivateKey.generateP256()) }

    /// token "." thumbprint (RFC 8555 §8.1).
    public func keyAuthorization(token: String) -> String { token + "." + thumbprint }
}

/// An EC public JWK. Encoded with sorted keys so it is also the RFC 7638 canonical form.
public struct JWK: Codable, Sendable, Equatable {
    public var crv = "P-256"
    public var kty = "EC"
    public var x: String
    public var y: String

    public init(x: String, y: String) { self.x = x; self.y = y }

    /// RFC 7638 §3: base64url(SHA-256) of the required members only, names sorted by code point,
    /// no whitespace. Members are base64url strings or fixed names, so no JSON escaping arises.
    public static func thumbprint(requiredMembers: [String: String]) -> String {
        let body = requiredMembers.sorted { Array($0.key.utf16).lexicographicallyPrecedes(Array($1.key.utf16)) }
            .map { "\"\($0.key)\":\"\($0.value)\"" }.joined(separator: ",")
        return Base64URL.encode(Digest.sha256(Array("{\(body)}".utf8)))
    }
}

/// A flattened JWS JSON serialization (RFC 7515 §7.2.2), the body of every ACME POST (RFC 8555 §6.2).
public struct JWSObject: Codable, Sendable {
    public var protected: String
    public var payload: String
    public var signature: String
}

/// Signing of ACME requests.
public enum JWS {
    /// Protected header (RFC 8555 §6.2): alg, nonce, url, and exactly one of jwk (newAccount, and
    /// revocation by certificate key) or kid (the account URL, everything else).
    struct Header: Encodable {
        var alg: String
        var jwk: JWK?
        var kid: String?
        var nonce: String?
        var url: String
    }

    static let encoder: JSONEncoder = {
        let e = JSONEncoder()
        e.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return e
    }()

    /// ES256-signs `payload` for `url`. A nil payload is POST-as-GET: the empty string (RFC 8555 §6.3).
    public static func sign(payload: [UInt8]?, url: String, nonce: String, key: AccountKey, kid: String?) throws -> JWSObject {
        let header = Header(alg: "ES256", jwk: kid == nil ? key.jwk : nil, kid: kid, nonce: nonce, url: url)
        let protected = Base64URL.encode([UInt8](try encoder.encode(header)))
        let body = payload.map(Base64URL.encode) ?? ""
        let signature = try key.key.signES256(Array("\(protected).\(body)".utf8))
        return JWSObject(protected: protected, payload: body, signature: Base64URL.encode(signature))
    }

    /// External Account Binding (RFC 8555 §7.3.4): the account's public JWK, signed HS256 with the
    /// CA-issued MAC key, with the EAB key id as kid, the newAccount URL, and no nonce.
    public static func externalAccountBinding(accountKey: AccountKey, keyID: String, macKey: [UInt8], url: String) throws -> JWSObject {
        let header = Header(alg: "HS256", jwk: nil, kid: keyID, nonce: nil, url: url)
        let protected = Base64URL.encode([UInt8](try encoder.encode(header)))
        let payload = Base64URL.encode([UInt8](try encoder.encode(accountKey.jwk)))
        let mac = try Digest.hmacSHA256(key: macKey, Array("\(protected).\(payload)".utf8))
        return JWSObject(protected: protected, payload: payload, signature: Base64URL.encode(mac))
    }
}
