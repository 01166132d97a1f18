import Yams
import Foundation

/// Upstreams and routes: the two sections that refer to each other.
extension SettingsReader {
    static let upstreamKeys = ["servers", "balance", "keepalive", "keepalive_timeout", "fail_timeout", "proxy_protocol", "resolve_interval", "health_check", "tls"]
    static let routeKeys = ["host", "path", "upstream", "respond", "max_body", "forwarded_headers", "response_headers"]

    /// Returns the names in file order too, so "defined: …" lists them as the operator wrote them.
    func upstreams(_ node: Node?) throws(ConfigError) -> ([String: Upstream], [String]) {
        let map = try mapping(node, name: "upstreams", keys: nil)
        var upstreams: [String: Upstream] = [:]
        var order: [String] = []
        for entry in map.entries {
            guard Self.isUpstreamName(entry.key) else {
                throw source.error("expected an upstream name of letters, digits, \"_\", \"-\" or \".\", got "
                                   + quoted(entry.key), at: entry.keyNode)
            }
            upstreams[entry.key] = try upstream(entry)
            order.append(entry.key)
        }
        return (upstreams, order)
    }

    static func isUpstreamName(_ name: String) -> Bool {
        !name.isEmpty && name.unicodeScalars.allSatisfy { scalar in
            scalar.isASCII && (scalar.properties.isAlphabetic || ("0"..."9").contains(scalar) || "_-.".unicodeScalars.contains(scalar))
        }
    }

    func upstream(_ entry: MappingReader.Entry) throws(ConfigError) -> Upstream {
        let name = "upstream \(quoted(entry.key))"
        let map = try mapping(entry.value, name: name, keys: Self.upstreamKeys)
        guard let serversNode = map["servers"] else {
            throw source.error("\(name) needs servers (a list of addresses like \"127.0.0.1:9000\")", at: entry.keyNode)
        }
        var servers: [SocketAddressSpec] = []
        for item in try source.list(serversNode, of: "servers") {
            let server = try source.address(item, names: true)
            if server.host.isEmpty {
                throw source.error("an upstream server needs a host, like \"127.0.0.1:\(server.port)\"", at: item)
            }
            servers.append(server)
        }
        if servers.isEmpty { throw source.error("\(name) needs at least one server", at: serversNode) }

        var upstream = Upstream(name: entry.key, servers: servers, balance: .roundRobin, keepalive: 32,
                                keepaliveTimeout: 60, failTimeout: 10)
        if let value = map["balance"] {
            upstream.balance = Balance(rawValue: try source.choice(value, ["round_robin", "least_conn"])) ?? .roundRobin
        }
        if let value = map["keepalive"] { upstream.keepalive = try source.int(value, in: 0...Int.max) }
        if let value = map["keepalive_timeout"] { upstream.keepaliveTimeout = try source.duration(value) }
        // 0 is meaningful here: never skip a failed server (passive health checks off).
        if let value = map["fail_timeout"] { upstream.failTimeout = try source.duration(value, allowZero: true) }
        if let value = map["proxy_protocol"] { upstream.proxyProtocol = try source.choice(value, ["v1", "v2"]) == "v1" ? 1 : 2 }
        if let value = map["resolve_interval"] { upstream.resolveInterval = try source.duration(value) }
        if let entry = map.entry("health_check") { upstream.healthCheck = try healthCheck(entry, upstream: name) }
        if let value = map["tls"] { upstream.tls = try upstreamTLS(value, upstream: name) }
        return upstream
    }

    static let fallbackRoute = Route(
        host: nil, pathPrefix: "/",
        action: .respond(FixedResponse(status: 200, body: "edgeproxy: no route configured\n", contentType: "text/plain")),
        maxBodyBytes: nil, forwardedHeaders: true)

    func routes(_ node: Node?, upstreams: [String]) throws(ConfigError) -> [Route] {
        guard let node else { return [Self.fallbackRoute] }
        var routes: [Route] = []
        for item in try source.list(node, of: "routes") {
            routes.append(try route(item, upstreams: upstreams))
        }
        // A proxy that answers nothing would look broken; say plainly that no route is set up.
        return routes.isEmpty ? [Self.fallbackRoute] : routes
    }

    func route(_ node: Node, upstreams: [String]) throws(ConfigError) -> Route {
        let map = try mapping(node, name: "route", keys: Self.routeKeys)
        var host: String?
        // "*" is the explicit spelling of "any host", the same as leaving host out.
        if let value = map["host"], value.scalarText != "*" { host = try source.hostPattern(value, wildcard: true) }
        var pathPrefix = "/"
        if let value = map["path"] { pathPrefix = try path(value) }
        let action = try action(map, node: node, upstreams: upstreams)
        var maxBodyBytes: Int64?
        if let value = map["max_body"] { maxBodyBytes = try source.size(value) }
        var forwardedHeaders = true
        if let value = map["forwarded_headers"] { forwardedHeaders = try source.bool(value) }
        var responseHeaders: [HeaderSetting] = []
        if let value = map["response_headers"] { responseHeaders = try headerSettings(value, name: "response_headers") }
        return Route(host: host, pathPrefix: pathPrefix, action: action, maxBodyBytes: maxBodyBytes,
                     forwardedHeaders: forwardedHeaders, responseHeaders: responseHeaders)
    }

