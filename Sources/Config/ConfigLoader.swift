#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif
import Yams

/// Reads the YAML configuration into `Settings`, or fails with the first problem found, located
/// as `file:line:column`. Validation is all up front so the running proxy never meets a bad value.
public enum ConfigLoader {
    /// Reads and parses `path`. Relative paths inside the file resolve against its directory.
    /// An unreadable file is reported at line 0, column 0 with the operating system's reason.
    public static func load(path: String) throws(ConfigError) -> Settings {
        let text = try readFile(path)
        return try parse(yaml: text, file: path, baseDirectory: directory(of: path))
    }

    /// - Parameters:
    ///   - file: used only to name the source in errors.
    ///   - baseDirectory: what relative paths in the configuration are relative to.
    public static func parse(yaml: String, file: String, baseDirectory: String) throws(ConfigError) -> Settings {
        let source = ConfigSource(file: file, baseDirectory: baseDirectory)
        let root = try compose(yaml, source: source)
        return try SettingsReader(source: source).settings(root)
    }

    /// An empty document (or one holding only comments) is nil: every default applies.
    static func compose(_ yaml: String, source: ConfigSource) throws(ConfigError) -> Node? {
        try checkNesting(yaml, source: source)
        do {
            return try Yams.compose(yaml: yaml)
        } catch let error as YamlError {
            throw syntaxError(error, yaml: yaml, source: source)
        } catch {
            throw ConfigError(file: source.file, line: 0, column: 0, message: "invalid YAML: \(error)")
        }
    }

    /// Past these, a document is refused before Yams sees it: Yams builds the tree recursively, and
    /// a few thousand nested `{` (the fuzzer's find) overflowed the stack. No configuration comes
    /// near them: flow collections nest a level or two, block structure a few dozen columns.
    static let maxFlowDepth = 64
    static let maxStructureColumn = 200

    /// Flow nesting (`[`, `{` outside quotes and comments) and block nesting (a line's indentation
    /// with its leading `- `, `? ` and `: ` indicators, which nest on one line) are bounded.
    /// Positions count as libyaml's do: Unicode scalars, and every YAML line break (CR, LF, CRLF,
    /// NEL, LS, PS) starts a line.
    static func checkNesting(_ yaml: String, source: ConfigSource) throws(ConfigError) {
        var line = 1, column = 0, flow = 0
        var quote: Unicode.Scalar? = nil, comment = false, lineStart = true, previous: Unicode.Scalar = "\n"
        var scalars = yaml.unicodeScalars[...]
        while let c = scalars.popFirst() {
            if c == "\r" || c == "\n" || c == "\u{85}" || c == "\u{2028}" || c == "\u{2029}" {
                if c == "\r" && scalars.first == "\n" { _ = scalars.popFirst() }
                line += 1; column = 0; comment = false; lineStart = true; previous = "\n"
                continue
            }
            column += 1
            if lineStart {
                // Spaces and the indicators that open a nested block node keep the line's structure going.
                let next = scalars.first
                if c == " " || (c == "-" || c == "?" || c == ":") && (next == " " || next == nil) {
                    previous = c
                    continue
                }
                lineStart = false
                if column > maxStructureColumn {
                    throw ConfigError(file: source.file, line: line, column: column,
                                      message: "nesting too deep: structure past column \(maxStructureColumn) is refused")
                }
            }
            if comment { previous = c; continue }
            if let q = quote {
                if q == "\"" && c == "\\" || q == "'" && c == "'" && scalars.first == "'" {
                    _ = scalars.popFirst(); column += 1   // an escape: \x in "…", '' in '…'
                } else if c == q { quote = nil }
                previous = c
                continue
            }
            switch c {
            case "#" where previous == " " || previous == "\n" || previous == "\t": comment = true
            // A quote opens a scalar only where one may start (not the apostrophe inside a word).
            case "\"", "'": if [" ", "\n", "\t", "[", "{", ",", ":"].contains(previous) { quote = c }
            case "[", "{":
                flow += 1
                if flow > maxFlowDepth {
                    throw ConfigError(file: source.file, line: line, column: column,
                                      message: "nesting too deep: more than \(maxFlowDepth) nested [ or { are refused")
                }
            case "]", "}": flow = max(flow - 1, 0)
            default: break
            }
            previous = c
        }
    }

