/// Why a control-plane HTTP exchange failed. A struct with a stable `code` (not an enum) so new
/// failures never break callers; `reason` says what happened and what to do next.
public struct HTTPClientError: Error, Sendable, CustomStringConvertible {
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        let raw: String
        public var description: String { raw }
        /// The URL is not http(s)://host[:port]/path.
        public static let badURL = Code(raw: "badURL")
        /// The host name did not resolve.
        public static let resolve = Code(raw: "resolve")
        /// No TCP connection (refused, unreachable).
        public static let connect = Code(raw: "connect")
        /// Handshake or certificate verification failed, or the TLS session broke.
        public static let tls = Code(raw: "tls")
        /// Connect, a write or a read took longer than the timeout.
        public static let timeout = Code(raw: "timeout")
        /// A read or write failed (reset, broken pipe).
        public static let io = Code(raw: "io")
        /// The server closed the connection before a complete response.
        public static let closed = Code(raw: "closed")
        /// The response is not valid HTTP/1.1.
        public static let badResponse = Code(raw: "badResponse")
        /// The response body is over the configured maximum.
        public static let tooLarge = Code(raw: "tooLarge")
        /// `HTTPCancellation.cancel()` was called.
        public static let cancelled = Code(raw: "cancelled")
    }

    public let code: Code
    public let reason: String
    /// Some byte of a response arrived before the failure: the request reached the server, so
    /// resending it is not automatically safe.
    public let receivedResponseBytes: Bool
    /// The connection was up when it failed, so the server may have received (and acted on) the
    /// request. False for resolve, connect and handshake failures: resending is then safe.
    public let requestMaybeSent: Bool
    public let file: String
    public let line: Int

    public init(_ code: Code, _ reason: String, receivedResponseBytes: Bool = false, requestMaybeSent: Bool = false,
                file: String = #fileID, line: Int = #line) {
        self.code = code; self.reason = reason; self.receivedResponseBytes = receivedResponseBytes
        self.requestMaybeSent = requestMaybeSent || receivedResponseBytes
        self.file = file; self.line = line
    }

    public var description: String { "HTTP \(code): \(reason)" }

    /// Failed to reach or talk to the server at all (the caller may try another endpoint).
    public var isTransport: Bool {
        [.resolve, .connect, .tls, .timeout, .io, .closed].contains(code)
    }

    func withBytes(_ received: Bool) -> HTTPClientError {
        HTTPClientError(code, reason, receivedResponseBytes: received || receivedResponseBytes, requestMaybeSent: requestMaybeSent,
                        file: file, line: line)
    }

    /// Marks a failure that happened after the request started going out.
    func afterSending() -> HTTPClientError {
        HTTPClientError(code, reason, receivedResponseBytes: receivedResponseBytes, requestMaybeSent: true, file: file, line: line)
    }
}
