import Glibc

/// A failed system call: which call, and the errno it returned.
public struct SystemError: Error, CustomStringConvertible, Sendable {
    public let call: String
    public let errno: Int32
    public init(_ call: String, errno: Int32) { self.call = call; self.errno = errno }
    public var description: String { "\(call) failed: \(String(cString: strerror(errno))) (errno \(errno))" }
}

public enum IOResult<T> {
    case done(T)
    case wouldBlock
}

/// The one gate every syscall goes through: retries EINTR, maps EAGAIN to `.wouldBlock`, and
/// traps on EBADF/EFAULT, which only a bug in this program can cause.
@inline(__always)
public func syscall<T: FixedWidthInteger>(_ name: @autoclosure () -> String, _ body: () -> T) throws(SystemError) -> IOResult<T> {
    while true {
        let result = body()
        if result >= 0 { return .done(result) }
        let err = Glibc.errno
        switch err {
        case EINTR: continue
        case EAGAIN, EINPROGRESS: return .wouldBlock
        case EBADF, EFAULT: fatalError("\(name()) failed with errno \(err): a descriptor or pointer bug")
        default: throw SystemError(name(), errno: err)
        }
    }
}

/// For calls that never block: returns the value or throws.
@inline(__always)
public func syscallValue<T: FixedWidthInteger>(_ name: @autoclosure () -> String, _ body: () -> T) throws(SystemError) -> T {
    switch try syscall(name(), body) {
    case .done(let v): return v
    case .wouldBlock: throw SystemError(name(), errno: EAGAIN)
    }
}

/// Monotonic clock in nanoseconds.
@inline(__always)
public func monotonicNanos() -> UInt64 {
    var ts = timespec()
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return UInt64(ts.tv_sec) &* 1_000_000_000 &+ UInt64(ts.tv_nsec)
}
