import Foundation
import Glibc

/// Runs an operator's program with a deadline (SIGKILL past it); its output goes into the error.
/// Used by DNS-01's exec provider and the certificate events' command.
enum ExternalProgram {
    /// `input` goes to the program's stdin (nothing: /dev/null); `setting` names the key to check
    /// when the program cannot be started.
    static func run(_ command: String, _ arguments: [String], input: [UInt8]? = nil, timeout: Double, what: String,
                    code: ACMEError.Code = .dns, setting: String = "acme.dns.command") throws(ACMEError) {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: command)
        process.arguments = arguments
        let output = Pipe()
        process.standardOutput = output
        process.standardError = output
        if let input { process.standardInput = try Self.inputFile(input, what: what, code: code) } else { process.standardInput = FileHandle.nullDevice }
        let done = DispatchSemaphore(value: 0)
        process.terminationHandler = { _ in done.signal() }
        do { try process.run() } catch {
            throw ACMEError(code, "\(what): cannot run \(command): \(error) (check \(setting) and its execute permission)")
        }
        if done.wait(timeout: .now() + timeout) == .timedOut {
            kill(process.processIdentifier, SIGKILL)
            done.wait()
            throw ACMEError(code, "\(what): \(command) \(arguments[0]) did not finish within \(timeout) s; it was killed")
        }
        let text = String(decoding: output.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        guard process.terminationStatus == 0 else {
            throw ACMEError(code, "\(what): \(command) \(arguments.joined(separator: " ")) exited with status \(process.terminationStatus): "
                            + String(text.suffix(500)).trimmingCharacters(in: .whitespacesAndNewlines))
        }
    }

    /// `input` in an unlinked temporary file (0600), read from its start: unlike a pipe, a program
    /// that exits without reading it raises no SIGPIPE here, and one that reads late blocks nobody.
    private static func inputFile(_ input: [UInt8], what: String, code: ACMEError.Code) throws(ACMEError) -> FileHandle {
        let path = NSTemporaryDirectory() + "/edgeproxy-input-\(UUID().uuidString)"
        guard FileManager.default.createFile(atPath: path, contents: Data(input), attributes: [.posixPermissions: 0o600]),
              let handle = FileHandle(forReadingAtPath: path) else {
            throw ACMEError(code, "\(what): cannot write the program's input to \(path) (is the temporary directory writable?)")
        }
        try? FileManager.default.removeItem(atPath: path)
        return handle
    }
}
