import Yams

/// Everything the typed readers need besides the node itself: where errors point, and what
/// relative paths are relative to.
struct ConfigSource {
    let file: String
    let baseDirectory: String

    func error(_ message: String, at mark: Mark?) -> ConfigError {
        // Composed nodes always carry a mark; 0:0 only guards against a Yams change.
        ConfigError(file: file, line: mark?.line ?? 0, column: mark?.column ?? 0, message: message)
    }

    func error(_ message: String, at node: Node) -> ConfigError { error(message, at: node.mark) }

    /// Relative paths in the file mean "next to the configuration", not "wherever the proxy was
    /// started from", so a config directory can be moved as a whole.
    func resolve(path: String) -> String {
        if path.hasPrefix("/") || baseDirectory.isEmpty { return path }
        var relative = Substring(path)
        while relative.hasPrefix("./") { relative = relative.dropFirst(2) }
        if relative.isEmpty || relative == "." { return baseDirectory }
        let base = baseDirectory.hasSuffix("/") ? String(baseDirectory.dropLast()) : baseDirectory
        return base + "/" + relative
    }
}

// MARK: - Describing what was found

extension Node {
    /// YAML's implicit null (`key:`, `~`, `null`): an empty value rather than the text "null".
    var isNull: Bool {
        guard case .scalar(let scalar) = self, scalar.style == .plain || scalar.style == .any else { return false }
        return ["", "~", "null", "Null", "NULL"].contains(scalar.string)
    }

    var scalarText: String? {
        guard case .scalar(let scalar) = self else { return nil }
        return scalar.string
    }

    /// The "got …" half of a message: the text itself for scalars, the shape for collections.
    var foundDescription: String {
        switch self {
        case .scalar(let scalar): return isNull ? "an empty value" : quoted(scalar.string)
        case .mapping: return "a mapping"
        case .sequence: return "a list"
        }
    }
}

func quoted(_ text: String) -> String {
    var out = "\""
    for scalar in text.unicodeScalars {
        switch scalar {
        case "\"": out += "\\\""
        case "\\": out += "\\\\"
        case "\n": out += "\\n"
        case "\t": out += "\\t"
        case "\r": out += "\\r"
        // Other control characters would garble the terminal the message is printed on.
        case _ where scalar.value < 0x20 || scalar.value == 0x7F:
            out += "\\u{\(String(scalar.value, radix: 16))}"
        default: out.unicodeScalars.append(scalar)
        }
    }
    return out + "\""
}

/// `"a"`, `"a" or "b"`, `"a", "b" or "c"`.
func alternatives(_ choices: [String]) -> String {
    let quotedChoices = choices.map(quoted)
    guard quotedChoices.count > 1 else { return quotedChoices.first ?? "" }
    return quotedChoices.dropLast().joined(separator: ", ") + " or " + quotedChoices.last!
}

/// "line 3, column 7", for messages that point back at an earlier place.
func position(_ mark: Mark?) -> String {
    guard let mark else { return "an earlier position" }
    return "line \(mark.line), column \(mark.column)"
}
