/// The PROXY protocol header (HAProxy's specification, versions 1 and 2): what a load balancer
/// sends ahead of a connection's own bytes so the server learns the client's address. Sans-I/O:
/// `parse` looks at the bytes received so far and says how many belong to the header, so the
/// reader consumes exactly those and leaves the first byte of the TLS ClientHello in the socket.
public struct ProxyHeader: Equatable, Sendable {
    public struct Endpoint: Equatable, Sendable {
        /// 4 bytes (IPv4) or 16 (IPv6), network order.
        public var address: [UInt8]
        public var port: UInt16
        public init(address: [UInt8], port: UInt16) { self.address = address; self.port = port }
    }

    /// A v2 Type-Length-Value extension (spec §2.2.1–2.2.7), kept as received.
    public struct TLV: Equatable, Sendable {
        public var type: UInt8
        public var value: [UInt8]
        public init(type: UInt8, value: [UInt8]) { self.type = type; self.value = value }
    }

    public var version: Int
    /// The client and the address it connected to; nil for a v2 LOCAL command (the balancer's own
    /// health check), v1 UNKNOWN, or a family without addresses: the connection's own addresses stand.
    public var source: Endpoint?
    public var destination: Endpoint?
    public var tlvs: [TLV]
    /// Bytes the header occupies at the start of the stream.
    public var length: Int

    public init(version: Int, source: Endpoint?, destination: Endpoint?, tlvs: [TLV] = [], length: Int) {
        self.version = version; self.source = source; self.destination = destination; self.tlvs = tlvs; self.length = length
    }
}

/// What the bytes received so far say.
public enum ProxyHeaderParse: Equatable, Sendable {
    /// A prefix of a valid header: read more (within the handshake timeout and `ProxyHeader.maxLength`).
    case incomplete
    case header(ProxyHeader)
    /// Not a header, or a malformed one: close the connection.
    case invalid(String)
}

extension ProxyHeader {
    /// v2's 12-byte signature (spec §2.2).
    public static let v2Signature: [UInt8] = [0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D, 0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A]
    static let v1Prefix = Array("PROXY ".utf8)
    /// v1's longest line, CRLF included (spec §2.1).
    public static let v1MaxLength = 107
    /// The longest v2 header accepted: room for every TLV a balancer sends (ALPN, authority, SSL
    /// details, unique id), far from the 64 KiB the length field allows.
    public static let maxLength = 1024

    public enum TLVType {
        public static let alpn: UInt8 = 0x01
        public static let authority: UInt8 = 0x02
        public static let crc32c: UInt8 = 0x03
        public static let noop: UInt8 = 0x04
        public static let uniqueID: UInt8 = 0x05
        public static let ssl: UInt8 = 0x20
        public static let netns: UInt8 = 0x30
    }

    public static func parse(_ bytes: UnsafeRawBufferPointer) -> ProxyHeaderParse {
        guard let first = bytes.first else { return .incomplete }
        if first == v2Signature[0] { return parseV2(bytes) }
        if first == v1Prefix[0] { return parseV1(bytes) }
        return .invalid("no PROXY protocol header (the connection did not start with \"PROXY \" or the v2 signature)")
    }

    public static func parse(_ bytes: [UInt8]) -> ProxyHeaderParse {
        bytes.withUnsafeBytes { parse($0) }
    }

    // MARK: Version 1 (spec §2.1): "PROXY TCP4 192.0.2.1 198.51.100.1 56324 443\r\n"

