import Dispatch
import EventLoop
import Foundation
import Glibc
import Testing
import TestSupport
@testable import Admin

/// The admin listener's bounds, over real loopback sockets. Each test starts its own server (its
/// accept thread lives until the test process ends: the server has no stop, as in the proxy).
@Suite struct AdminServerTests {
    /// `answered` is signalled as the handler returns its answer.
    static func start(timeout: Double, body: [UInt8] = Array("{}".utf8), answered: DispatchSemaphore? = nil) throws -> UInt16 {
        let port = UInt16(try freePorts(1)[0])
        let server = AdminServer(host: "127.0.0.1", port: port, token: nil, timeout: timeout) { _, _ in
            defer { answered?.signal() }
            return AdminResponse(status: 200, contentType: "application/json", bytes: body)
        }
        try server.start()
        return port
    }

    /// A blocking client socket; reads give up after `readTimeout` seconds.
    static func connect(_ port: UInt16, readTimeout: Int = 5) throws -> Int32 {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var tv = timeval(tv_sec: readTimeout, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_port = port.bigEndian
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        let rc = withUnsafePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { Glibc.connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
        guard rc == 0 else { close(fd); throw SupportError("connect: \(String(cString: strerror(errno)))") }
        return fd
    }

    static func send(_ fd: Int32, _ text: String) -> Bool {
        Array(text.utf8).withUnsafeBytes { Glibc.send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) } == text.utf8.count
    }

    /// Everything until the server closes (or the read timeout passes).
    static func readAll(_ fd: Int32) -> [UInt8] {
        var out: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 1 << 16)
        while true {
            let n = chunk.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            if n <= 0 { return out }
            out += chunk[0..<n]
        }
    }

    @Test func aWholeRequestIsAnswered() throws {
        let port = try Self.start(timeout: 2)
        let fd = try Self.connect(port)
        defer { close(fd) }
        #expect(Self.send(fd, "GET /healthz HTTP/1.1\r\nHost: admin\r\n\r\n"))
        let answer = String(decoding: Self.readAll(fd), as: UTF8.self)
        #expect(answer.hasPrefix("HTTP/1.1 200"))
        #expect(answer.hasSuffix("\r\n\r\n{}"))
    }

    /// One deadline for the whole request, not one per read: a byte every 100 ms keeps every
    /// read short, and the connection is still left once the request has taken 0.5 s.
    @Test func aClientThatTricklesItsRequestIsLeftAtTheDeadline() throws {
        let port = try Self.start(timeout: 0.5)
        let fd = try Self.connect(port)
        defer { close(fd) }
        let started = Date()
        #expect(Self.send(fd, "GET /healthz HTTP/1.1\r\n"))
        var closedAfter: Double?
        for _ in 0..<40 {
            usleep(100_000)
            _ = Self.send(fd, "X")
            var byte: UInt8 = 0
            let n = recv(fd, &byte, 1, Int32(MSG_DONTWAIT))
            if n == 0 || (n < 0 && errno != EAGAIN) { closedAfter = Date().timeIntervalSince(started); break }
            #expect(n <= 0, "the server answered a request it never got whole")
        }
        let after = try #require(closedAfter, "still open after 4 s of trickling")
        #expect(after >= 0.45 && after < 2.5)
    }

    /// An answer the client does not read is given up at the deadline too: the slot is not held.
    @Test func anAnswerNobodyReadsIsLeftAtTheDeadline() throws {
        let size = 32 << 20  // far more than the loopback socket buffers hold
        let answered = DispatchSemaphore(value: 0)
        let port = try Self.start(timeout: 0.5, body: [UInt8](repeating: UInt8(ascii: "x"), count: size), answered: answered)
        let fd = try Self.connect(port)
        defer { close(fd) }
        #expect(Self.send(fd, "GET /healthz HTTP/1.1\r\nHost: admin\r\n\r\n"))
        #expect(answered.wait(timeout: .now() + 10) == .success)
        usleep(1_500_000)  // read nothing while the server's deadline (0.5 s from now) passes
        let received = Self.readAll(fd)
        #expect(String(decoding: received.prefix(12), as: UTF8.self) == "HTTP/1.1 200")
        #expect(received.count < size, "the whole answer went out although the client read nothing for 1.5 s")
    }

    /// Sixteen connections at once; the next is told to retry.
    @Test func aConnectionPastTheLimitIsAnswered503() throws {
        let port = try Self.start(timeout: 5)
        var held: [Int32] = []
        defer { held.forEach { close($0) } }
        for _ in 0..<AdminServer.maxConnections { held.append(try Self.connect(port)) }
        usleep(200_000)  // let the accept thread take them all
        let extra = try Self.connect(port)
        defer { close(extra) }
        let answer = String(decoding: Self.readAll(extra), as: UTF8.self)
        #expect(answer.hasPrefix("HTTP/1.1 503"))
        #expect(answer.contains("too many admin connections"))
    }

    /// Without a token the API answers loopback clients only: 127/8, ::1 and 127/8 mapped into IPv6.
    @Test func loopbackPeers() throws {
        func loopback(_ bytes: [UInt8]) throws -> Bool {
            AdminServer.isLoopback(try #require(SocketAddress(rawAddress: bytes, port: 40000)))
        }
        let v6 = [UInt8](repeating: 0, count: 10), mapped = v6 + [0xff, 0xff]
        #expect(try loopback([127, 0, 0, 1]))
        #expect(try loopback([127, 9, 8, 7]))
        #expect(try !loopback([10, 0, 0, 1]))
        #expect(try !loopback([128, 0, 0, 1]))
        #expect(try loopback(v6 + [0, 0, 0, 0, 0, 1]))
        #expect(try !loopback(v6 + [0, 0, 0, 0, 0, 2]))
        #expect(try loopback(mapped + [127, 0, 0, 1]))
        #expect(try !loopback(mapped + [10, 0, 0, 1]))
    }
}
