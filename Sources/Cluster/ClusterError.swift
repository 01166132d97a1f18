/// Why a cluster operation failed, with a stable code and a reason that says what to do next.
public struct ClusterError: Error, CustomStringConvertible, Sendable {
    public enum Code: String, Sendable {
        /// No endpoint answered (down, refused, timed out): retry later; serving is unaffected.
        case unreachable
        /// etcd answered with an error (code and message in the reason).
        case store
        /// The watch's start revision was compacted away: read the prefix again.
        case compacted
        /// A record did not open or validate (corrupt, wrong seal, moved to another key).
        case badRecord
        /// The sealing keys do not fit (missing key id, wrong size).
        case sealing
        /// A lock this node held is gone (its lease expired): the result is not stored.
        case lockLost
        case cancelled
    }
    public let code: Code
    public let reason: String
    /// For `.compacted`: the oldest revision still kept.
    public var compactRevision: Int64 = 0
    /// A write whose answer was lost: it may have been applied (read back before retrying).
    public var mayHaveBeenApplied = false

    public init(_ code: Code, _ reason: String) { self.code = code; self.reason = reason }

    public var description: String { "\(code.rawValue): \(reason)" }
}

import Synchronization

/// Counters for `GET /metrics`.
public enum ClusterCounters {
    public static let locksAcquired = Atomic<Int>(0)
    /// Locks found gone (lease expired) when the result made under them was to be stored.
    public static let locksLost = Atomic<Int>(0)
}
