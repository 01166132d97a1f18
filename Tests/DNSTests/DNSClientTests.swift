import DNS
import Foundation
import Glibc
import TestSupport
import Testing

@Suite struct DNSClientTests {
    /// A UDP socket on a loopback port that reads nothing and answers nothing.
    static func silentUDPPort() throws -> (fd: Int32, port: Int) {
        let fd = socket(AF_INET, Int32(SOCK_DGRAM.rawValue), 0)
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        var len = socklen_t(MemoryLayout<sockaddr_in>.size)
        let ok = withUnsafeMutablePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, len) == 0 && getsockname(fd, $0, &len) == 0 }
        }
        guard ok else { close(fd); throw SupportError("bind: \(String(cString: strerror(errno)))") }
        return (fd, Int(UInt16(bigEndian: addr.sin_port)))
    }

    @Test func timesOutOnASilentServer() throws {
        let silent = try Self.silentUDPPort()
        defer { close(silent.fd) }
        let started = Date()
        let error = #expect(throws: DNSError.self) {
            try DNSClient(server: "127.0.0.1", port: silent.port, timeout: 0.3).query(name: "example.test", type: .soa)
        }
        #expect(error?.code == .timeout)
        #expect(Date().timeIntervalSince(started) < 2)
    }

    @Test func saysWhenNothingListens() throws {
        let silent = try Self.silentUDPPort()
        close(silent.fd)
        let error = #expect(throws: DNSError.self) {
            try DNSClient(server: "127.0.0.1", port: silent.port, timeout: 1).query(name: "example.test", type: .soa)
        }
        #expect(error?.code == .io && error?.reason.contains("running") == true)
    }

    @Test func wantsAnAddress() {
        let error = #expect(throws: DNSError.self) { try DNSClient(server: "ns1.example.test").query(name: "x", type: .a) }
        #expect(error?.code == .badInput)
    }
}

extension DNSClientTests {
    /// Answers the first query that reaches `fd` with the messages `answers` makes of it, in order.
    static func answerOnce(_ fd: Int32, _ answers: @escaping @Sendable (DNSMessage) -> [DNSMessage]) {
        Thread {
            var buffer = [UInt8](repeating: 0, count: 512)
            var from = sockaddr_storage()
            var fromLength = socklen_t(MemoryLayout<sockaddr_storage>.size)
            let n = withUnsafeMutablePointer(to: &from) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { recvfrom(fd, &buffer, buffer.count, 0, $0, &fromLength) }
            }
            guard n > 0, var query = try? DNSMessage(decoding: Array(buffer[0..<n])) else { return }
            query.header.isResponse = true
            for message in answers(query) {
                guard let bytes = try? message.encode() else { return }
                _ = withUnsafePointer(to: &from) {
                    $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { sendto(fd, bytes, bytes.count, 0, $0, fromLength) }
                }
            }
        }.start()
    }

    /// First another ID (a stray late answer), then the proper answer: the client skips the first.
    @Test func skipsADatagramWithAnotherID() throws {
        let server = try Self.silentUDPPort()
        defer { close(server.fd) }
        Self.answerOnce(server.fd) { query in
            var right = query, stray = query
            right.answers = [DNSRecord(name: query.questions[0].name, ttl: 5, .txt("right"))]
            stray.header.id &+= 1
            stray.answers = [DNSRecord(name: query.questions[0].name, ttl: 5, .txt("stray"))]
            return [stray, right]
        }
        let records = try DNSClient(server: "127.0.0.1", port: server.port, timeout: 2).query(name: "t.example.test", type: .txt)
        #expect(records.compactMap(\.data.text) == ["right"])
    }

    @Test func rejectsAnAnswerToAnotherQuestion() throws {
        let server = try Self.silentUDPPort()
        defer { close(server.fd) }
        Self.answerOnce(server.fd) { query in
            var other = query
            other.questions = [DNSQuestion(name: "evil.example.test", type: .txt)]
            other.answers = [DNSRecord(name: "evil.example.test", ttl: 5, .txt("x"))]
            return [other]
        }
        let error = #expect(throws: DNSError.self) {
            try DNSClient(server: "127.0.0.1", port: server.port, timeout: 2).query(name: "t.example.test", type: .txt)
        }
        #expect(error?.code == .malformed)
    }
}
