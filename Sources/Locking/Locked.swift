import Glibc

/// A value shared between threads behind a pthread mutex. It takes the place of
/// `Synchronization.Mutex`, whose futex ThreadSanitizer cannot see: under `make sanitize` every
/// value a Mutex guarded read as a data race, hiding the real ones. Uncontended, a pthread
/// mutex costs what the futex does; the value lives in this object, next to its lock.
public final class Locked<Value>: @unchecked Sendable {  // `value` is only reached under `mutex`
    private let mutex = UnsafeMutablePointer<pthread_mutex_t>.allocate(capacity: 1)
    private var value: Value

    public init(_ value: sending Value) {
        self.value = value
        pthread_mutex_init(mutex, nil)
    }

    deinit {
        pthread_mutex_destroy(mutex)
        mutex.deallocate()
    }

    /// Runs `body` with the value, the lock held throughout.
    @inline(__always)
    public func withLock<Result, E: Error>(_ body: (inout sending Value) throws(E) -> sending Result) throws(E) -> sending Result {
        pthread_mutex_lock(mutex)
        defer { pthread_mutex_unlock(mutex) }
        return try body(&value)
    }
}
