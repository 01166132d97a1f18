/// A DNS message (RFC 1035 §4.1) as plain values: no I/O. `encode()` writes names uncompressed;
/// `DNSMessage(decoding:)` follows compression pointers and checks every length, so it can be
/// fed anything from the network.
///
/// Names are presentation-form strings without the trailing dot ("www.example.test"; the root is
/// ""). A label byte that is a dot, a backslash or not printable ASCII is written `\DDD`
/// (RFC 1035 §5.1), so every wire name survives a round trip.
public struct DNSMessage: Hashable, Sendable {
    public var header: DNSHeader
    /// The question section; for UPDATE, the zone section (RFC 2136 §2.3).
    public var questions: [DNSQuestion]
    /// For UPDATE, the prerequisite section (RFC 2136 §2.4).
    public var answers: [DNSRecord]
    /// For UPDATE, the update section (RFC 2136 §2.5).
    public var authorities: [DNSRecord]
    public var additionals: [DNSRecord]

    public init(header: DNSHeader, questions: [DNSQuestion] = [], answers: [DNSRecord] = [],
                authorities: [DNSRecord] = [], additionals: [DNSRecord] = []) {
        self.header = header; self.questions = questions; self.answers = answers
        self.authorities = authorities; self.additionals = additionals
    }

    /// A standard query for one name and type, recursion not desired.
    public static func query(id: UInt16, name: String, type: DNSType) -> DNSMessage {
        DNSMessage(header: DNSHeader(id: id), questions: [DNSQuestion(name: name, type: type)])
    }
}

/// The 12-byte header (RFC 1035 §4.1.1) less its counts, which come from the sections.
public struct DNSHeader: Hashable, Sendable {
    public var id: UInt16
    public var isResponse: Bool
    public var opcode: DNSOpcode
    public var authoritative: Bool
    /// TC: the answer did not fit (over UDP: ask again over TCP).
    public var truncated: Bool
    public var recursionDesired: Bool
    public var recursionAvailable: Bool
    /// The low 4 bits of the RCODE (the header's field).
    public var rcode: DNSRCode

    public init(id: UInt16, isResponse: Bool = false, opcode: DNSOpcode = .query, authoritative: Bool = false,
                truncated: Bool = false, recursionDesired: Bool = false, recursionAvailable: Bool = false,
                rcode: DNSRCode = .noError) {
        self.id = id; self.isResponse = isResponse; self.opcode = opcode; self.authoritative = authoritative
        self.truncated = truncated; self.recursionDesired = recursionDesired
        self.recursionAvailable = recursionAvailable; self.rcode = rcode
    }

    var flags: UInt16 {
        var f = UInt16(opcode.rawValue) << 11 | (rcode.rawValue & 0x0F)
        if isResponse { f |= 0x8000 }
        if authoritative { f |= 0x0400 }
        if truncated { f |= 0x0200 }
        if recursionDesired { f |= 0x0100 }
        if recursionAvailable { f |= 0x0080 }
        return f
    }

    init(id: UInt16, flags f: UInt16) {
        self.init(id: id, isResponse: f & 0x8000 != 0, opcode: DNSOpcode(rawValue: UInt8(f >> 11 & 0x0F)),
                  authoritative: f & 0x0400 != 0, truncated: f & 0x0200 != 0, recursionDesired: f & 0x0100 != 0,
                  recursionAvailable: f & 0x0080 != 0, rcode: DNSRCode(rawValue: f & 0x0F))
    }
}

/// RFC 1035 §4.1.2.
public struct DNSQuestion: Hashable, Sendable {
    public var name: String
    public var type: DNSType
    public var dnsClass: DNSClass
    public init(name: String, type: DNSType, dnsClass: DNSClass = .internet) {
        self.name = name; self.type = type; self.dnsClass = dnsClass
    }
}

/// A resource record (RFC 1035 §4.1.3).
public struct DNSRecord: Hashable, Sendable {
    public var name: String
    public var type: DNSType
    public var dnsClass: DNSClass
    public var ttl: UInt32
    public var data: DNSRecordData

    public init(name: String, type: DNSType, dnsClass: DNSClass = .internet, ttl: UInt32, data: DNSRecordData) {
        self.name = name; self.type = type; self.dnsClass = dnsClass; self.ttl = ttl; self.data = data
    }

    /// A record of the type its data implies (`.raw` data needs the explicit initialiser).
    public init(name: String, dnsClass: DNSClass = .internet, ttl: UInt32, _ data: DNSRecordData) {
        self.init(name: name, type: data.impliedType ?? .any, dnsClass: dnsClass, ttl: ttl, data: data)
    }
}

/// RDATA, parsed for the types the DNS-01 solver looks at; anything else is kept as bytes.
public enum DNSRecordData: Hashable, Sendable {
    /// Four bytes (RFC 1035 §3.4.1).
    case a([UInt8])
    case ns(String)
    case cname(String)
    case soa(DNSSOA)
    /// The character-strings, each at most 255 bytes (RFC 1035 §3.3.14).
    case txt([[UInt8]])
    /// Uncompressed RDATA of any other type (or empty RDATA, as UPDATE deletions use).
    case raw([UInt8])

    var impliedType: DNSType? {
        switch self {
        case .a: .a; case .ns: .ns; case .cname: .cname; case .soa: .soa; case .txt: .txt; case .raw: nil
        }
    }

    /// A TXT value as one string: the character-strings joined, as RFC 8555 §8.4 reads them.
    public var text: String? {
        if case .txt(let strings) = self { return String(decoding: strings.joined(), as: UTF8.self) }
        return nil
    }

    /// TXT data for `value`, split into character-strings of at most 255 bytes.
    public static func txt(_ value: String) -> DNSRecordData {
        let bytes = Array(value.utf8)
        if bytes.isEmpty { return .txt([[]]) }
        return .txt(stride(from: 0, to: bytes.count, by: 255).map { Array(bytes[$0..<min($0 + 255, bytes.count)]) })
    }
}

/// RFC 1035 §3.3.13.
public struct DNSSOA: Hashable, Sendable {
    public var mname: String
    public var rname: String
    public var serial: UInt32
    public var refresh: UInt32
    public var retry: UInt32
    public var expire: UInt32
    public var minimum: UInt32
    public init(mname: String, rname: String, serial: UInt32, refresh: UInt32, retry: UInt32, expire: UInt32, minimum: UInt32) {
        self.mname = mname; self.rname = rname; self.serial = serial; self.refresh = refresh
        self.retry = retry; self.expire = expire; self.minimum = minimum
    }
}
