import Yams

/// `upstreams.NAME.health_check`: the active checks of that upstream's servers.
extension SettingsReader {
    static let healthCheckKeys = ["path", "method", "host", "expect", "interval", "timeout", "rise", "fall", "jitter"]

    /// `upstream` names the upstream for messages (`upstream "app"`).
    func healthCheck(_ entry: MappingReader.Entry, upstream: String) throws(ConfigError) -> HealthCheck {
        let name = "health_check of \(upstream)"
        let map = try mapping(entry.value, name: name, keys: Self.healthCheckKeys)
        guard let pathNode = map["path"] else {
            throw source.error("\(name) needs path (the request target to check, like \"/healthz\")", at: entry.keyNode)
        }
        var check = HealthCheck(path: try requestTarget(pathNode))
        if let value = map["method"] { check.method = try source.choice(value, ["GET", "HEAD", "OPTIONS"]) }
        if let value = map["host"] { check.host = try hostField(value) }
        if let value = map["expect"] { check.expect = try statusRange(value) }
        if let value = map["interval"] { check.interval = try source.duration(value) }
        if let value = map["timeout"] { check.timeout = try source.duration(value) }
        if let value = map["rise"] { check.rise = try source.int(value, in: 1...Int.max) }
        if let value = map["fall"] { check.fall = try source.int(value, in: 1...Int.max) }
        // After interval, whatever the file order: a percentage is a share of it.
        if let value = map["jitter"] { check.jitter = try jitter(value, interval: check.interval) }
        return check
    }

    /// Origin-form: it goes into the request line as written, so only URI characters (RFC 3986).
    func requestTarget(_ node: Node) throws(ConfigError) -> String {
        let expected = "a request target starting with \"/\", like \"/healthz\""
        let target = try source.scalar(node, expected: expected)
        guard target.hasPrefix("/"), target.unicodeScalars.allSatisfy(Self.isTargetCharacter) else {
            throw source.error("expected \(expected) (URI characters only: percent-encode spaces and the like), "
                               + "got \(node.foundDescription)", at: node)
        }
        return target
    }

    static func isTargetCharacter(_ c: Unicode.Scalar) -> Bool {
        c.isASCII && (c.properties.isAlphabetic || ("0"..."9").contains(c) || "-._~!$&'()*+,;=:@/?%".unicodeScalars.contains(c))
    }

    /// A host name or address, optionally with a port: it becomes a header line.
    func hostField(_ node: Node) throws(ConfigError) -> String {
        let expected = "a Host header value like \"example.com\" or \"example.com:8080\""
        let host = try source.scalar(node, expected: expected)
        guard !host.isEmpty, host.unicodeScalars.allSatisfy({ c in
            c.isASCII && (c.properties.isAlphabetic || ("0"..."9").contains(c) || "-.:[]".unicodeScalars.contains(c))
        }) else { throw source.error("expected \(expected), got \(node.foundDescription)", at: node) }
        return host
    }

    /// `200` or `200-399`.
    func statusRange(_ node: Node) throws(ConfigError) -> ClosedRange<Int> {
        let expected = "a status like \"200\" or a range like \"200-399\" (100 to 599)"
        let text = try source.scalar(node, expected: expected)
        let parts = text.split(separator: "-", omittingEmptySubsequences: false)
        guard parts.count <= 2, let low = ValueSyntax.digits(parts[0]),
              let high = parts.count == 2 ? ValueSyntax.digits(parts[1]) : low,
              100 <= low, low <= high, high <= 599 else {
            throw source.error("expected \(expected), got \(node.foundDescription)", at: node)
        }
        return Int(low)...Int(high)
    }

    /// A duration, or a percentage of `interval` (`10%`).
    func jitter(_ node: Node, interval: Double) throws(ConfigError) -> Double {
        let expected = "a duration like \"500ms\" or a share of the interval like \"10%\""
        let text = try source.scalar(node, expected: expected)
        if text.hasSuffix("%") {
            guard let percent = ValueSyntax.digits(text.dropLast()), percent <= 100 else {
                throw source.error("expected \(expected) (at most 100%), got \(node.foundDescription)", at: node)
            }
            return interval * Double(percent) / 100
        }
        guard let seconds = ValueSyntax.durationSeconds(text) else {
            throw source.error("expected \(expected), got \(node.foundDescription)", at: node)
        }
        return seconds
    }
}
