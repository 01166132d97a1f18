/// Wire types of RFC 8555 §7.1 (resources) and the request bodies of §7.3–§7.5. Unknown members
/// are ignored when decoding (CAs add fields); optional ones are omitted when encoding.

/// The directory (§7.1.1): the only URL configured; every other URL comes from here.
public struct Directory: Codable, Sendable {
    public var newNonce: String
    public var newAccount: String
    public var newOrder: String
    public var revokeCert: String?
    public var keyChange: String?
    /// ACME Renewal Information (RFC 9773 §4), when the CA offers it.
    public var renewalInfo: String?
    public var meta: Meta?

    public struct Meta: Codable, Sendable {
        public var termsOfService: String?
        public var website: String?
        public var externalAccountRequired: Bool?
        /// Certificate profiles the CA offers, name → description (draft-ietf-acme-profiles §3).
        public var profiles: [String: String]?
    }
}

/// §7.1.6 identifier; only "dns" is used here.
public struct Identifier: Codable, Sendable, Equatable, Hashable {
    public var type: String
    public var value: String
    public init(dns value: String) { type = "dns"; self.value = value }
}

/// §7.1.2 account object.
public struct Account: Codable, Sendable {
    public var status: String
    public var contact: [String]?
    public var orders: String?
}

/// §7.3 newAccount body; with onlyReturnExisting it only looks an account up (§7.3.1).
struct NewAccountRequest: Encodable {
    var contact: [String]?
    var termsOfServiceAgreed: Bool?
    var onlyReturnExisting: Bool?
    var externalAccountBinding: JWSObject?
}

/// §7.1.3 order object.
public struct Order: Codable, Sendable {
    public var status: String
    public var expires: String?
    public var identifiers: [Identifier]
    public var authorizations: [String]
    public var finalize: String
    public var certificate: String?
    public var error: Problem?
    /// The profile the CA issues this order under (draft-ietf-acme-profiles §4).
    public var profile: String?
}

/// §7.4 newOrder body.
struct NewOrderRequest: Encodable {
    var identifiers: [Identifier]
    /// Left out when nil (the synthesized encoder uses encodeIfPresent).
    var replaces: String?
    /// A profile the directory's `meta.profiles` lists (draft-ietf-acme-profiles §4); left out when nil.
    var profile: String?
}

/// §7.4 finalize body: base64url DER CSR.
struct FinalizeRequest: Encodable {
    var csr: String
}

/// §7.1.4 authorization object.
public struct Authorization: Codable, Sendable {
    public var identifier: Identifier
    public var status: String
    public var expires: String?
    public var challenges: [Challenge]
    public var wildcard: Bool?
}

/// §7.1.5 / §8 challenge object.
public struct Challenge: Codable, Sendable {
    public var type: String
    public var url: String
    public var status: String
    public var token: String?
    public var validated: String?
    public var error: Problem?
}

/// Challenge types this client can solve.
public enum ChallengeType {
    public static let http01 = "http-01"        // RFC 8555 §8.3
    public static let tlsALPN01 = "tls-alpn-01" // RFC 8737 §3
    public static let dns01 = "dns-01"          // RFC 8555 §8.4
}

/// Status values (§7.1.6).
enum Status {
    static let pending = "pending", ready = "ready", processing = "processing", valid = "valid", invalid = "invalid"
}

/// §7.6 revokeCert body: the certificate (base64url DER) and an RFC 5280 §5.3.1 reason code.
struct RevocationRequest: Encodable {
    var certificate: String
    var reason: Int
}

/// RFC 5280 §5.3.1 reason codes a subscriber may give (CAs refuse cACompromise, certificateHold,
/// removeFromCRL and aACompromise from subscribers).
public enum RevocationReason: Int, Sendable, CaseIterable {
    case unspecified = 0
    case keyCompromise = 1
    case affiliationChanged = 3
    case superseded = 4
    case cessationOfOperation = 5
    case privilegeWithdrawn = 9

    public var name: String { "\(self)" }

    /// By its RFC 5280 name (`keyCompromise`) or code (`1`).
    public init?(name: String) {
        guard let reason = Self.allCases.first(where: { $0.name.lowercased() == name.lowercased() || String($0.rawValue) == name }) else { return nil }
        self = reason
    }
}
