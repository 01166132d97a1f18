import Glibc

/// An address block ("10.0.0.0/8", "2001:db8::/32", or one address): who may send a PROXY header.
public struct CIDR: Sendable, Equatable, CustomStringConvertible {
    /// 4 or 16 bytes, host bits cleared.
    public let network: [UInt8]
    public let prefix: Int

    /// nil unless `text` is an IPv4 or IPv6 address, optionally with "/" and a prefix length.
    public init?(_ text: String) {
        let parts = text.split(separator: "/", omittingEmptySubsequences: false)
        guard parts.count <= 2, let bytes = Self.address(String(parts[0])) else { return nil }
        let bits = bytes.count * 8
        var prefix = bits
        if parts.count == 2 {
            guard !parts[1].isEmpty, parts[1].count <= 3, parts[1].allSatisfy(\.isASCII), let p = Int(parts[1]), (0...bits).contains(p) else { return nil }
            prefix = p
        }
        self.prefix = prefix
        network = bytes.enumerated().map { i, b in b & Self.mask(byte: i, prefix: prefix) }
    }

    /// Whether `address` (4 or 16 bytes) is inside; an IPv4 block also holds IPv4-mapped IPv6
    /// addresses (a dual-stack listener sees IPv4 clients that way).
    public func contains(_ address: [UInt8]) -> Bool {
        var address = address
        if network.count == 4, address.count == 16, address.prefix(12).elementsEqual([0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xFF, 0xFF]) {
            address = Array(address.suffix(4))
        }
        guard address.count == network.count else { return false }
        return address.indices.allSatisfy { address[$0] & Self.mask(byte: $0, prefix: prefix) == network[$0] }
    }

    public var description: String {
        var buf = [CChar](repeating: 0, count: Int(INET6_ADDRSTRLEN))
        _ = network.withUnsafeBytes { inet_ntop(network.count == 4 ? AF_INET : AF_INET6, $0.baseAddress, &buf, socklen_t(buf.count)) }
        return buf.withUnsafeBufferPointer { String(cString: $0.baseAddress!) } + "/\(prefix)"
    }

    static func mask(byte index: Int, prefix: Int) -> UInt8 {
        let bits = max(0, min(8, prefix - index * 8))
        return bits == 0 ? 0 : UInt8(truncatingIfNeeded: 0xFF << (8 - bits))
    }

    static func address(_ text: String) -> [UInt8]? {
        var v4 = in_addr(), v6 = in6_addr()
        if inet_pton(AF_INET, text, &v4) == 1 { return withUnsafeBytes(of: &v4) { Array($0) } }
        if inet_pton(AF_INET6, text, &v6) == 1 { return withUnsafeBytes(of: &v6) { Array($0) } }
        return nil
    }
}
