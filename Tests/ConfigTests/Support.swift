import Testing
@testable import Config

/// Errors name this file; relative paths resolve against this directory.
let testFile = "test.yaml"
let testBase = "/etc/edgeproxy"

func parse(_ yaml: String) throws(ConfigError) -> Settings {
    try ConfigLoader.parse(yaml: yaml, file: testFile, baseDirectory: testBase)
}

/// Parses `yaml`, expecting exactly this error; a test failure otherwise, at the caller's line.
func expectError(_ yaml: String, line: Int, column: Int, _ message: String,
                 sourceLocation: SourceLocation = #_sourceLocation) {
    do {
        let settings = try parse(yaml)
        Issue.record("expected \(line):\(column): \(message), but it parsed: \(settings)", sourceLocation: sourceLocation)
    } catch {
        #expect(error == ConfigError(file: testFile, line: line, column: column, message: message),
                sourceLocation: sourceLocation)
    }
}
