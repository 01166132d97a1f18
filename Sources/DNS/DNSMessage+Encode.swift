extension DNSMessage {
    /// The wire form, names uncompressed. Throws `.badInput` for a label over 63 bytes, a name
    /// over 255, a bad escape, A data that is not 4 bytes, a TXT string over 255 or a section
    /// over 65535 entries.
    public func encode() throws(DNSError) -> [UInt8] {
        var w = DNSWriter()
        w.u16(header.id)
        w.u16(header.flags)
        for count in [questions.count, answers.count, authorities.count, additionals.count] {
            guard count <= 0xFFFF else { throw DNSError(.badInput, "a section has \(count) entries; at most 65535 fit") }
            w.u16(UInt16(count))
        }
        for q in questions {
            try w.name(q.name)
            w.u16(q.type.rawValue)
            w.u16(q.dnsClass.rawValue)
        }
        for r in answers + authorities + additionals { try w.record(r) }
        return w.bytes
    }
}

/// Appends big-endian fields and uncompressed names.
struct DNSWriter {
    var bytes: [UInt8] = []

    mutating func u8(_ v: UInt8) { bytes.append(v) }
    mutating func u16(_ v: UInt16) { bytes.append(UInt8(v >> 8)); bytes.append(UInt8(v & 0xFF)) }
    mutating func u32(_ v: UInt32) { u16(UInt16(v >> 16)); u16(UInt16(v & 0xFFFF)) }
    /// 48-bit, as TSIG's time signed (RFC 8945 §4.2).
    mutating func u48(_ v: UInt64) { u16(UInt16(v >> 32 & 0xFFFF)); u32(UInt32(v & 0xFFFF_FFFF)) }

    /// `name` in wire form; `lowercased` gives the canonical form TSIG digests (RFC 8945 §4.3.3).
    mutating func name(_ name: String, lowercased: Bool = false) throws(DNSError) {
        let labels = try DNSName.labels(name)
        var total = 1
        for label in labels {
            total += label.count + 1
            guard total <= 255 else { throw DNSError(.badInput, "\(name): a name is at most 255 bytes on the wire") }
            u8(UInt8(label.count))
            bytes += lowercased ? label.map { (0x41...0x5A).contains($0) ? $0 | 0x20 : $0 } : label
        }
        u8(0)
    }

    mutating func record(_ r: DNSRecord) throws(DNSError) {
        try name(r.name)
        u16(r.type.rawValue)
        u16(r.dnsClass.rawValue)
        u32(r.ttl)
        var rdata = DNSWriter()
        switch r.data {
        case .a(let address):
            guard address.count == 4 else { throw DNSError(.badInput, "A data is 4 bytes, not \(address.count)") }
            rdata.bytes = address
        case .ns(let target), .cname(let target):
            try rdata.name(target)
        case .soa(let soa):
            try rdata.name(soa.mname)
            try rdata.name(soa.rname)
            for v in [soa.serial, soa.refresh, soa.retry, soa.expire, soa.minimum] { rdata.u32(v) }
        case .txt(let strings):
            for s in strings {
                guard s.count <= 255 else { throw DNSError(.badInput, "a TXT character-string is at most 255 bytes, not \(s.count)") }
                rdata.u8(UInt8(s.count))
                rdata.bytes += s
            }
        case .raw(let raw):
            rdata.bytes = raw
        }
        guard rdata.bytes.count <= 0xFFFF else { throw DNSError(.badInput, "RDATA of \(rdata.bytes.count) bytes is over 65535") }
        u16(UInt16(rdata.bytes.count))
        bytes += rdata.bytes
    }
}

/// Presentation-form names: "a.b.c" ⇄ labels, with `\DDD` and `\X` escapes (RFC 1035 §5.1).
enum DNSName {
    static func labels(_ name: String) throws(DNSError) -> [[UInt8]] {
        let text = Array(name.utf8)
        if text == [0x2E] || text.isEmpty { return [] }
        var labels: [[UInt8]] = [], label: [UInt8] = []
        var i = 0
        while i < text.count {
            let c = text[i]
            if c == 0x2E {
                guard !label.isEmpty else { throw DNSError(.badInput, "\(name): empty label") }
                labels.append(label); label = []
                i += 1
            } else if c == 0x5C {
                guard i + 1 < text.count else { throw DNSError(.badInput, "\(name): a backslash ends the name") }
                if i + 3 < text.count, text[(i + 1)...(i + 3)].allSatisfy({ (0x30...0x39).contains($0) }) {
                    let v = text[(i + 1)...(i + 3)].reduce(0) { $0 * 10 + Int($1 - 0x30) }
                    guard v <= 255 else { throw DNSError(.badInput, "\(name): \\\(v) is over 255") }
                    label.append(UInt8(v)); i += 4
                } else {
                    label.append(text[i + 1]); i += 2
                }
            } else {
                label.append(c); i += 1
            }
            guard label.count <= 63 else { throw DNSError(.badInput, "\(name): a label is at most 63 bytes") }
        }
        // An empty last label is the root after an unescaped final dot ("example.test.").
        if label.isEmpty && text.last == 0x2E && !labels.isEmpty { return labels }
        guard !label.isEmpty else { throw DNSError(.badInput, "\(name): empty label") }
        labels.append(label)
        return labels
    }

    static func text(_ labels: [[UInt8]]) -> String {
        labels.map { label in
            var s = ""
            for b in label {
                switch b {
                case 0x2E, 0x5C: s += "\\" + String(UnicodeScalar(b))
                case 0x21...0x7E: s.unicodeScalars.append(UnicodeScalar(b))
                default: s += "\\" + String(repeating: "0", count: b < 10 ? 2 : b < 100 ? 1 : 0) + String(b)
                }
            }
            return s
        }.joined(separator: ".")
    }
}
