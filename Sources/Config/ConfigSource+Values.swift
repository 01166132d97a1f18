import Yams

/// Typed readers: each turns one node into one value or throws an error at that node saying what
/// was expected. Scalars are read from their text, not Yams' implicit typing, so `off`, `1.2` and
/// `yes` mean what the key says they mean rather than what YAML 1.1 guesses.
extension ConfigSource {
    func scalar(_ node: Node, expected: String) throws(ConfigError) -> String {
        guard case .scalar(let scalar) = node, !node.isNull else {
            throw error("expected \(expected), got \(node.foundDescription)", at: node)
        }
        return scalar.string
    }

    func string(_ node: Node, expected: String = "a string") throws(ConfigError) -> String {
        try scalar(node, expected: expected)
    }

    func int(_ node: Node, in range: ClosedRange<Int>) throws(ConfigError) -> Int {
        let expected = range.upperBound == Int.max
            ? "an integer of at least \(range.lowerBound)" : "an integer from \(range.lowerBound) to \(range.upperBound)"
        let text = try scalar(node, expected: expected)
        guard let value = ValueSyntax.digits(Substring(text)).flatMap({ Int(exactly: $0) }), range.contains(value) else {
            throw error("expected \(expected), got \(node.foundDescription)", at: node)
        }
        return value
    }

    func bool(_ node: Node) throws(ConfigError) -> Bool {
        // YAML 1.1's spellings too, since people coming from other configs write them.
        switch try scalar(node, expected: "true or false").lowercased() {
        case "true", "yes", "on": return true
        case "false", "no", "off": return false
        default: throw error("expected true or false, got \(node.foundDescription)", at: node)
        }
    }

    func choice(_ node: Node, _ choices: [String]) throws(ConfigError) -> String {
        let expected = choices.count == 1 ? alternatives(choices) : "one of \(alternatives(choices))"
        let text = try scalar(node, expected: expected)
        guard choices.contains(text) else { throw error("expected \(expected), got \(node.foundDescription)", at: node) }
        return text
    }

    /// Seconds. `allowZero` only where 0 has a meaning of its own (it turns something off).
    func duration(_ node: Node, allowZero: Bool = false) throws(ConfigError) -> Double {
        let expected = "a duration like \"30s\", \"500ms\" or \"2m\""
        let text = try scalar(node, expected: expected)
        guard let seconds = ValueSyntax.durationSeconds(text) else {
            throw error("expected \(expected), got \(node.foundDescription)", at: node)
        }
        if seconds == 0 && !allowZero {
            throw error("expected a duration greater than zero, got \(node.foundDescription)", at: node)
        }
        return seconds
    }

    func size(_ node: Node, minimum: Int64 = 0) throws(ConfigError) -> Int64 {
        let expected = "a size like \"512\", \"16k\", \"10m\" or \"1g\""
        let text = try scalar(node, expected: expected)
        guard let bytes = ValueSyntax.sizeBytes(text) else {
            throw error("expected \(expected), got \(node.foundDescription)", at: node)
        }
        guard bytes >= minimum else {
            throw error("expected a size of at least \(minimum) bytes, got \(node.foundDescription)", at: node)
        }
        return bytes
    }

    /// A list, or a single scalar standing for a one-element list (`https: ":443"`). An empty
    /// value is an empty list, so `http:` reads the same as `http: []`.
    func list(_ node: Node, of name: String) throws(ConfigError) -> [Node] {
        if node.isNull { return [] }
        switch node {
        case .sequence(let sequence): return Array(sequence)
        case .scalar: return [node]
        case .mapping: throw error("expected a list for \(name), got a mapping", at: node)
        }
    }

    /// `names`: a host name is allowed before the port (upstream servers, resolved in the background).
    func address(_ node: Node, names: Bool = false) throws(ConfigError) -> SocketAddressSpec {
        let expected = names ? "an address like \"127.0.0.1:9000\", \"[::1]:9000\" or \"app.internal:9000\""
                             : "an address like \":8443\", \"127.0.0.1:8443\" or \"[::1]:8443\""
        let text = try scalar(node, expected: expected)
        switch ValueSyntax.address(text, names: names) {
        case .success(let address):
            return address
        case .failure(.syntax):
            throw error("expected \(expected), got \(node.foundDescription)", at: node)
        case .failure(.port(let port)):
            throw error("port \(port) in \(quoted(text)) is out of range (expected 1 to 65535)", at: node)
        case .failure(.host(let host)):
            throw error("expected an IP address\(names ? ", a host name" : "") or \"localhost\" before the port, got \(quoted(host)) in \(quoted(text))",
                        at: node)
        }
    }

    func port(_ node: Node) throws(ConfigError) -> UInt16 {
        let text = try scalar(node, expected: "a port from 1 to 65535")
        guard let number = ValueSyntax.digits(Substring(text)), (1...65535).contains(number) else {
            throw error("expected a port from 1 to 65535, got \(node.foundDescription)", at: node)
        }
        return UInt16(number)
    }

    /// A DNS name, lower-cased (names compare case-insensitively and the matcher wants one form).
    func hostPattern(_ node: Node, wildcard: Bool) throws(ConfigError) -> String {
        let expected = wildcard ? "a host name like \"example.com\" or \"*.example.com\""
                                : "a host name like \"example.com\""
        let name = try scalar(node, expected: expected).lowercased()
        guard ValueSyntax.isHostPattern(name, wildcard: wildcard) else {
            throw error("expected \(expected), got \(node.foundDescription)", at: node)
        }
        return name
    }

    func path(_ node: Node) throws(ConfigError) -> String {
        resolve(path: try string(node, expected: "a file path"))
    }
}
