import Foundation
#if canImport(Glibc)
import Glibc
#endif

// What the Swift test targets that start real servers share: temporary directories, running a
// program, free loopback ports.

/// A temporary directory removed when the value dies.
public final class TempDir {
    public let root: String
    public init() throws {
        root = NSTemporaryDirectory() + "edgeproxy-test-" + UUID().uuidString
        try FileManager.default.createDirectory(atPath: root, withIntermediateDirectories: true)
    }
    deinit { try? FileManager.default.removeItem(atPath: root) }
    public func path(_ name: String) -> String { root + "/" + name }
    public func url(_ name: String) -> URL { URL(fileURLWithPath: path(name)) }
}

/// Runs a program to completion, stdout and stderr together; `environment` adds to the current one.
public func run(_ program: String, _ arguments: [String], environment: [String: String]? = nil) throws -> (status: Int32, output: String) {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: program)
    process.arguments = arguments
    if let environment { process.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 } }
    let pipe = Pipe()
    process.standardOutput = pipe
    process.standardError = pipe
    try process.run()
    let data = pipe.fileHandleForReading.readDataToEndOfFile()
    process.waitUntilExit()
    return (process.terminationStatus, String(decoding: data, as: UTF8.self))
}

/// Distinct free loopback ports (bound to port 0, then released). Another process could take
/// one in between; on a test machine that is rare enough. Nothing listens on them afterwards.
public func freePorts(_ count: Int) throws -> [Int] {
    var ports: [Int] = [], fds: [Int32] = []
    defer { fds.forEach { close($0) } }
    for _ in 0..<count {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        fds.append(fd)
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        var len = socklen_t(MemoryLayout<sockaddr_in>.size)
        let ok = withUnsafeMutablePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, len) == 0 && getsockname(fd, $0, &len) == 0 }
        }
        guard ok else { throw SupportError("bind: \(String(cString: strerror(errno)))") }
        ports.append(Int(UInt16(bigEndian: addr.sin_port)))
    }
    return ports
}

/// Whether something accepts TCP connections on 127.0.0.1:`port`.
public func canConnect(_ port: Int) -> Bool {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    defer { close(fd) }
    var addr = sockaddr_in()
    addr.sin_family = sa_family_t(AF_INET)
    addr.sin_port = in_port_t(UInt16(port).bigEndian)
    addr.sin_addr.s_addr = inet_addr("127.0.0.1")
    return withUnsafePointer(to: &addr) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) == 0 }
    }
}

public struct SupportError: Error, CustomStringConvertible {
    public let description: String
    public init(_ d: String) { description = d }
}
