import Foundation
import Glibc
import Synchronization

/// The error log: one line per event on stderr, written with a single write(2) so lines from
/// different loops never interleave.
public enum Log {
    private static let debugEnabled = Atomic<Bool>(false)

    public static func setDebug(_ on: Bool) { debugEnabled.store(on, ordering: .relaxed) }

    public static func info(_ message: @autoclosure () -> String) { emit("info", message()) }
    public static func warning(_ message: @autoclosure () -> String) { emit("warn", message()) }
    public static func error(_ message: @autoclosure () -> String) { emit("error", message()) }
    public static func debug(_ message: @autoclosure () -> String) {
        if debugEnabled.load(ordering: .relaxed) { emit("debug", message()) }
    }

    private static func emit(_ level: String, _ message: String) {
        var line = "\(timestamp()) [\(level)] \(message)\n"
        line.withUTF8 { _ = write(2, $0.baseAddress, $0.count) }
    }

    /// RFC 3339 UTC with milliseconds, e.g. 2026-11-23T10:00:00.123Z.
    public static func timestamp() -> String {
        var ts = timespec()
        clock_gettime(CLOCK_REALTIME, &ts)
        var t = ts.tv_sec
        var parts = tm()
        gmtime_r(&t, &parts)
        let ms = ts.tv_nsec / 1_000_000
        func two(_ v: Int32) -> String { v < 10 ? "0\(v)" : "\(v)" }
        let msText = ms < 10 ? "00\(ms)" : ms < 100 ? "0\(ms)" : "\(ms)"
        return "\(parts.tm_year + 1900)-\(two(parts.tm_mon + 1))-\(two(parts.tm_mday))T\(two(parts.tm_hour)):\(two(parts.tm_min)):\(two(parts.tm_sec)).\(msText)Z"
    }
}
