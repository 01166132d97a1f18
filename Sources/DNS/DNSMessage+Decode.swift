extension DNSMessage {
    /// Parses a message from the wire. Every length is checked against the bytes there are;
    /// compression pointers must point backwards (so they cannot loop) and a name is at most
    /// 255 bytes. Anything else throws `.malformed`; it never traps.
    public init(decoding bytes: [UInt8]) throws(DNSError) {
        var offsets: [Int] = []
        self = try Self.decode(bytes, additionalOffsets: &offsets)
    }

    /// Also gives where each additional record starts, for TSIG (which digests the bytes before it).
    static func decode(_ bytes: [UInt8], additionalOffsets: inout [Int]) throws(DNSError) -> DNSMessage {
        var r = DNSReader(bytes: bytes)
        let id = try r.u16()
        let header = DNSHeader(id: id, flags: try r.u16())
        let qd = Int(try r.u16()), an = Int(try r.u16()), ns = Int(try r.u16()), ar = Int(try r.u16())
        // Each question takes at least 5 bytes and each record 11: reject impossible counts before
        // reserving anything.
        guard qd * 5 + (an + ns + ar) * 11 <= bytes.count - 12 else {
            throw DNSError(.malformed, "counts (\(qd), \(an), \(ns), \(ar)) do not fit in \(bytes.count) bytes")
        }
        var message = DNSMessage(header: header)
        for _ in 0..<qd {
            let name = try r.name()
            message.questions.append(DNSQuestion(name: name, type: DNSType(rawValue: try r.u16()), dnsClass: DNSClass(rawValue: try r.u16())))
        }
        for _ in 0..<an { message.answers.append(try r.record()) }
        for _ in 0..<ns { message.authorities.append(try r.record()) }
        for _ in 0..<ar {
            additionalOffsets.append(r.offset)
            message.additionals.append(try r.record())
        }
        guard r.offset == bytes.count else { throw DNSError(.malformed, "\(bytes.count - r.offset) bytes after the last record") }
        return message
    }
}

/// Reads big-endian fields and (compressed) names, every access bounds-checked.
struct DNSReader {
    let bytes: [UInt8]
    var offset = 0
    /// Where the section being read ends (RDATA parsing may not run past its RDLENGTH).
    var limit: Int

    init(bytes: [UInt8], offset: Int = 0, limit: Int? = nil) {
        self.bytes = bytes; self.offset = offset; self.limit = limit ?? bytes.count
    }

    var remaining: Int { limit - offset }

    mutating func take(_ n: Int) throws(DNSError) -> ArraySlice<UInt8> {
        guard n >= 0, n <= remaining else { throw DNSError(.malformed, "needs \(n) bytes at offset \(offset), \(max(0, remaining)) left") }
        defer { offset += n }
        return bytes[offset..<(offset + n)]
    }

    mutating func u8() throws(DNSError) -> UInt8 { try take(1).first! }
    mutating func u16() throws(DNSError) -> UInt16 {
        let s = try take(2)
        return UInt16(s[s.startIndex]) << 8 | UInt16(s[s.startIndex + 1])
    }
    mutating func u32() throws(DNSError) -> UInt32 { UInt32(try u16()) << 16 | UInt32(try u16()) }
    mutating func u48() throws(DNSError) -> UInt64 { UInt64(try u16()) << 32 | UInt64(try u32()) }

    /// A name at the cursor, following compression pointers (RFC 1035 §4.1.4). A pointer must
    /// point before the label it replaces, so a chain of them always ends.
    mutating func name() throws(DNSError) -> String {
        var labels: [[UInt8]] = []
        var wireLength = 1
        var position = offset
        var jumped = false
        while true {
            guard position < limit || (jumped && position < bytes.count) else {
                throw DNSError(.malformed, "name runs past the end at offset \(position)")
            }
            let length = Int(bytes[position])
            switch length & 0xC0 {
            case 0x00:
                if length == 0 {
                    if !jumped { offset = position + 1 }
                    return DNSName.text(labels)
                }
                let end = jumped ? bytes.count : limit
                guard position + 1 + length <= end else { throw DNSError(.malformed, "label at offset \(position) runs past the end") }
                wireLength += length + 1
                guard wireLength <= 255 else { throw DNSError(.malformed, "name at offset \(offset) is over 255 bytes") }
                labels.append(Array(bytes[(position + 1)...(position + length)]))
                position += 1 + length
            case 0xC0:
                let end = jumped ? bytes.count : limit
                guard position + 1 < end else { throw DNSError(.malformed, "compression pointer at offset \(position) is cut off") }
                let target = (length & 0x3F) << 8 | Int(bytes[position + 1])
                guard target < position else {
                    throw DNSError(.malformed, "compression pointer at offset \(position) points forward to \(target) (a loop)")
                }
                if !jumped { offset = position + 2 }
                jumped = true
                position = target
            default:
                throw DNSError(.malformed, "label type 0x\(String(length & 0xC0, radix: 16)) at offset \(position) is not supported")
            }
        }
    }

    mutating func record() throws(DNSError) -> DNSRecord {
        let name = try name()
        let type = DNSType(rawValue: try u16())
        let dnsClass = DNSClass(rawValue: try u16())
        let ttl = try u32()
        let length = Int(try u16())
        guard length <= remaining else { throw DNSError(.malformed, "\(name) \(type): RDLENGTH \(length) but \(remaining) bytes left") }
        let end = offset + length
        var rdata = DNSReader(bytes: bytes, offset: offset, limit: end)
        let data: DNSRecordData
        switch type {
        case .a:
            guard length == 4 else { throw DNSError(.malformed, "\(name) A: RDLENGTH \(length), not 4") }
            data = .a(Array(try rdata.take(4)))
        case .ns: data = .ns(try rdata.name())
        case .cname: data = .cname(try rdata.name())
        case .soa:
            let mname = try rdata.name(), rname = try rdata.name()
            data = .soa(DNSSOA(mname: mname, rname: rname, serial: try rdata.u32(), refresh: try rdata.u32(),
                               retry: try rdata.u32(), expire: try rdata.u32(), minimum: try rdata.u32()))
        case .txt:
            var strings: [[UInt8]] = []
            while rdata.remaining > 0 { strings.append(Array(try rdata.take(Int(try rdata.u8())))) }
            data = .txt(strings)
        default:
            data = .raw(Array(try rdata.take(length)))
        }
        guard rdata.offset == end else { throw DNSError(.malformed, "\(name) \(type): \(end - rdata.offset) bytes of RDATA left over") }
        offset = end
        return DNSRecord(name: name, type: type, dnsClass: dnsClass, ttl: ttl, data: data)
    }
}
