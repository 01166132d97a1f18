import Yams

/// One YAML mapping, checked once for the two mistakes that silently lose settings: keys this
/// section does not know (typos) and keys given twice (the YAML spec forbids it, but Yams keeps
/// both and a lookup would quietly pick one).
struct MappingReader {
    struct Entry {
        let key: String
        let keyNode: Node
        let value: Node
    }

    let entries: [Entry]
    /// Where the mapping starts; problems about the mapping as a whole (a missing key) point here.
    let mark: Mark?

    /// - Parameters:
    ///   - name: what the mapping is, for messages: `tls`, `route`, `upstream "app"`.
    ///   - location: how unknown keys are placed: defaults to "in NAME".
    ///   - allowedKeys: nil accepts any key (a mapping of names, such as `upstreams`).
    init(_ node: Node, name: String, location: String? = nil, allowedKeys: [String]?,
         source: ConfigSource) throws(ConfigError) {
        self.mark = node.mark
        if node.isNull { entries = []; return }  // `tls:` with everything commented out
        guard case .mapping(let mapping) = node else {
            throw source.error("expected a mapping for \(name), got \(node.foundDescription)", at: node)
        }
        var seen: [String: Mark?] = [:]
        var entries: [Entry] = []
        for (keyNode, value) in mapping {
            guard case .scalar(let scalar) = keyNode, !keyNode.isNull else {
                throw source.error("expected a key name in \(name), got \(keyNode.foundDescription)", at: keyNode)
            }
            let key = scalar.string
            if let allowedKeys, !allowedKeys.contains(key) {
                throw source.error("unknown key \(quoted(key)) \(location ?? "in \(name)") "
                                   + "(expected one of: \(allowedKeys.joined(separator: ", ")))", at: keyNode)
            }
            if let first = seen[key] {
                throw source.error("duplicate key \(quoted(key)) in \(name) (first given at \(position(first)))",
                                   at: keyNode)
            }
            seen[key] = keyNode.mark
            entries.append(Entry(key: key, keyNode: keyNode, value: value))
        }
        self.entries = entries
    }

    /// An absent section: every key takes its default.
    static var empty: MappingReader { MappingReader(entries: [], mark: nil) }

    private init(entries: [Entry], mark: Mark?) {
        self.entries = entries
        self.mark = mark
    }

    subscript(key: String) -> Node? { entries.first { $0.key == key }?.value }

    func entry(_ key: String) -> Entry? { entries.first { $0.key == key } }
}
