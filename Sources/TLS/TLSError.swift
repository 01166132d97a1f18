internal import COpenSSL

/// An OpenSSL failure: the call that failed and the library's error queue, drained.
public struct TLSError: Error, CustomStringConvertible, Sendable {
    public let call: String
    public let reason: String
    /// A blocking socket's send/receive timeout expired (client connections only).
    public let timedOut: Bool

    public init(_ call: String, reason: String? = nil, timedOut: Bool = false) {
        self.call = call
        self.reason = reason ?? TLSError.drainQueue()
        self.timedOut = timedOut
    }

    public var description: String { reason.isEmpty ? "\(call) failed" : "\(call) failed: \(reason)" }

    /// Empties OpenSSL's per-thread error queue into one line (nginx logs the same way).
    static func drainQueue() -> String {
        var parts: [String] = []
        while true {
            let code = ERR_get_error()
            if code == 0 { break }
            var buf = [CChar](repeating: 0, count: 256)
            ERR_error_string_n(code, &buf, buf.count)
            parts.append(buf.withUnsafeBufferPointer { String(cString: $0.baseAddress!) })
        }
        return parts.joined(separator: "; ")
    }
}
