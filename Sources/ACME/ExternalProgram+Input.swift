import Foundation

extension ExternalProgram {
    /// `input` in an unlinked temporary file (0600), read from its start: unlike a pipe, a program
    /// that exits without reading it raises no SIGPIPE here, and one that reads late blocks nobody.
    static func inputFile(_ input: [UInt8], what: String, code: ACMEError.Code) throws(ACMEError) -> FileHandle {
        let path = NSTemporaryDirectory() + "/edgeproxy-input-\(UUID().uuidString)"
        guard FileManager.default.createFile(atPath: path, contents: Data(input), attributes: [.posixPermissions: 0o600]),
              let handle = FileHandle(forReadingAtPath: path) else {
            throw ACMEError(code, "\(what): cannot write the program's input to \(path) (is the temporary directory writable?)")
        }
        try? FileManager.default.removeItem(atPath: path)
        return handle
    }
}
