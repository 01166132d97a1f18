import Glibc
import Locking

/// Cancels a blocking `HTTPClient.stream` from another thread: `cancel()` shuts the socket down
/// (shutdown(2)), so the blocked read returns at once. The socket is registered under the lock
/// and unregistered before it is closed, so a cancel never reaches a reused descriptor.
public final class HTTPCancellation: Sendable {
    private struct State {
        var cancelled = false
        var fd: Int32?
    }
    private let state = Locked(State())

    public init() {}

    public var isCancelled: Bool { state.withLock { $0.cancelled } }

    public func cancel() {
        state.withLock { state in
            state.cancelled = true
            if let fd = state.fd { _ = shutdown(fd, Int32(SHUT_RDWR)) }
        }
    }

    /// Registers the stream's socket; false if already cancelled (the caller gives up).
    func attach(_ fd: Int32) -> Bool {
        state.withLock { state in
            guard !state.cancelled else { return false }
            state.fd = fd
            return true
        }
    }

    /// Must be called before the registered socket is closed.
    func detach() { state.withLock { $0.fd = nil } }
}
