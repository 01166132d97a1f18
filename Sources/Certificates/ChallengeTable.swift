import Synchronization

/// ACME HTTP-01 answers by token (RFC 8555 §8.3), shared by every loop. Empty until an ACME
/// client presents a challenge; the port-80 listener only reads it.
public final class ChallengeTable: Sendable {
    private let tokens = Mutex<[String: String]>([:])

    public init() {}

    public func keyAuthorization(for token: String) -> String? { tokens.withLock { $0[token] } }
    public func present(token: String, keyAuthorization: String) { tokens.withLock { $0[token] = keyAuthorization } }
    public func cleanUp(token: String) { tokens.withLock { $0[token] = nil } }
    public var count: Int { tokens.withLock { $0.count } }
}
