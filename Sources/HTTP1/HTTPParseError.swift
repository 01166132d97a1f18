/// Why bytes were rejected, and what a server should answer. A struct rather than an enum so that new
/// reasons never break callers' exhaustive switches.
public struct HTTPParseError: Error, Sendable, Equatable, CustomStringConvertible {
    /// What a server should answer: 400, 413, 431, 501, 505 for requests; 502 for upstream responses.
    public var status: Int
    /// Short human text, e.g. "Content-Length and Transfer-Encoding together".
    public var reason: String

    public init(status: Int, reason: String) {
        self.status = status
        self.reason = reason
    }

    public var description: String { "HTTP \(status): \(reason)" }
}

extension HTTPParseError {
    static func badRequest(_ reason: String) -> Self { .init(status: 400, reason: reason) }
    static func contentTooLarge(_ reason: String) -> Self { .init(status: 413, reason: reason) }
    static func fieldsTooLarge(_ reason: String) -> Self { .init(status: 431, reason: reason) }
    static func notImplemented(_ reason: String) -> Self { .init(status: 501, reason: reason) }
    static func versionNotSupported(_ reason: String) -> Self { .init(status: 505, reason: reason) }

    /// A broken upstream response is the gateway's problem, not the client's (RFC 9110 §15.6.3).
    func asBadGateway() -> Self { .init(status: 502, reason: reason) }
}
