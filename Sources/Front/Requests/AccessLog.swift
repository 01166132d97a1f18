import Config
import EventLoop
import Foundation
import Glibc
import Logs
import Metrics

/// Where access-log lines end up: "stdout", "off", or a file opened for appending (and opened again
/// on `reopen`, after logrotate renamed it). Lines are JSON objects or nginx's "combined". Loops never
/// write(2) here: each formats its lines into its own `AccessLogBuffer` and hands whole buffers
/// over; one background thread writes them in order. Lines are never split across writes.
///
/// When the writer falls behind (a slow disk, a stdout pipe nobody reads) by more than
/// `maxQueuedBytes`, further buffers are dropped and their lines counted in
/// `edgeproxy_access_log_dropped_total`. nginx instead blocks the worker in write(2), stalling
/// every connection of that worker on the log; here the log gives way, not the traffic.
public final class AccessLog: @unchecked Sendable {  // queue state is guarded by `condition`
    /// What a loop gathers before handing over, and how long a line may wait on the loop.
    static let bufferBytes = 32 * 1024
    static let flushInterval = 0.1
    /// Formatted lines waiting for the writer, beyond which buffers are dropped.
    public static let maxQueuedBytes = 8 << 20

    /// The writer thread's own, but for the initial value.
    private var fd: Int32?
    /// The file reopened on `reopen`; nil for stdout and off.
    private let path: String?
    let format: AccessLogFormat
    let enabled: Bool
    private let maxQueued: Int
    private let condition = NSCondition()
    private var queue: [[UInt8]] = []
    private var queuedBytes = 0
    private var writing = false
    private var reopenRequested = false

    /// "stdout", "off", or a file path (opened for appending).
    public init(_ target: String, format: AccessLogFormat = .json, maxQueuedBytes: Int = AccessLog.maxQueuedBytes) throws(SystemError) {
        switch target {
        case "off": fd = nil; path = nil
        case "stdout": fd = 1; path = nil
        default: fd = try Self.open(target); path = target
        }
        self.format = format
        enabled = fd != nil
        maxQueued = maxQueuedBytes
        if enabled { startWriter() }
    }

    /// A writer to `fd` (tests: a pipe) with a queue bound of `maxQueuedBytes`.
    init(fd: Int32, maxQueuedBytes: Int, format: AccessLogFormat = .json) {
        self.fd = fd; path = nil; self.format = format; enabled = true; maxQueued = maxQueuedBytes
        startWriter()
    }

    private static func open(_ path: String) throws(SystemError) -> Int32 {
        try syscallValue("open(\(path))") { Glibc.open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0o644) }
    }

    /// Opens the file again by its name (SIGUSR1): lines queued before go to the file they were
    /// meant for, later ones to the new file. The writer thread does it, between two writes.
    public func reopen() {
        guard path != nil else { return }
        condition.lock()
        reopenRequested = true
        condition.signal()
        condition.unlock()
    }

    struct Entry {
        var client: String
        var sni: String?
        /// SHA-256 of the client's verified certificate (mutual TLS).
        var clientCertificate: String? = nil
        var host: String?
        var method: String
        var path: String
        var status: Int
        var bytesIn: Int64
        var bytesOut: Int64
        var upstream: String?
        var durationMS: Double
        var upstreamMS: Double?
        var proto: String
        /// Only for the combined format.
        var referer: String? = nil
        var userAgent: String? = nil
    }

    /// From a loop: queues `bytes` (`lines` whole lines) for the writer, or drops and counts them
    /// when the queue is full. One lock per buffer, not per line.
    func submit(_ bytes: [UInt8], lines: Int) {
        condition.lock()
        guard queuedBytes + bytes.count <= maxQueued else {
            condition.unlock()
            Metrics.shared.count(.accessLogDropped, lines)
            return
        }
        queue.append(bytes)
        queuedBytes += bytes.count
        condition.signal()
        condition.unlock()
    }

    /// Blocks until everything submitted so far is written (shutdown, after the loops handed over).
    public func flush() {
        condition.lock()
        while !queue.isEmpty || writing { condition.wait() }
        condition.unlock()
    }

    private func startWriter() {
        let writer = Thread { [self] in self.runWriter() }
        writer.name = "edgeproxy-access-log"
        writer.start()
    }

    private func runWriter() {
        guard var fd else { return }
        while true {
            condition.lock()
            while queue.isEmpty && !reopenRequested { condition.wait() }
            let batch = queue
            queue.removeAll(keepingCapacity: true)
            let reopening = reopenRequested
            reopenRequested = false
            writing = true
            condition.unlock()
            for bytes in batch { Self.writeAll(fd, bytes) }
            if reopening, let path {
                do {
                    let new = try Self.open(path)
                    Glibc.close(fd)
                    fd = new
                    Log.info("access log reopened: \(path)")
                } catch {
                    Log.error("access log: cannot reopen \(path): \(error); still writing to the file open before")
                }
            }
            condition.lock()
            queuedBytes -= batch.reduce(0) { $0 + $1.count }
            writing = false
            condition.broadcast()
            condition.unlock()
        }
    }

    /// The whole buffer, across short writes; a failing descriptor loses it (and says so once).
    private static func writeAll(_ fd: Int32, _ bytes: [UInt8]) {
        bytes.withUnsafeBytes { raw in
            var done = 0
            while done < raw.count {
                let n = Glibc.write(fd, raw.baseAddress! + done, raw.count - done)
                if n > 0 { done += n; continue }
                if n < 0 && errno == EINTR { continue }
                reportFailure(errno)
                return
            }
        }
    }

    nonisolated(unsafe) private static var failureReported = false  // the writer thread's own
    private static func reportFailure(_ code: Int32) {
        if failureReported { return }
        failureReported = true
        Log.error("access log: write failed: \(SystemError("write", errno: code)); lines are lost while it fails")
    }
}

