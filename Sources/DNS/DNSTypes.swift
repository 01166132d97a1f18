/// A resource record type (RFC 1035 §3.2.2, RFC 2136, RFC 8945). Open: any 16-bit value.
public struct DNSType: RawRepresentable, Hashable, Sendable, CustomStringConvertible {
    public let rawValue: UInt16
    public init(rawValue: UInt16) { self.rawValue = rawValue }
    public static let a = DNSType(rawValue: 1)
    public static let ns = DNSType(rawValue: 2)
    public static let cname = DNSType(rawValue: 5)
    public static let soa = DNSType(rawValue: 6)
    public static let txt = DNSType(rawValue: 16)
    public static let aaaa = DNSType(rawValue: 28)
    public static let opt = DNSType(rawValue: 41)
    /// RFC 8945 §4.2.
    public static let tsig = DNSType(rawValue: 250)
    public static let any = DNSType(rawValue: 255)
    public var description: String {
        switch self {
        case .a: "A"; case .ns: "NS"; case .cname: "CNAME"; case .soa: "SOA"; case .txt: "TXT"
        case .aaaa: "AAAA"; case .opt: "OPT"; case .tsig: "TSIG"; case .any: "ANY"
        default: "TYPE\(rawValue)"
        }
    }
}

/// A record class (RFC 1035 §3.2.4; NONE and ANY as RFC 2136 §2.4 uses them in UPDATE).
public struct DNSClass: RawRepresentable, Hashable, Sendable, CustomStringConvertible {
    public let rawValue: UInt16
    public init(rawValue: UInt16) { self.rawValue = rawValue }
    public static let internet = DNSClass(rawValue: 1)
    /// RFC 2136 §2.4.3: "delete an RR from an RRset".
    public static let none = DNSClass(rawValue: 254)
    public static let any = DNSClass(rawValue: 255)
    public var description: String {
        switch self { case .internet: "IN"; case .none: "NONE"; case .any: "ANY"; default: "CLASS\(rawValue)" }
    }
}

/// A response code: the header's 4 bits (RFC 1035 §4.1.1, RFC 2136 §2.2) or a TSIG error
/// field (RFC 8945 §4.3, 16 bits).
public struct DNSRCode: RawRepresentable, Hashable, Sendable, CustomStringConvertible {
    public let rawValue: UInt16
    public init(rawValue: UInt16) { self.rawValue = rawValue }
    public static let noError = DNSRCode(rawValue: 0)
    public static let formErr = DNSRCode(rawValue: 1)
    public static let servFail = DNSRCode(rawValue: 2)
    public static let nxDomain = DNSRCode(rawValue: 3)
    public static let notImp = DNSRCode(rawValue: 4)
    public static let refused = DNSRCode(rawValue: 5)
    public static let yxDomain = DNSRCode(rawValue: 6)
    public static let yxRRSet = DNSRCode(rawValue: 7)
    public static let nxRRSet = DNSRCode(rawValue: 8)
    /// RFC 2136 §2.2 / RFC 8945 §5.3: not authoritative, or the TSIG failed.
    public static let notAuth = DNSRCode(rawValue: 9)
    public static let notZone = DNSRCode(rawValue: 10)
    /// RFC 8945 §5.3: TSIG error field values.
    public static let badSig = DNSRCode(rawValue: 16)
    public static let badKey = DNSRCode(rawValue: 17)
    public static let badTime = DNSRCode(rawValue: 18)
    public static let badTrunc = DNSRCode(rawValue: 22)
    public var description: String {
        switch self {
        case .noError: "NOERROR"; case .formErr: "FORMERR"; case .servFail: "SERVFAIL"; case .nxDomain: "NXDOMAIN"
        case .notImp: "NOTIMP"; case .refused: "REFUSED"; case .yxDomain: "YXDOMAIN"; case .yxRRSet: "YXRRSET"
        case .nxRRSet: "NXRRSET"; case .notAuth: "NOTAUTH"; case .notZone: "NOTZONE"; case .badSig: "BADSIG"
        case .badKey: "BADKEY"; case .badTime: "BADTIME"; case .badTrunc: "BADTRUNC"
        default: "RCODE\(rawValue)"
        }
    }
}

/// A message's operation (RFC 1035 §4.1.1; UPDATE is RFC 2136 §1.3).
public struct DNSOpcode: RawRepresentable, Hashable, Sendable {
    public let rawValue: UInt8
    public init(rawValue: UInt8) { self.rawValue = rawValue & 0x0F }
    public static let query = DNSOpcode(rawValue: 0)
    public static let update = DNSOpcode(rawValue: 5)
}
