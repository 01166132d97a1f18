import EventLoop
import Front
import Glibc

/// Sockets systemd opened for us (sd_listen_fds(3)): `$LISTEN_FDS` descriptors from 3 on, meant for
/// the process `$LISTEN_PID`, named by `$LISTEN_FDNAMES` (colon-separated) when the .socket unit
/// gives FileDescriptorName=.
public enum SocketActivation {
    public static let firstDescriptor: Int32 = 3

    public struct Passed: Equatable, Sendable {
        public let fd: Int32
        /// "systemd socket \"https\" (fd 3)", for messages.
        public let name: String
    }

    /// The descriptors passed to `pid`; empty when none were, or they were meant for another process
    /// (a parent that did not clear the variables).
    static func parse(environment: [String: String], pid: Int32) throws(LifecycleError) -> [Passed] {
        guard let owner = environment["LISTEN_PID"], let text = environment["LISTEN_FDS"] else { return [] }
        guard let ownerPID = Int32(owner) else {
            throw .activation("LISTEN_PID is \"\(owner)\", not a process id: start edgeproxy from a systemd socket unit, or unset LISTEN_PID and LISTEN_FDS")
        }
        guard ownerPID == pid else { return [] }
        guard let count = Int32(text), count >= 0, count <= 4096 else {
            throw .activation("LISTEN_FDS is \"\(text)\", not a descriptor count: start edgeproxy from a systemd socket unit, or unset LISTEN_FDS")
        }
        var names: [String]? = nil
        if let list = environment["LISTEN_FDNAMES"] {
            names = list.split(separator: ":", omittingEmptySubsequences: false).map(String.init)
            guard names!.count == Int(count) else {
                throw .activation("LISTEN_FDNAMES names \(names!.count) socket(s) but LISTEN_FDS says \(count): give each socket one name")
            }
        }
        return (0..<count).map { i in
            let fd = firstDescriptor + i
            let name = names.map { "systemd socket \"\($0[Int(i)])\" (fd \(fd))" } ?? "systemd socket fd \(fd)"
            return Passed(fd: fd, name: name)
        }
    }

    /// The sockets systemd passed to this process, checked and made non-blocking; the variables are
    /// removed so that programs started later (DNS-01 hooks, event programs) do not take them too.
    public static func take(environment: [String: String]) throws(LifecycleError) -> [InheritedSocket] {
        let passed = try parse(environment: environment, pid: getpid())
        for v in ["LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES"] { unsetenv(v) }
        var sockets: [InheritedSocket] = []
        for p in passed {
            // Probed outside the errno gate, which takes EBADF for a bug of ours: here it is the environment's.
            guard fcntl(p.fd, F_GETFD) >= 0 else {
                throw .activation("\(p.name) is not an open descriptor: LISTEN_FDS promises more sockets than were passed")
            }
            sockets.append(try adopt(p.fd, name: p.name, hint: "pass listening TCP sockets only (ListenStream= in the .socket unit)", LifecycleError.activation))
        }
        return sockets
    }

    /// `fd` as a listening socket of ours, or an error naming it and saying what to do (`hint`).
    static func adopt(_ fd: Int32, name: String, hint: String, _ error: (String) -> LifecycleError) throws(LifecycleError) -> InheritedSocket {
        let address: SocketAddress?
        do { address = try Socket.adoptListener(fd) } catch let e { throw error("\(name): \(e): \(hint)") }
        guard let address else { throw error("\(name) is not a listening TCP socket: \(hint)") }
        return InheritedSocket(fd: fd, address: address, name: name)
    }
}