    static func parseV1(_ bytes: UnsafeRawBufferPointer) -> ProxyHeaderParse {
        let prefix = min(bytes.count, v1Prefix.count)
        guard bytes.prefix(prefix).elementsEqual(v1Prefix.prefix(prefix)) else { return .invalid("no PROXY protocol header") }
        // The CR must leave room for its LF within the 107 bytes.
        let window = bytes.prefix(v1MaxLength - 1)
        guard let cr = window.indices.first(where: { window[$0] == 0x0D || window[$0] == 0x0A }) else {
            return window.count == v1MaxLength - 1 ? .invalid("PROXY v1 line longer than \(v1MaxLength) bytes") : .incomplete
        }
        guard bytes[cr] == 0x0D else { return .invalid("PROXY v1 line ends with LF without CR") }
        guard cr + 1 < bytes.count else { return .incomplete }
        guard bytes[cr + 1] == 0x0A else { return .invalid("PROXY v1 line ends with CR without LF") }
        let line = Array(bytes[0..<cr])
        guard line.allSatisfy({ $0 >= 0x20 && $0 < 0x7F }) else { return .invalid("PROXY v1 line has a control or non-ASCII byte") }
        let fields = line.split(separator: 0x20, omittingEmptySubsequences: false).map { String(decoding: $0, as: UTF8.self) }
        let length = cr + 2
        guard fields.count >= 2 else { return .invalid("PROXY v1 line without a protocol") }
        if fields[1] == "UNKNOWN" { return .header(ProxyHeader(version: 1, source: nil, destination: nil, length: length)) }
        guard fields.count == 6 else { return .invalid("PROXY v1 line needs protocol, two addresses and two ports, single-spaced") }
        let bytesPerAddress: Int
        switch fields[1] {
        case "TCP4": bytesPerAddress = 4
        case "TCP6": bytesPerAddress = 16
        default: return .invalid("PROXY v1 protocol \"\(fields[1])\" is not TCP4, TCP6 or UNKNOWN")
        }
        guard let source = address(fields[2], bytes: bytesPerAddress), let destination = address(fields[3], bytes: bytesPerAddress) else {
            return .invalid("PROXY v1 address is not a \(fields[1] == "TCP4" ? "dotted IPv4" : "IPv6") address")
        }
        guard let sourcePort = port(fields[4]), let destinationPort = port(fields[5]) else {
            return .invalid("PROXY v1 port is not a number from 0 to 65535")
        }
        return .header(ProxyHeader(version: 1, source: Endpoint(address: source, port: sourcePort),
                                   destination: Endpoint(address: destination, port: destinationPort), length: length))
    }

    /// Decimal, no sign, no leading zero (except "0"), at most 65535.
    static func port(_ text: String) -> UInt16? {
        guard !text.isEmpty, text.count <= 5, text.utf8.allSatisfy({ $0 >= 0x30 && $0 <= 0x39 }),
              text == "0" || !text.hasPrefix("0"), let value = Int(text), value <= 65535 else { return nil }
        return UInt16(value)
    }

    // MARK: Version 2 (spec §2.2): signature, version/command, family/transport, length, addresses, TLVs

