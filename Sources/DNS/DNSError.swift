/// Why a DNS exchange, encoding or decoding failed. A struct with a stable `code` (not an enum)
/// so new failures never break callers; `reason` says what happened and what to check.
public struct DNSError: Error, Sendable, CustomStringConvertible {
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        let raw: String
        public var description: String { raw }
        /// Bytes from the wire are not a valid DNS message (truncated, bad lengths, pointer loop).
        public static let malformed = Code(raw: "malformed")
        /// A value cannot be encoded: a label over 63 bytes, a name over 255, a bad address.
        public static let badInput = Code(raw: "badInput")
        /// The TSIG key is unusable (secret not base64, empty).
        public static let badKey = Code(raw: "badKey")
        /// No answer within the timeout.
        public static let timeout = Code(raw: "timeout")
        /// A socket call failed (refused, unreachable, reset).
        public static let io = Code(raw: "io")
        /// The server answered with an RCODE other than NOERROR (see `rcode`).
        public static let rcode = Code(raw: "rcode")
        /// The response's TSIG is missing or does not verify, or the server rejected ours (see `tsigError`).
        public static let tsig = Code(raw: "tsig")
        /// OpenSSL failed.
        public static let crypto = Code(raw: "crypto")
    }

    public let code: Code
    public let reason: String
    /// The response's RCODE, for `.rcode` and server-side `.tsig` failures.
    public let rcode: DNSRCode?
    /// The TSIG error field the server sent (BADSIG, BADKEY, BADTIME), for `.tsig`.
    public let tsigError: DNSRCode?
    public let file: String
    public let line: Int

    public init(_ code: Code, _ reason: String, rcode: DNSRCode? = nil, tsigError: DNSRCode? = nil,
                file: String = #fileID, line: Int = #line) {
        self.code = code; self.reason = reason; self.rcode = rcode; self.tsigError = tsigError
        self.file = file; self.line = line
    }

    public var description: String { "DNS \(code): \(reason)" }
}
