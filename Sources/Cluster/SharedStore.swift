import Foundation

/// What the cluster needs of etcd, in its own words: keys under one prefix, revisions, leases,
/// create-if-absent, a fenced put, and a watch. `EtcdStore` is the real one (etcd's JSON gateway);
/// unit tests may use an in-memory one, never instead of the end-to-end tests with real etcd.
///
/// Contract: every call blocks (background threads only) and either completes or throws within
/// the store's request timeout; revisions are etcd's (one counter for the whole store, growing).
public protocol SharedStore: Sendable {
    func get(_ key: String) throws(ClusterError) -> StoredValue?
    /// Every key under `prefix`, and the store's revision they were read at.
    func list(prefix: String) throws(ClusterError) -> (values: [StoredValue], revision: Int64)
    /// Returns the revision of the write.
    @discardableResult func put(_ key: String, _ value: [UInt8], lease: Int64?) throws(ClusterError) -> Int64
    /// Writes only when `key` does not exist; else returns what is there.
    func create(_ key: String, _ value: [UInt8], lease: Int64?) throws(ClusterError) -> (created: Bool, existing: StoredValue?, revision: Int64)
    /// Writes `key` only while `fence` still exists with create revision `fenceRevision` (the
    /// issuance lock this node holds): a node that lost its lock cannot overwrite a newer result.
    /// Returns the write's revision, nil when the fence did not hold.
    func put(_ key: String, _ value: [UInt8], fence: String, fenceRevision: Int64) throws(ClusterError) -> Int64?
    /// Writes `key` only if it is still the version read at `ifModRevision`.
    func put(_ key: String, _ value: [UInt8], ifModRevision: Int64) throws(ClusterError) -> Bool
    /// Writes all of them in one transaction, or none when any one's condition fails.
    func putAll(_ writes: [ConditionalWrite]) throws(ClusterError) -> Bool
    @discardableResult func delete(_ key: String) throws(ClusterError) -> Int64
    @discardableResult func deletePrefix(_ prefix: String) throws(ClusterError) -> Int64
    /// Deletes `key` only if it still is the version created at `ifCreateRevision` (a lock still ours).
    func delete(_ key: String, ifCreateRevision: Int64) throws(ClusterError) -> Bool
    func grantLease(ttl: Int) throws(ClusterError) -> Int64
    /// False when the lease is gone (expired or revoked).
    func keepAlive(lease: Int64) throws(ClusterError) -> Bool
    func revoke(lease: Int64) throws(ClusterError)
    /// Streams every change under `prefix` from `revision` on until `handler` returns false or
    /// `cancel` is called; throws `.compacted` when that revision is gone.
    func watch(prefix: String, from revision: Int64, cancel: WatchCancel, _ handler: ([StoreEvent]) -> Bool) throws(ClusterError)
}

/// A write that happens only while `key` is still at `ifModRevision` (0: does not exist).
public struct ConditionalWrite: Sendable {
    public var key: String
    public var value: [UInt8]
    public var ifModRevision: Int64
    public init(key: String, value: [UInt8], ifModRevision: Int64) { self.key = key; self.value = value; self.ifModRevision = ifModRevision }
}

public struct StoredValue: Sendable, Equatable {
    public var key: String
    public var value: [UInt8]
    public var createRevision: Int64
    public var modRevision: Int64
    public var lease: Int64
    public init(key: String, value: [UInt8], createRevision: Int64, modRevision: Int64, lease: Int64 = 0) {
        self.key = key; self.value = value; self.createRevision = createRevision; self.modRevision = modRevision; self.lease = lease
    }
}

public enum StoreEvent: Sendable, Equatable {
    case put(StoredValue)
    /// The key and the revision of the deletion.
    case delete(key: String, revision: Int64)
    /// Nothing changed; the store has reached this revision (a progress notification).
    case progress(revision: Int64)
}

/// Cancels a running watch from another thread.
public final class WatchCancel: @unchecked Sendable {  // `action` and `cancelled` are guarded by `lock`
    private let lock = NSLock()
    private var action: (() -> Void)?
    private var cancelled = false

    public init() {}

    public var isCancelled: Bool { lock.withLock { cancelled } }

    /// What cancels the running watch (closing its connection); runs at once if already cancelled.
    public func onCancel(_ body: @escaping () -> Void) {
        let run = lock.withLock { () -> Bool in
            if cancelled { return true }
            action = body
            return false
        }
        if run { body() }
    }

    public func cancel() {
        let body = lock.withLock { () -> (() -> Void)? in
            cancelled = true
            defer { action = nil }
            return action
        }
        body?()
    }
}