/// One loop's access-log lines, formatted straight into bytes and handed to the `AccessLog`
/// writer when `bufferBytes` gather or `flushInterval` after the first line, whichever is first.
/// Loop thread only.
final class AccessLogBuffer {
    private let log: AccessLog
    private let loop: EventLoop
    private var bytes: [UInt8] = []
    private var lines = 0
    /// The buffer lives as long as its loop (see `ActionTimer`).
    private lazy var timer = ActionTimer { [unowned(unsafe) self] in self.handOff() }
    private var clock = LogClock()

    private let combined: Bool

    init(_ log: AccessLog, loop: EventLoop) {
        self.log = log; self.loop = loop
        combined = log.format == .combined
        if log.enabled { bytes.reserveCapacity(AccessLog.bufferBytes + 1024) }
    }

    var enabled: Bool { log.enabled }
    /// The combined format has the Referer and User-Agent: only then are they looked up.
    var wantsAgent: Bool { combined }

    func write(_ e: AccessLog.Entry) {
        guard log.enabled else { return }
        if combined { e.appendCombinedLine(to: &bytes, time: clock.local()) } else { e.appendJSONLine(to: &bytes, time: clock.now()) }
        lines += 1
        if bytes.count >= AccessLog.bufferBytes {
            handOff()
        } else if !timer.isArmed {
            loop.arm(timer, seconds: AccessLog.flushInterval)
        }
    }

    /// Gives what is buffered to the writer (the timer, a full buffer, the drain at shutdown).
    func handOff() {
        loop.disarm(timer)
        guard !bytes.isEmpty else { return }
        log.submit(bytes, lines: lines)
        bytes = []
        bytes.reserveCapacity(AccessLog.bufferBytes + 1024)
        lines = 0
    }
}

/// RFC 3339 UTC with milliseconds, the date and time part recomputed only when the second changes;
/// or nginx's local time.
struct LogClock {
    private var second = -1
    private var prefix: [UInt8] = []  // "2026-11-23T10:00:00."
    private var localSecond = -1
    private var localText: [UInt8] = []  // "23/Nov/2026:10:00:00 +0100"

    /// nginx's $time_local: "23/Nov/2026:10:00:00 +0100".
    mutating func local() -> [UInt8] {
        var t = time(nil)
        if t != localSecond {
            localSecond = t
            var parts = tm()
            localtime_r(&t, &parts)
            let months = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]
            var p: [UInt8] = []
            p.appendDigits(Int(parts.tm_mday), width: 2); p.append(UInt8(ascii: "/"))
            p.append(contentsOf: months[Int(parts.tm_mon)].utf8); p.append(UInt8(ascii: "/"))
            p.appendDigits(Int(parts.tm_year) + 1900, width: 4); p.append(UInt8(ascii: ":"))
            p.appendDigits(Int(parts.tm_hour), width: 2); p.append(UInt8(ascii: ":"))
            p.appendDigits(Int(parts.tm_min), width: 2); p.append(UInt8(ascii: ":"))
            p.appendDigits(Int(parts.tm_sec), width: 2)
            let offset = parts.tm_gmtoff / 60
            p.append(contentsOf: (offset < 0 ? " -" : " +").utf8)
            p.appendDigits(abs(offset) / 60, width: 2); p.appendDigits(abs(offset) % 60, width: 2)
            localText = p
        }
        return localText
    }

    mutating func now() -> (prefix: [UInt8], millis: Int) {
        var ts = timespec()
        clock_gettime(CLOCK_REALTIME, &ts)
        if ts.tv_sec != second {
            second = ts.tv_sec
            var t = ts.tv_sec
            var parts = tm()
            gmtime_r(&t, &parts)
            var p: [UInt8] = []
            func digits(_ v: Int32, _ width: Int) { p.appendDigits(Int(v), width: width) }
            digits(parts.tm_year + 1900, 4); p.append(UInt8(ascii: "-")); digits(parts.tm_mon + 1, 2)
            p.append(UInt8(ascii: "-")); digits(parts.tm_mday, 2); p.append(UInt8(ascii: "T"))
            digits(parts.tm_hour, 2); p.append(UInt8(ascii: ":")); digits(parts.tm_min, 2)
            p.append(UInt8(ascii: ":")); digits(parts.tm_sec, 2); p.append(UInt8(ascii: "."))
            prefix = p
        }
        return (prefix, ts.tv_nsec / 1_000_000)
    }
}

