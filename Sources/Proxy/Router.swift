import Config

/// First-match routing on host (exact or one-label wildcard) and path prefix.
public struct Router: Sendable {
    public let routes: [Route]
    public init(_ routes: [Route]) { self.routes = routes }

    /// `host` is the request's Host as the parser gives it (lower-cased, port allowed); `path` the
    /// origin-form target. Works on substrings: no allocation per request.
    /// The result is the index in `routes` of the first match: the caller reads the parts it needs in
    /// place, where a copy of the route would retain each of its strings and lists.
    public func matchIndex(host: String?, path: String) -> Int? {
        let name = host.map(Self.stripPort) ?? Substring()
        for i in routes.indices where Self.hostMatches(routes[i].host, name) && path.utf8.starts(with: routes[i].pathPrefix.utf8) {
            return i
        }
        return nil
    }

    /// Byte-wise (hosts are ASCII after parsing): String's Character-level searches cost more
    /// than the rest of routing.
    static func stripPort(_ host: String) -> Substring {
        let bytes = host.utf8
        var end = bytes.endIndex
        if bytes.first == UInt8(ascii: "[") {
            if let close = bytes.firstIndex(of: UInt8(ascii: "]")) { end = bytes.index(after: close) }
        } else if let colon = bytes.lastIndex(of: UInt8(ascii: ":")) {
            end = colon
        }
        if end > bytes.startIndex, bytes[bytes.index(before: end)] == UInt8(ascii: ".") { end = bytes.index(before: end) }
        return host[host.startIndex..<end]
    }

    static func hostMatches(_ pattern: String?, _ name: Substring) -> Bool {
        guard let pattern else { return true }
        if pattern.hasPrefix("*.") {
            guard let dot = name.utf8.firstIndex(of: UInt8(ascii: ".")), dot != name.startIndex else { return false }
            return name.utf8[name.utf8.index(after: dot)...].elementsEqual(pattern.utf8.dropFirst(2))
        }
        return name.utf8.elementsEqual(pattern.utf8)
    }

    /// "Example.com:8443" → "example.com"; "[::1]:80" → "[::1]".
    public static func hostName(_ host: String) -> String { stripPort(host).lowercased() }
}
