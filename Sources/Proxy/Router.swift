import Config

/// First-match routing on host (exact or one-label wildcard) and path prefix.
public struct Router: Sendable {
    public let routes: [Route]
    public init(_ routes: [Route]) { self.routes = routes }

    /// `host` is the request's Host as the parser gives it (lower-cased, port allowed); `path` the
    /// origin-form target. Works on substrings: no allocation per request.
    public func match(host: String?, path: String) -> Route? {
        let name = host.map(Self.stripPort) ?? ""
        for route in routes where Self.hostMatches(route.host, name) && path.hasPrefix(route.pathPrefix) {
            return route
        }
        return nil
    }

    static func stripPort(_ host: String) -> Substring {
        var h = Substring(host)
        if h.hasPrefix("[") {
            if let close = h.firstIndex(of: "]") { h = h[...close] }
        } else if let colon = h.lastIndex(of: ":") {
            h = h[..<colon]
        }
        if h.hasSuffix(".") { h = h.dropLast() }
        return h
    }

    static func hostMatches(_ pattern: String?, _ name: Substring) -> Bool {
        guard let pattern else { return true }
        if pattern.hasPrefix("*.") {
            guard let dot = name.firstIndex(of: "."), dot != name.startIndex else { return false }
            return name[name.index(after: dot)...] == pattern.dropFirst(2)
        }
        return name == pattern
    }

    /// "Example.com:8443" → "example.com"; "[::1]:80" → "[::1]".
    public static func hostName(_ host: String) -> String { stripPort(host).lowercased() }
}
