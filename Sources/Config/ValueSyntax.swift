#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// The small value languages inside the YAML, as pure functions: nil means "not this syntax" and
/// the caller, which knows the position, words the error.
enum ValueSyntax {
    /// `500ms`, `30s`, `2m`, `1h`, or a bare integer of seconds. Integers only: fractions of a
    /// unit are spelled in the smaller unit, which keeps the grammar (and its errors) trivial.
    static func durationSeconds(_ text: String) -> Double? {
        let units: [(suffix: String, seconds: Double)] = [("ms", 0.001), ("s", 1), ("m", 60), ("h", 3600)]
        // "ms" before "m" and "s": the longest suffix must win.
        for (suffix, scale) in units where text.hasSuffix(suffix) {
            guard let count = digits(text.dropLast(suffix.count)) else { return nil }
            return Double(count) * scale
        }
        return digits(Substring(text)).map(Double.init)
    }

    /// `512`, `16k`, `10m`, `1g` (1024-based, either case).
    static func sizeBytes(_ text: String) -> Int64? {
        let scales: [Character: Int64] = ["k": 1 << 10, "m": 1 << 20, "g": 1 << 30]
        var number = Substring(text)
        var scale: Int64 = 1
        if let last = text.last?.lowercased().first, let unit = scales[last] {
            scale = unit
            number = number.dropLast()
        }
        guard let count = digits(number) else { return nil }
        let (bytes, overflow) = count.multipliedReportingOverflow(by: scale)
        return overflow ? nil : bytes
    }

    /// ASCII digits only: `Int64("+5")` and `Int64(" 5")` quirks do not belong in a config file.
    static func digits(_ text: Substring) -> Int64? {
        guard !text.isEmpty, text.utf8.allSatisfy({ $0 >= 0x30 && $0 <= 0x39 }) else { return nil }
        return Int64(text)  // nil on overflow
    }

    enum AddressProblem: Error, Equatable {
        case syntax
        case port(String)
        case host(String)
    }

    /// `host:port`, `:port`, `*:port`, `[v6]:port`, or a bare port. An empty host means every
    /// address (`*` is normalised to it, so duplicates compare equal).
    /// `names`: a host name (RFC 1123) is allowed too, for servers resolved later (upstreams).
    static func address(_ text: String, names: Bool = false) -> Result<SocketAddressSpec, AddressProblem> {
        var host: Substring
        var port: Substring
        if text.hasPrefix("[") {
            guard let close = text.firstIndex(of: "]") else { return .failure(.syntax) }
            host = text[text.index(after: text.startIndex)..<close]
            let rest = text[text.index(after: close)...]
            guard rest.hasPrefix(":") else { return .failure(.syntax) }
            port = rest.dropFirst()
            guard isIPv6(String(host)) else { return .failure(.host(String(host))) }
        } else if let colon = text.lastIndex(of: ":") {
            host = text[..<colon]
            port = text[text.index(after: colon)...]
            if host.contains(":") { return .failure(.syntax) }  // an IPv6 literal without brackets
            if host == "*" { host = "" }
            guard host.isEmpty || host == "localhost" || isIPv4(String(host))
                    || (names && isHostPattern(host.lowercased(), wildcard: false)) else {
                return .failure(.host(String(host)))
            }
        } else {
            host = ""
            port = Substring(text)
        }
        guard let number = digits(port) else { return .failure(.syntax) }
        guard (1...65535).contains(number) else { return .failure(.port(String(port))) }
        return .success(SocketAddressSpec(host: String(host), port: UInt16(number)))
    }

    static func isIPv4(_ text: String) -> Bool {
        var storage = in_addr()
        return inet_pton(AF_INET, text, &storage) == 1
    }

    static func isIPv6(_ text: String) -> Bool {
        var storage = in6_addr()
        return inet_pton(AF_INET6, text, &storage) == 1
    }

    /// An RFC 1123 host name (letters, digits, inner hyphens; labels of 1–63; 253 in all),
    /// optionally `*.` + such a name when `wildcard` is allowed. Expects lower-case input.
    static func isHostPattern(_ text: String, wildcard: Bool) -> Bool {
        var name = Substring(text)
        if wildcard, name.hasPrefix("*.") { name = name.dropFirst(2) }
        guard !name.isEmpty, name.utf8.count <= 253 else { return false }
        return name.split(separator: ".", omittingEmptySubsequences: false).allSatisfy(isLabel)
    }

    private static func isLabel(_ label: Substring) -> Bool {
        let bytes = Array(label.utf8)
        guard (1...63).contains(bytes.count), bytes.first != UInt8(ascii: "-"), bytes.last != UInt8(ascii: "-")
        else { return false }
        return bytes.allSatisfy { byte in
            (byte >= UInt8(ascii: "a") && byte <= UInt8(ascii: "z")) || (byte >= UInt8(ascii: "0") && byte <= UInt8(ascii: "9"))
                || byte == UInt8(ascii: "-")
        }
    }
}
