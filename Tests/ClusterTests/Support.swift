// TempDir, run, freePorts: shared with the other server-starting test targets.
@_exported import TestSupport
import Foundation
#if canImport(Glibc)
import Glibc
#endif

extension String {
    var bytes: [UInt8] { Array(utf8) }
}

/// A loopback listener that never accepts: connections complete (the kernel's backlog) and
/// requests are written, but no answer ever comes — a member that hangs.
final class SilentListener {
    let port: Int
    private let fd: Int32

    init() throws {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        self.fd = fd
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        var len = socklen_t(MemoryLayout<sockaddr_in>.size)
        let ok = withUnsafeMutablePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, len) == 0 && getsockname(fd, $0, &len) == 0 }
        }
        guard ok, listen(fd, 16) == 0 else { close(fd); throw SupportError("listen: \(String(cString: strerror(errno)))") }
        port = Int(UInt16(bigEndian: addr.sin_port))
    }

    deinit { close(fd) }
}