    static func parseV2(_ bytes: UnsafeRawBufferPointer) -> ProxyHeaderParse {
        let prefix = min(bytes.count, v2Signature.count)
        guard bytes.prefix(prefix).elementsEqual(v2Signature.prefix(prefix)) else { return .invalid("no PROXY protocol header") }
        guard bytes.count >= 16 else { return .incomplete }
        let versionCommand = bytes[12], familyTransport = bytes[13]
        guard versionCommand >> 4 == 2 else { return .invalid("PROXY v2 header with version \(versionCommand >> 4)") }
        let command = versionCommand & 0x0F
        guard command <= 1 else { return .invalid("PROXY v2 command \(command) is neither LOCAL nor PROXY") }
        let length = 16 + (Int(bytes[14]) << 8 | Int(bytes[15]))
        guard length <= maxLength else { return .invalid("PROXY v2 header of \(length) bytes, over the \(maxLength) accepted") }
        guard bytes.count >= length else { return .incomplete }
        let header = UnsafeRawBufferPointer(rebasing: bytes[0..<length])
        // LOCAL (spec §2.2): the balancer speaking for itself (health checks); the block is skipped whole.
        if command == 0 { return .header(ProxyHeader(version: 2, source: nil, destination: nil, length: length)) }
        let family = familyTransport >> 4, transport = familyTransport & 0x0F
        guard transport <= 1 else { return .invalid("PROXY v2 transport \(transport) is not a stream") }
        let addressBytes: Int
        switch family {
        case 0: addressBytes = 0     // UNSPEC: the connection's own addresses stand
        case 1: addressBytes = 12    // INET: two IPv4 addresses and two ports
        case 2: addressBytes = 36    // INET6
        case 3: addressBytes = 216   // UNIX: two 108-byte paths, nothing usable as a client address
        default: return .invalid("PROXY v2 address family \(family) is unknown")
        }
        guard length - 16 >= addressBytes else { return .invalid("PROXY v2 header too short for its address family") }
        var source: Endpoint?, destination: Endpoint?
        if family == 1 || family == 2 {
            let n = family == 1 ? 4 : 16
            let at = 16
            source = Endpoint(address: Array(header[at..<(at + n)]), port: UInt16(header[at + 2 * n]) << 8 | UInt16(header[at + 2 * n + 1]))
            destination = Endpoint(address: Array(header[(at + n)..<(at + 2 * n)]),
                                   port: UInt16(header[at + 2 * n + 2]) << 8 | UInt16(header[at + 2 * n + 3]))
        }
        var tlvs: [TLV] = []
        var i = 16 + addressBytes
        while i < length {
            guard i + 3 <= length else { return .invalid("PROXY v2 TLV header cut short") }
            let type = header[i], size = Int(header[i + 1]) << 8 | Int(header[i + 2])
            guard i + 3 + size <= length else { return .invalid("PROXY v2 TLV of type 0x\(String(type, radix: 16)) overruns the header") }
            let value = Array(header[(i + 3)..<(i + 3 + size)])
            if type == TLVType.crc32c {
                guard size == 4 else { return .invalid("PROXY v2 CRC32C TLV is not 4 bytes") }
                var zeroed = Array(header)
                for k in (i + 3)..<(i + 7) { zeroed[k] = 0 }
                let expected = UInt32(value[0]) << 24 | UInt32(value[1]) << 16 | UInt32(value[2]) << 8 | UInt32(value[3])
                guard CRC32C.checksum(zeroed) == expected else { return .invalid("PROXY v2 CRC32C does not match the header") }
            }
            if type != TLVType.noop { tlvs.append(TLV(type: type, value: value)) }
            i += 3 + size
        }
        return .header(ProxyHeader(version: 2, source: source, destination: destination, tlvs: tlvs, length: length))
    }

    // MARK: Writing (PROXY out, towards origins)

    /// A v1 line for this connection. Both ends in one family: IPv4 ends are written IPv4-mapped
    /// when the other end is IPv6.
    public static func v1(source: Endpoint, destination: Endpoint) -> [UInt8] {
        let (s, d) = sameFamily(source, destination)
        let proto = s.address.count == 4 ? "TCP4" : "TCP6"
        return Array("PROXY \(proto) \(text(s.address)) \(text(d.address)) \(s.port) \(d.port)\r\n".utf8)
    }

    /// For a connection whose ends are not known: v1 UNKNOWN, v2 LOCAL (spec §2.1, §2.2).
    public static let v1Unknown = Array("PROXY UNKNOWN\r\n".utf8)
    public static let v2Local = v2Signature + [0x20, 0x00, 0x00, 0x00]

    /// A v2 PROXY command over TCP, without TLVs.
    public static func v2(source: Endpoint, destination: Endpoint) -> [UInt8] {
        let (s, d) = sameFamily(source, destination)
        let inet = s.address.count == 4
        let blockLength = inet ? 12 : 36
        var out = v2Signature + [0x21, inet ? 0x11 : 0x21, UInt8(blockLength >> 8), UInt8(blockLength & 0xFF)]
        out += s.address + d.address
        out += [UInt8(s.port >> 8), UInt8(s.port & 0xFF), UInt8(d.port >> 8), UInt8(d.port & 0xFF)]
        return out
    }

    static func sameFamily(_ a: Endpoint, _ b: Endpoint) -> (Endpoint, Endpoint) {
        guard a.address.count != b.address.count else { return (a, b) }
        func mapped(_ e: Endpoint) -> Endpoint {
            e.address.count == 16 ? e : Endpoint(address: [UInt8](repeating: 0, count: 10) + [0xFF, 0xFF] + e.address, port: e.port)
        }
        return (mapped(a), mapped(b))
    }

