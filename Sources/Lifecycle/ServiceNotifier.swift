import CSystem
import EventLoop
import Glibc
import Logs

/// systemd's readiness protocol (sd_notify(3)): newline-separated `KEY=VALUE` lines in one datagram
/// to the Unix socket named in `$NOTIFY_SOCKET` (a leading '@' names an abstract socket). Without the
/// variable every call does nothing. Failures are ignored, as sd_notify's callers do: the service
/// manager going away must not stop the proxy.
public final class ServiceNotifier: Sendable {
    private let address: UnixAddress?
    private let fd: Int32

    public init(environment: [String: String]) {
        address = environment["NOTIFY_SOCKET"].flatMap(UnixAddress.init)
        fd = address == nil ? -1 : ((try? syscallValue("socket(AF_UNIX)") {
            socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        }) ?? -1)
    }

    public var enabled: Bool { fd >= 0 }

    /// READY=1, with our pid as MAINPID (a process that took over in a binary upgrade is not the one
    /// systemd started; the unit's NotifyAccess=all lets it say so).
    public func ready(status: String) {
        send(Self.message(["READY=1", "MAINPID=\(getpid())", "STATUS=\(status)"]))
    }

    /// Before a reload; READY=1 follows when it is done.
    public func reloading() {
        send(Self.message(["RELOADING=1", "MONOTONIC_USEC=\(monotonicNanos() / 1000)", "STATUS=reloading"]))
    }

    public func reloaded() { send(Self.message(["READY=1", "STATUS=serving"])) }

    public func stopping() { send(Self.message(["STOPPING=1", "STATUS=draining connections"])) }

    public func watchdog() { send(Self.message(["WATCHDOG=1"])) }

    /// The datagram: assignments one per line (no newlines inside a value, which would start another).
    static func message(_ assignments: [String]) -> [UInt8] {
        Array(assignments.map { $0.replacing("\n", with: " ") }.joined(separator: "\n").utf8) + [UInt8(ascii: "\n")]
    }

    func send(_ datagram: [UInt8]) {
        guard let address, fd >= 0 else { return }
        do {
            _ = try address.withSockaddr { sa, len throws(SystemError) in
                try syscallValue("sendto(\(address.path))") {
                    datagram.withUnsafeBytes { sendto(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL), sa, len) }
                }
            }
        } catch {
            Log.debug("sd_notify: \(error)")
        }
    }
}

/// A Unix socket address: a path, or an abstract name given with a leading '@'.
struct UnixAddress: Sendable {
    let path: String
    /// sun_path's bytes (the abstract name's leading NUL included) and the address length.
    let bytes: [UInt8]

    /// nil when empty or too long for sun_path.
    init?(_ path: String) {
        var raw = Array(path.utf8)
        guard !raw.isEmpty else { return nil }
        if raw[0] == UInt8(ascii: "@") { raw[0] = 0 } else { raw.append(0) }  // abstract: no terminating NUL
        guard raw.count <= MemoryLayout.size(ofValue: sockaddr_un().sun_path) else { return nil }
        self.path = path; bytes = raw
    }

    var length: socklen_t { socklen_t(MemoryLayout<sa_family_t>.size + bytes.count) }

    func withSockaddr<R>(_ body: (UnsafePointer<sockaddr>, socklen_t) throws(SystemError) -> R) throws(SystemError) -> R {
        var sun = sockaddr_un()
        sun.sun_family = sa_family_t(AF_UNIX)
        withUnsafeMutableBytes(of: &sun.sun_path) { $0.copyBytes(from: bytes) }
        return try withUnsafePointer(to: &sun) { p throws(SystemError) in
            try p.withMemoryRebound(to: sockaddr.self, capacity: 1) { sa throws(SystemError) in try body(sa, length) }
        }
    }
}

/// `$WATCHDOG_USEC` and `$WATCHDOG_PID` (sd_watchdog_enabled(3)): how often to send WATCHDOG=1.
public enum WatchdogSchedule {
    /// Half the watchdog timeout, in seconds; nil when there is no watchdog, or it is meant for
    /// another process (WATCHDOG_PID set and not ours), or the value is not a positive number.
    public static func interval(environment: [String: String], pid: Int32) -> Double? {
        if let owner = environment["WATCHDOG_PID"], Int32(owner) != pid { return nil }
        guard let text = environment["WATCHDOG_USEC"], let usec = UInt64(text), usec > 0 else { return nil }
        return Double(usec) / 2 / 1_000_000
    }
}
