@_exported import TestSupport
import Foundation
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// A real TCP server on a loopback port that runs `handler` on each accepted connection (its
/// own thread), for exercising the client's framing, keep-alive and timeouts.
final class ScriptedServer: Sendable {
    let port: Int
    private let listener: Int32
    private final class Counter: Sendable { let value = Mutex(0) }
    private let acceptedCount = Counter()
    var accepted: Int { acceptedCount.value.withLock { $0 } }

    init(_ handler: @escaping @Sendable (Connection) -> Void) throws {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        var len = socklen_t(MemoryLayout<sockaddr_in>.size)
        let ok = withUnsafeMutablePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, len) == 0 && getsockname(fd, $0, &len) == 0 }
        }
        guard ok, listen(fd, 16) == 0 else { close(fd); throw TestError("bind/listen: \(String(cString: strerror(errno)))") }
        listener = fd
        port = Int(UInt16(bigEndian: addr.sin_port))
        let counter = acceptedCount
        Thread {
            while true {
                let c = accept(fd, nil, nil)
                // stop() shut the listener down; only this thread closes it, so accept never
                // runs on a descriptor number another test has reused.
                if c < 0 { close(fd); return }
                counter.value.withLock { $0 += 1 }
                Thread { handler(Connection(fd: c)); close(c) }.start()
            }
        }.start()
    }

    private let stopped = Mutex(false)

    func stop() {
        let first = stopped.withLock { was in defer { was = true }; return !was }
        if first { shutdown(listener, Int32(SHUT_RDWR)) }
    }

    deinit { stop() }

    /// One accepted connection, read and written by the handler.
    struct Connection: Sendable {
        let fd: Int32

        /// Reads one request (head + Content-Length body); nil at EOF.
        func readRequest() -> String? {
            var data: [UInt8] = []
            var buffer = [UInt8](repeating: 0, count: 4096)
            while true {
                if let end = data.firstRange(of: Array("\r\n\r\n".utf8)) {
                    let head = String(decoding: data[..<end.upperBound], as: UTF8.self)
                    let length = head.split(separator: "\r\n").first { $0.lowercased().hasPrefix("content-length:") }
                        .flatMap { Int($0.split(separator: ":")[1].trimmingCharacters(in: .whitespaces)) } ?? 0
                    while data.count < end.upperBound + length {
                        let n = recv(fd, &buffer, buffer.count, 0)
                        if n <= 0 { return nil }
                        data += buffer[0..<n]
                    }
                    return String(decoding: data, as: UTF8.self)
                }
                let n = recv(fd, &buffer, buffer.count, 0)
                if n <= 0 { return nil }
                data += buffer[0..<n]
            }
        }

        func send(_ text: String) {
            let bytes = Array(text.utf8)
            _ = bytes.withUnsafeBytes { Glibc.send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
        }
    }
}

struct TestError: Error, CustomStringConvertible {
    let description: String
    init(_ d: String) { description = d }
}

/// A loopback port nothing listens on.
func deadPort() throws -> Int { try freePorts(1)[0] }
