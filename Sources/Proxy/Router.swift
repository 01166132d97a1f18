import Config

/// First-match routing on host (exact or one-label wildcard) and path prefix.
public struct Router: Sendable {
    public let routes: [Route]
    public init(_ routes: [Route]) { self.routes = routes }

    /// `host` is the request's Host (any case, port allowed); `path` the origin-form target.
    public func match(host: String?, path: String) -> Route? {
        let name = host.map(Self.hostName) ?? ""
        for route in routes where Self.hostMatches(route.host, name) && path.hasPrefix(route.pathPrefix) {
            return route
        }
        return nil
    }

    static func hostMatches(_ pattern: String?, _ name: String) -> Bool {
        guard let pattern else { return true }
        if pattern.hasPrefix("*.") {
            guard let dot = name.firstIndex(of: "."), dot != name.startIndex else { return false }
            return name[name.index(after: dot)...] == pattern.dropFirst(2)
        }
        return pattern == name
    }

    /// "Example.com:8443" → "example.com"; "[::1]:80" → "[::1]".
    public static func hostName(_ host: String) -> String {
        var h = Substring(host)
        if h.hasPrefix("[") {
            if let close = h.firstIndex(of: "]") { h = h[...close] }
        } else if let colon = h.lastIndex(of: ":") {
            h = h[..<colon]
        }
        if h.hasSuffix(".") { h = h.dropLast() }
        return h.lowercased()
    }
}