    /// Yams' errors carry libyaml's mark; keep the position, drop its multi-line snippet.
    static func syntaxError(_ error: YamlError, yaml: String, source: ConfigSource) -> ConfigError {
        switch error {
        case .scanner(let context, let problem, let mark, _),
             .parser(let context, let problem, let mark, _),
             .composer(let context, let problem, let mark, _):
            if problem == "but found another document" {
                // libyaml's context/problem split reads backwards here; say it plainly.
                return source.error("invalid YAML: found a second document; the configuration is a single YAML document",
                                    at: mark)
            }
            var message = "invalid YAML: \(problem)"
            if let context { message += " (\(context.text) at \(position(context.mark)))" }
            return source.error(message, at: mark)
        case .reader(let problem, let offset, _, _):
            // The reader reports a character offset (bad encoding, control characters).
            let (line, column) = offset.map { lineAndColumn(ofCharacterOffset: $0, in: yaml) } ?? (0, 0)
            return ConfigError(file: source.file, line: line, column: column, message: "invalid YAML: \(problem)")
        default:
            return ConfigError(file: source.file, line: 0, column: 0, message: "invalid YAML: \(error)")
        }
    }

    /// Lines as libyaml counts them for its other errors' marks (CRLF, CR, LF, NEL, LS, PS each
    /// end one, YAML 1.1 §4.1.4), so every error in one file is located the same way.
    static func lineAndColumn(ofCharacterOffset characterOffset: Int, in text: String) -> (Int, Int) {
        var line = 1
        var column = 1
        for character in text.prefix(characterOffset) {
            if ["\n", "\r\n", "\r", "\u{85}", "\u{2028}", "\u{2029}"].contains(character) { line += 1; column = 1 } else {
                column += character.unicodeScalars.count
            }
        }
        return (line, column)
    }

    // MARK: - Files

    /// Far more than any configuration: past it the path names something else (`/dev/zero`, a log)
    /// and reading on would only fill memory. A pipe (`--config <(…)`) still reads.
    static let maxFileBytes = 16 << 20

    /// POSIX rather than Foundation so the error carries `strerror`'s wording ("No such file or
    /// directory", "Permission denied", "Is a directory").
    static func readFile(_ path: String) throws(ConfigError) -> String {
        func failure(_ what: String) -> ConfigError {
            ConfigError(file: path, line: 0, column: 0, message: "cannot read configuration file: \(what)")
        }
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw failure(String(cString: strerror(errno))) }
        defer { close(fd) }
        var bytes: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 64 * 1024)
        while true {
            let count = chunk.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            if count == 0 { break }
            if count < 0 {
                if errno == EINTR { continue }
                throw failure(String(cString: strerror(errno)))
            }
            bytes.append(contentsOf: chunk[..<count])
            if bytes.count > maxFileBytes { throw failure("more than \(maxFileBytes >> 20) MiB: not a configuration file") }
        }
        guard let text = String(validating: bytes, as: UTF8.self) else { throw failure("not valid UTF-8") }
        return text
    }

    /// The directory holding `path`, made absolute so resolved paths survive a later `chdir`.
    static func directory(of path: String) -> String {
        let directory: String
        if let slash = path.lastIndex(of: "/") {
            directory = slash == path.startIndex ? "/" : String(path[..<slash])
        } else {
            directory = "."
        }
        if directory.hasPrefix("/") { return directory }
        guard let cwd = currentDirectory() else { return directory }
        return directory == "." ? cwd : ConfigSource(file: "", baseDirectory: cwd).resolve(path: directory)
    }

    private static func currentDirectory() -> String? {
        var buffer = [CChar](repeating: 0, count: Int(PATH_MAX) + 1)
        guard getcwd(&buffer, buffer.count) != nil else { return nil }
        return String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }
}
