/// One key as etcd stores it.
public struct EtcdKeyValue: Sendable, Equatable {
    public var key: [UInt8]
    public var value: [UInt8]
    /// Revision of the put that created the key (0 for a key that does not exist).
    public var createRevision: Int64
    /// Revision of the last change.
    public var modRevision: Int64
    /// Number of puts since creation (reset by a delete).
    public var version: Int64
    /// Lease the key is attached to (0: none).
    public var lease: Int64

    public init(key: [UInt8], value: [UInt8], createRevision: Int64, modRevision: Int64, version: Int64, lease: Int64) {
        self.key = key; self.value = value; self.createRevision = createRevision; self.modRevision = modRevision
        self.version = version; self.lease = lease
    }

    public var keyString: String { String(decoding: key, as: UTF8.self) }
    public var valueString: String { String(decoding: value, as: UTF8.self) }
}

public struct EtcdRangeResult: Sendable {
    /// The store's revision when the range was read (the response header's).
    public var revision: Int64
    public var kvs: [EtcdKeyValue]
    /// More keys matched than `limit` returned.
    public var more: Bool
    public var count: Int64
}

public struct EtcdPutResult: Sendable {
    public var revision: Int64
}

public struct EtcdDeleteResult: Sendable {
    public var revision: Int64
    public var deleted: Int64
}

/// One condition of a transaction: `target(key) relation value`.
public struct EtcdCompare: Sendable {
    public enum Target: Sendable {
        case createRevision(Int64)
        case modRevision(Int64)
        case version(Int64)
        case value([UInt8])
    }
    public enum Relation: String, Sendable {
        case equal = "EQUAL", notEqual = "NOT_EQUAL", greater = "GREATER", less = "LESS"
    }
    public var key: [UInt8]
    public var target: Target
    public var relation: Relation

    public init(key: [UInt8], _ target: Target, _ relation: Relation = .equal) {
        self.key = key; self.target = target; self.relation = relation
    }

    /// True while `key` does not exist (create-if-absent).
    public static func absent(_ key: [UInt8]) -> EtcdCompare { EtcdCompare(key: key, .createRevision(0)) }
    /// True while `key` is unchanged since `revision` (fencing: the holder's view is current).
    public static func unchanged(_ key: [UInt8], since revision: Int64) -> EtcdCompare { EtcdCompare(key: key, .modRevision(revision)) }
}

/// One operation inside a transaction.
public enum EtcdOp: Sendable {
    case put(key: [UInt8], value: [UInt8], lease: Int64 = 0)
    /// Deletes `key`, or `[key, rangeEnd)` when `rangeEnd` is given.
    case delete(key: [UInt8], rangeEnd: [UInt8]? = nil)
    case range(key: [UInt8], rangeEnd: [UInt8]? = nil)
}

public enum EtcdOpResult: Sendable {
    case put(EtcdPutResult)
    case delete(EtcdDeleteResult)
    case range(EtcdRangeResult)
}

public struct EtcdTxnResult: Sendable {
    public var revision: Int64
    /// Every compare held, so the success ops ran (otherwise the failure ops did).
    public var succeeded: Bool
    public var responses: [EtcdOpResult]
}

public struct EtcdLease: Sendable {
    public var id: Int64
    /// Seconds granted (or left, for a keep-alive); 0 means the lease no longer exists.
    public var ttl: Int64
    public var revision: Int64
}

public struct EtcdWatchEvent: Sendable, Equatable {
    public enum Kind: Sendable { case put, delete }
    public var kind: Kind
    /// For a delete: the key and the deletion's `modRevision` only.
    public var kv: EtcdKeyValue
}

/// One watch message: events of one revision, or a progress notification (no events).
public struct EtcdWatchBatch: Sendable {
    /// The header's revision: everything up to it has been delivered.
    public var revision: Int64
    public var events: [EtcdWatchEvent]
}

/// The end of a prefix range: the prefix with its last byte incremented (etcd's `WithPrefix`);
/// [0] (every key) for an empty or all-0xff prefix.
public func etcdPrefixEnd(_ prefix: [UInt8]) -> [UInt8] {
    var end = prefix
    while let last = end.last {
        if last < 0xff { end[end.count - 1] = last + 1; return end }
        end.removeLast()
    }
    return [0]
}
