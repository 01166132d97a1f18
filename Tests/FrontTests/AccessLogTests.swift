import EventLoop
import Foundation
import Glibc
import Logs
import Metrics
import Testing
@testable import Front

@Suite struct AccessLogTests {
    static let awkward = ["plain", "", "quote\" back\\slash", "line\nbreak\r\ttab", "ctl\u{1}\u{1f}del\u{7f}", "é 日本 🙂", "/p?q=a&b=<c>"]

    /// The byte formatter writes exactly what `JSON.string` does (RFC 8259 §7 escapes).
    @Test func stringsEscapeLikeJSONString() {
        for s in Self.awkward {
            var out: [UInt8] = []
            out.appendJSON(s)
            #expect(out == Array(JSON.string(s).utf8), "\(s)")
        }
        var null: [UInt8] = []
        null.appendJSON(nil)
        #expect(String(decoding: null, as: UTF8.self) == "null")
    }

    @Test func numbers() {
        func text(_ f: (inout [UInt8]) -> Void) -> String { var b: [UInt8] = []; f(&b); return String(decoding: b, as: UTF8.self) }
        #expect(text { $0.appendDigits(0) } == "0")
        #expect(text { $0.appendDigits(7, width: 3) } == "007")
        #expect(text { $0.appendDigits(1234567890123, width: 3) } == "1234567890123")
        #expect(text { $0.appendDigits(-42) } == "-42")
        #expect(text { $0.appendMillis(12) } == "12.0")
        #expect(text { $0.appendMillis(0.1259) } == "0.125")
    }

    /// One line per entry, valid JSON with every field, awkward strings intact.
    @Test func lineIsOneJSONObject() throws {
        var clock = LogClock()
        var out: [UInt8] = []
        for (i, s) in Self.awkward.enumerated() {
            let e = AccessLog.Entry(client: "127.0.0.1:5000", sni: i == 0 ? nil : s, clientCertificate: i == 1 ? "ab" : nil,
                                    host: s, method: "GET", path: s, status: 200 + i, bytesIn: 10, bytesOut: Int64(i) << 40,
                                    upstream: nil, durationMS: 1.5, upstreamMS: i == 2 ? 0.25 : nil, proto: "HTTP/1.1")
            e.appendJSONLine(to: &out, time: clock.now())
        }
        let lines = String(decoding: out, as: UTF8.self).split(separator: "\n", omittingEmptySubsequences: false)
        #expect(lines.count == Self.awkward.count + 1 && lines.last == "")
        for (i, line) in lines.dropLast().enumerated() {
            let o = try #require(try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any])
            #expect(o["path"] as? String == Self.awkward[i] && o["host"] as? String == Self.awkward[i])
            #expect(o["status"] as? Int == 200 + i && (o["bytes_out"] as? NSNumber)?.int64Value == Int64(i) << 40)
            #expect((o["client_cert_sha256"] as? String) == (i == 1 ? "ab" : nil))
            #expect(o["sni"] is NSNull == (i == 0) && o["upstream"] is NSNull)
            #expect(o["duration_ms"] as? Double == 1.5 && (i == 2 ? o["upstream_ms"] as? Double == 0.25 : o["upstream_ms"] is NSNull))
            let time = try #require(o["time"] as? String)
            #expect(time.count == 24 && time.hasSuffix("Z") && time.contains("T"), "\(time)")
        }
    }

    /// A writer that cannot keep up (nobody reads its pipe) drops whole buffers past its bound and
    /// counts their lines; what it accepted arrives complete and in order once the reader comes.
    @Test func writerFallingBehindDropsAndCounts() throws {
        var fds: [Int32] = [0, 0]
        #expect(pipe(&fds) == 0)
        defer { close(fds[0]) }
        let readEnd = fds[0]
        let log = AccessLog(fd: fds[1], maxQueuedBytes: 64 * 1024)
        let chunk = [UInt8](repeating: UInt8(ascii: "x"), count: 1023) + [UInt8(ascii: "\n")]  // one 1 KiB line
        let droppedBefore = Metrics.shared.totals()[.accessLogDropped]
        // The pipe holds 64 KiB and the queue 64 KiB: well past both, the rest is dropped.
        for i in 0..<400 {
            var line = chunk
            line.replaceSubrange(0..<4, with: Array(String(format: "%04d", i).utf8))
            log.submit(line, lines: 1)
            if i < 70 { Thread.sleep(forTimeInterval: 0.001) }  // let the writer fill the pipe first
        }
        let dropped = Metrics.shared.totals()[.accessLogDropped] - droppedBefore
        #expect(dropped > 0 && dropped < 400)
        // Read everything; the writer finishes what it accepted.
        nonisolated(unsafe) var received: [UInt8] = []  // written by the reader, read after `collected`
        let collected = DispatchSemaphore(value: 0)
        Thread {
            var buffer = [UInt8](repeating: 0, count: 65536)
            while true {
                let n = read(readEnd, &buffer, buffer.count)
                if n <= 0 { break }
                received += buffer[0..<n]
            }
            collected.signal()
        }.start()
        log.flush()
        close(fds[1])
        collected.wait()
        let lines = String(decoding: received, as: UTF8.self).split(separator: "\n")
        #expect(lines.count == 400 - dropped)
        #expect(lines.allSatisfy { $0.count == 1023 })
        let numbers = lines.map { Int($0.prefix(4))! }
        #expect(numbers == numbers.sorted() && numbers.first == 0)
    }
}
