// Fuzzes the YAML configuration loader (libyaml through Yams, then our readers and validation).
// Invariants: it answers settings or an error and never traps; the same text gives the same
// answer; an error points into the text (its line and column exist) or at line 0 for problems
// not at a place; a configuration accepted once is accepted again after a comment is appended.
// Input: the YAML text (bytes that are not UTF-8 are refused before parsing, as when reading a file).
import Config
import FuzzSupport

/// Relative paths in the configuration resolve here: a directory that holds nothing, so only
/// absolute paths can name files.
let base = "/nonexistent/edgeproxy-fuzz"

func load(_ text: String) -> Result<Settings, ConfigError> {
    Result { () throws(ConfigError) in try ConfigLoader.parse(yaml: text, file: "fuzz.yaml", baseDirectory: base) }
}

/// The length in Unicode scalars of each line as libyaml counts lines: CRLF, CR, LF, NEL, LS and
/// PS each end one (YAML 1.1 §4.1.4).
func lineLengths(_ text: String) -> [Int] {
    var lengths = [0]
    var afterCR = false
    for scalar in text.unicodeScalars {
        if scalar == "\n" && afterCR { afterCR = false; continue }
        afterCR = scalar == "\r"
        if ["\n", "\r", "\u{85}", "\u{2028}", "\u{2029}"].contains(scalar) { lengths.append(0) } else { lengths[lengths.count - 1] += 1 }
    }
    return lengths
}

func test(_ data: [UInt8]) {
    guard let text = String(validating: data, as: UTF8.self) else { return }
    let first = load(text)
    require(first == load(text), "two loads of the same text differ")
    switch first {
    case .failure(let error):
        require(!error.message.isEmpty, "an error without a message")
        let lines = lineLengths(text)
        require(error.line >= 0 && error.column >= 0 && (error.line == 0) == (error.column == 0), "error at \(error.line):\(error.column)")
        // libyaml may point just past the last line (end of stream).
        require(error.line <= lines.count + 1, "error at line \(error.line) of \(lines.count): \(error)")
        if error.line >= 1 && error.line <= lines.count {
            require(error.column <= lines[error.line - 1] + 2,
                    "error at column \(error.column) of a line of \(lines[error.line - 1]): \(error)")
        }
    case .success(let settings):
        let commented = load(text + (text.hasSuffix("\n") || text.isEmpty ? "" : "\n") + "# end\n")
        require(commented == .success(settings), "a trailing comment changed the settings: \(commented)")
    }
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>?, _ size: Int) -> Int32 {
    test(FuzzInput(data, size).bytes)
    return 0
}

@main enum Main { static func main() { fuzzMain(fuzz) } }