    // MARK: Addresses as text

    /// Dotted-quad IPv4 (no leading zeros) or RFC 4291 IPv6 text, as `bytes` long; nil when invalid.
    static func address(_ text: String, bytes: Int) -> [UInt8]? {
        bytes == 4 ? ipv4(text) : ipv6(text)
    }

    static func ipv4(_ text: String) -> [UInt8]? {
        let parts = text.split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count == 4 else { return nil }
        var out: [UInt8] = []
        for p in parts {
            guard !p.isEmpty, p.count <= 3, p.utf8.allSatisfy({ $0 >= 0x30 && $0 <= 0x39 }), p == "0" || !p.hasPrefix("0"),
                  let v = Int(p), v <= 255 else { return nil }
            out.append(UInt8(v))
        }
        return out
    }

    static func ipv6(_ text: String) -> [UInt8]? {
        guard !text.isEmpty, text.count <= 45 else { return nil }
        var head: [UInt16] = [], tail: [UInt16] = []
        let gaps = text.ranges(of: "::")
        guard gaps.count <= 1 else { return nil }
        let halves = gaps.first.map { [String(text[..<$0.lowerBound]), String(text[$0.upperBound...])] } ?? [text]
        func groups(_ part: String, allowIPv4: Bool) -> [UInt16]? {
            if part.isEmpty { return [] }
            var out: [UInt16] = []
            let items = part.split(separator: ":", omittingEmptySubsequences: false)
            for (k, item) in items.enumerated() {
                if allowIPv4 && k == items.count - 1 && item.contains(".") {
                    guard let v4 = ipv4(String(item)) else { return nil }
                    out += [UInt16(v4[0]) << 8 | UInt16(v4[1]), UInt16(v4[2]) << 8 | UInt16(v4[3])]
                    continue
                }
                // Hex digits only: UInt16(_:radix:) would also take a sign ("+1").
                guard (1...4).contains(item.count), item.utf8.allSatisfy({ ($0 | 0x20) >= 0x61 && ($0 | 0x20) <= 0x66 || $0 >= 0x30 && $0 <= 0x39 }),
                      let v = UInt16(item, radix: 16) else { return nil }
                out.append(v)
            }
            return out
        }
        guard let h = groups(halves[0], allowIPv4: halves.count == 1) else { return nil }
        head = h
        if halves.count == 2 {
            guard let t = groups(halves[1], allowIPv4: true) else { return nil }
            tail = t
            guard head.count + tail.count <= 7 else { return nil }
        } else {
            guard head.count == 8 else { return nil }
        }
        let all = head + [UInt16](repeating: 0, count: 8 - head.count - tail.count) + tail
        return all.flatMap { [UInt8($0 >> 8), UInt8($0 & 0xFF)] }
    }

    static func text(_ address: [UInt8]) -> String {
        if address.count == 4 { return address.map(String.init).joined(separator: ".") }
        // Full form without compression: valid RFC 4291 text, which every parser reads.
        return stride(from: 0, to: 16, by: 2).map { String(UInt16(address[$0]) << 8 | UInt16(address[$0 + 1]), radix: 16) }
            .joined(separator: ":")
    }
}

/// CRC-32C (Castagnoli), as the v2 CRC32C TLV uses (spec §2.2.3).
enum CRC32C {
    static let table: [UInt32] = (0..<256).map { n in
        var c = UInt32(n)
        for _ in 0..<8 { c = c & 1 != 0 ? 0x82F6_3B78 ^ (c >> 1) : c >> 1 }
        return c
    }

    static func checksum(_ bytes: [UInt8]) -> UInt32 {
        var crc: UInt32 = 0xFFFF_FFFF
        for b in bytes { crc = table[Int((crc ^ UInt32(b)) & 0xFF)] ^ (crc >> 8) }
        return crc ^ 0xFFFF_FFFF
    }
}
