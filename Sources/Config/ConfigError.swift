/// A configuration problem, located in the file so an operator can jump straight to it.
///
/// A struct rather than an enum so that new kinds of problems never break callers; the message
/// says what was expected and what was found, which is all a human needs to fix the file.
public struct ConfigError: Error, CustomStringConvertible, Equatable {
    /// The configuration file as the caller named it (not made absolute, so messages read naturally).
    public var file: String
    /// 1-based; 0 when the problem is not at a place in the text (the file could not be read).
    public var line: Int
    /// 1-based, counted in Unicode scalars as libyaml does; 0 together with `line`.
    public var column: Int
    public var message: String

    public init(file: String, line: Int, column: Int, message: String) {
        self.file = file; self.line = line; self.column = column; self.message = message
    }

    /// `FILE:LINE:COLUMN: MESSAGE`, the form compilers use, so editors and terminals link it.
    public var description: String { "\(file):\(line):\(column): \(message)" }
}