extension AccessLog.Entry {
    /// One JSON object and a newline, appended to `out` without intermediate strings.
    func appendJSONLine(to out: inout [UInt8], time: (prefix: [UInt8], millis: Int)) {
        out.append(contentsOf: #"{"time":""#.utf8)
        out.append(contentsOf: time.prefix)
        out.appendDigits(time.millis, width: 3)
        out.append(contentsOf: #"Z","client":"#.utf8); out.appendJSON(client)
        out.append(contentsOf: #","sni":"#.utf8); out.appendJSON(sni)
        if let clientCertificate { out.append(contentsOf: #","client_cert_sha256":"#.utf8); out.appendJSON(clientCertificate) }
        out.append(contentsOf: #","host":"#.utf8); out.appendJSON(host)
        out.append(contentsOf: #","method":"#.utf8); out.appendJSON(method)
        out.append(contentsOf: #","path":"#.utf8); out.appendJSON(path)
        out.append(contentsOf: #","status":"#.utf8); out.appendDigits(status)
        out.append(contentsOf: #","bytes_in":"#.utf8); out.appendDigits(Int(bytesIn))
        out.append(contentsOf: #","bytes_out":"#.utf8); out.appendDigits(Int(bytesOut))
        out.append(contentsOf: #","upstream":"#.utf8); out.appendJSON(upstream)
        out.append(contentsOf: #","duration_ms":"#.utf8); out.appendMillis(durationMS)
        out.append(contentsOf: #","upstream_ms":"#.utf8)
        if let upstreamMS { out.appendMillis(upstreamMS) } else { out.append(contentsOf: "null".utf8) }
        out.append(contentsOf: #","protocol":"#.utf8); out.appendJSON(proto)
        out.append(contentsOf: "}\n".utf8)
    }
}

extension AccessLog.Entry {
    /// nginx's combined line: `$remote_addr - $remote_user [$time_local] "$request" $status
    /// $body_bytes_sent "$http_referer" "$http_user_agent"` (remote user always "-"; bytes are what
    /// was sent to the client).
    func appendCombinedLine(to out: inout [UInt8], time: [UInt8]) {
        // `client` is "host:port" or "[v6]:port".
        let host = client.hasPrefix("[") ? client.dropFirst().prefix { $0 != "]" } : client[..<(client.lastIndex(of: ":") ?? client.endIndex)]
        out.append(contentsOf: host.utf8)
        out.append(contentsOf: " - - [".utf8); out.append(contentsOf: time); out.append(contentsOf: "] \"".utf8)
        out.appendEscaped(method); out.append(UInt8(ascii: " ")); out.appendEscaped(path); out.append(UInt8(ascii: " "))
        // Without " (plain)"; HTTP/2 as nginx writes it in "$request" ("HTTP/2.0"), which log parsers expect.
        let version = proto.prefix { $0 != " " }
        out.appendEscaped(version == "HTTP/2" ? "HTTP/2.0" : String(version))
        out.append(contentsOf: "\" ".utf8); out.appendDigits(status)
        out.append(UInt8(ascii: " ")); out.appendDigits(Int(bytesOut))
        out.append(contentsOf: " \"".utf8); out.appendEscaped(referer ?? "-")
        out.append(contentsOf: "\" \"".utf8); out.appendEscaped(userAgent ?? "-")
        out.append(contentsOf: "\"\n".utf8)
    }
}

extension [UInt8] {
    /// As nginx escapes logged variables: `"`, `\`, control and non-ASCII bytes as `\xHH`.
    mutating func appendEscaped(_ s: String) {
        let hex = Array("0123456789ABCDEF".utf8)
        for b in s.utf8 {
            if b < 0x20 || b >= 0x7F || b == UInt8(ascii: "\"") || b == UInt8(ascii: "\\") {
                append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "x"), hex[Int(b >> 4)], hex[Int(b & 15)]])
            } else {
                append(b)
            }
        }
    }

    /// A JSON string literal (RFC 8259 §7); nil is `null`.
    mutating func appendJSON(_ s: String?) { JSON.append(s, to: &self) }

    /// Decimal digits of `v`, zero-padded to `width`.
    mutating func appendDigits(_ v: Int, width: Int = 1) {
        if v < 0 { append(UInt8(ascii: "-")); appendDigits(0 &- v, width: width); return }
        var divisor = 1, count = 1
        while v / divisor >= 10 { divisor *= 10; count += 1 }
        for _ in count..<Swift.max(width, count) { append(UInt8(ascii: "0")) }
        while divisor > 0 { append(UInt8(ascii: "0") + UInt8(v / divisor % 10)); divisor /= 10 }
    }

    /// Milliseconds truncated to microseconds, as before: the shortest decimal (`12.0`, `0.125`).
    mutating func appendMillis(_ v: Double) {
        append(contentsOf: String(Double(Int(v * 1000)) / 1000).utf8)
    }
}
