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
