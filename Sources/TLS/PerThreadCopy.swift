import CSystem
import Locking
import Synchronization

/// A value every handshake reads and a control thread rarely changes (the certificate snapshot,
/// the session-ticket keys). Each thread keeps its own copy with the generation it was taken at
/// and takes the lock only when the generation moved: a reader touches one atomic that is written
/// only on a change, so loops share no written cache line.
public final class PerThreadCopy<Value: Sendable>: Sendable {
    @usableFromInline let value: Locked<Value>
    /// Bumped (releasing) after every change; a read loads it (acquiring), so once it sees the new
    /// generation its read under the lock returns the new value or a newer one.
    @usableFromInline let generation = Atomic<UInt64>(1)
    /// Never reused, unlike an object address: tells this value's per-thread copy from another's.
    @usableFromInline let id = perThreadCopies.wrappingAdd(1, ordering: .relaxed).newValue
    /// The thread slot (CSystem) holding each thread's copy; one per kind of value.
    @usableFromInline let slot: Int32

    public init(_ initial: Value, threadSlot: Int32) {
        value = Locked(initial)
        slot = threadSlot
    }

    /// The value under the lock (control paths).
    public var current: Value { value.withLock { $0 } }

    /// Changes the value; every thread's next `local()` sees the change.
    public func update(_ change: (inout Value) -> Void) {
        value.withLock { change(&$0) }
        generation.wrappingAdd(1, ordering: .releasing)
    }

    /// This thread's copy, refreshed when a change happened since it was taken. A thread reading
    /// several values of the same kind (tests) refreshes on every switch. Inlinable, so that each
    /// handshake reads its copy through code specialised for `Value`, not generic metadata.
    @inlinable
    public func local() -> Value {
        let copy: ThreadCopy<Value>
        if let raw = CSystem_threadSlot(slot) {
            copy = Unmanaged<ThreadCopy<Value>>.fromOpaque(raw).takeUnretainedValue()
        } else {
            copy = ThreadCopy()
            CSystem_setThreadSlot(slot, Unmanaged.passRetained(copy).toOpaque())  // kept for the thread's life
        }
        let now = generation.load(ordering: .acquiring)
        if copy.owner != id || copy.generation != now {
            copy.value = value.withLock { $0 }
            copy.owner = id
            copy.generation = now
        }
        return copy.value!
    }
}

private let perThreadCopies = Atomic<Int>(0)

/// One thread's copy; touched only by that thread.
@usableFromInline
final class ThreadCopy<Value> {
    @usableFromInline var owner = -1
    @usableFromInline var generation: UInt64 = 0
    @usableFromInline var value: Value?
    @usableFromInline init() {}
}