    /// A mapping of header names to values. Names are tokens (RFC 9110 §5.1) and values have no
    /// control characters: each becomes a header line, which a CR or LF would end (and inject others).
    /// Framing and hop-by-hop fields are the proxy's own to write.
    func headerSettings(_ node: Node, name: String) throws(ConfigError) -> [HeaderSetting] {
        let map = try mapping(node, name: name, keys: nil)
        var settings: [HeaderSetting] = []
        for entry in map.entries {
            let key = entry.key
            guard !key.isEmpty, key.utf8.allSatisfy({ $0 > 0x20 && $0 < 0x7F && !"()<>@,;:\\\"/[]?={}".utf8.contains($0) }) else {
                throw source.error("expected a header name like X-Content-Type-Options, got \(quoted(key))", at: entry.keyNode)
            }
            let lower = key.lowercased()
            guard !["content-length", "transfer-encoding", "connection", "keep-alive", "upgrade", "te", "trailer",
                    "proxy-connection", "host"].contains(lower) else {
                throw source.error("\(quoted(key)) is written by the proxy itself and cannot be set here", at: entry.keyNode)
            }
            guard !settings.contains(where: { $0.name.lowercased() == lower }) else {
                throw source.error("header \(quoted(key)) is given twice (names are case-insensitive)", at: entry.keyNode)
            }
            let value = try source.string(entry.value, expected: "a header value")
            guard !value.unicodeScalars.contains(where: { ($0.value < 0x20 && $0 != "\t") || $0.value == 0x7F }) else {
                throw source.error("expected a header value without control characters, got \(entry.value.foundDescription)", at: entry.value)
            }
            settings.append(HeaderSetting(name: key, value: value.trimmingCharacters(in: .whitespaces)))
        }
        return settings
    }

    func path(_ node: Node) throws(ConfigError) -> String {
        let expected = "a path prefix starting with \"/\""
        let path = try source.scalar(node, expected: expected)
        // Query and fragment are not part of what is matched; whitespace cannot be in a request line.
        guard path.hasPrefix("/"), !path.unicodeScalars.contains(where: { $0.properties.isWhitespace || $0 == "?" || $0 == "#" })
        else { throw source.error("expected \(expected) (no spaces, \"?\" or \"#\"), got \(node.foundDescription)", at: node) }
        return path
    }

    func action(_ map: MappingReader, node: Node, upstreams: [String]) throws(ConfigError) -> RouteAction {
        switch (map.entry("upstream"), map.entry("respond")) {
        case (.some, .some):
            // Entries are in file order: point at whichever of the two came second.
            let second = map.entries.last { $0.key == "upstream" || $0.key == "respond" }
            throw source.error("a route takes exactly one of upstream or respond, not both",
                               at: second?.keyNode.mark ?? map.mark)
        case (nil, nil):
            throw source.error("a route needs upstream (proxy to it) or respond (a fixed response)", at: node)
        case (let upstream?, nil):
            let name = try source.string(upstream.value, expected: "an upstream name")
            guard upstreams.contains(name) else {
                let defined = upstreams.isEmpty ? "no upstreams are defined" : "defined: \(upstreams.joined(separator: ", "))"
                throw source.error("route refers to upstream \(quoted(name)), which is not defined (\(defined))",
                                   at: upstream.value)
            }
            return .proxy(upstream: name)
        case (nil, let respond?):
            return .respond(try fixedResponse(respond.value))
        }
    }

    func fixedResponse(_ node: Node) throws(ConfigError) -> FixedResponse {
        let map = try mapping(node, name: "respond", keys: ["status", "body", "content_type"])
        var response = FixedResponse(status: 200, body: "", contentType: "text/plain")
        // A final status: an interim (1xx) one is not a response of its own (RFC 9110 §15.2).
        if let value = map["status"] { response.status = try source.int(value, in: 200...599) }
        if let value = map["body"] { response.body = value.isNull ? "" : try source.string(value) }
        if let value = map["content_type"] {
            let expected = "a media type like \"text/plain\""
            let type = try source.string(value, expected: expected)
            // It becomes a header line: a control character would end it and inject others.
            guard !type.unicodeScalars.contains(where: { $0.value < 0x20 || $0.value == 0x7F }) else {
                throw source.error("expected \(expected) without control characters, got \(value.foundDescription)", at: value)
            }
            response.contentType = type
        }
        return response
    }
}
