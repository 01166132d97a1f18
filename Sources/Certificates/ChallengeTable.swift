import Locking

/// ACME HTTP-01 answers by token (RFC 8555 §8.3), shared by every loop. Empty until an ACME
/// client presents a challenge; the port-80 listener only reads it. In a cluster, a token this
/// node does not hold yet (it joined, or the watch is a moment behind) is looked up elsewhere
/// through `lookUp`, off the loop.
public final class ChallengeTable: Sendable {
    /// Finds `token` elsewhere and calls back with its key authorization (nil: unknown), on any thread.
    public typealias Lookup = @Sendable (_ token: String, _ done: @escaping @Sendable (String?) -> Void) -> Void

    private let tokens = Locked<[String: String]>([:])
    private let missHandler = Locked<Lookup?>(nil)

    public init() {}

    public func keyAuthorization(for token: String) -> String? { tokens.withLock { $0[token] } }
    public func present(token: String, keyAuthorization: String) { tokens.withLock { $0[token] = keyAuthorization } }
    public func cleanUp(token: String) { tokens.withLock { $0[token] = nil } }
    public var count: Int { tokens.withLock { $0.count } }

    /// Where misses are looked up (nil: a miss is a 404).
    public func setLookup(_ lookup: Lookup?) { missHandler.withLock { $0 = lookup } }
    public var lookup: Lookup? { missHandler.withLock { $0 } }
}
