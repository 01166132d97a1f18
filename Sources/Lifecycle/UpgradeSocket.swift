import CSystem
import EventLoop
import Foundation
import Front
import Glibc
import Logs

// A binary upgrade over a Unix socket (SOCK_SEQPACKET, one message per step):
//   new → old  "sockets"
//   old → new  "sockets N", then the N listening descriptors in messages "fds" (SCM_RIGHTS);
//              or "refused REASON"
//   (the new process serves on them, accepting from the same sockets as the old one)
//   new → old  "drain PID"
//   old → new  "draining": the old process has let go of the upgrade socket's path and drains.
// The old process keeps serving until "drain" arrives: a new process that fails before that
// (its configuration, a certificate, a port of its own) changes nothing.

/// The running process's end: answers one upgrade at a time on a thread of its own.
public final class UpgradeListener: @unchecked Sendable {  // `fd` and `inode` are set before the thread starts
    public let path: String
    private let fd: Int32
    private let inode: ino_t
    /// The listening descriptors to hand over; nil while draining (refused).
    private let sockets: @Sendable () -> [Int32]?
    private let drain: @Sendable (Int32) -> Void

    /// Binds `path` (mode 0600). A stale socket file from a process that died is replaced; one a
    /// live process answers on is an error, as is a path that is not a socket.
    public init(path: String, sockets: @escaping @Sendable () -> [Int32]?, drain: @escaping @Sendable (Int32) -> Void) throws(LifecycleError) {
        self.path = path; self.sockets = sockets; self.drain = drain
        guard let address = UnixAddress(path) else {
            throw .upgradeSocket("\(path) is too long for a Unix socket (107 bytes at most): set listen.upgrade_socket to a shorter path")
        }
        try Self.removeStale(path, address)
        let sock: Int32
        do {
            sock = try syscallValue("socket(AF_UNIX)") { socket(AF_UNIX, Int32(SOCK_SEQPACKET.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0) }
        } catch { throw .upgradeSocket("\(path): \(error)") }
        do {
            _ = try address.withSockaddr { sa, len throws(SystemError) in try syscallValue("bind(\(path))") { bind(sock, sa, len) } }
            _ = try syscallValue("chmod(\(path))") { chmod(path, 0o600) }
            _ = try syscallValue("listen(\(path))") { listen(sock, 4) }
        } catch {
            close(sock)
            throw .upgradeSocket("\(error): set listen.upgrade_socket to a writable path, or to off")
        }
        fd = sock
        var st = stat()
        inode = stat(path, &st) == 0 ? st.st_ino : 0
    }

    private static func removeStale(_ path: String, _ address: UnixAddress) throws(LifecycleError) {
        var st = stat()
        guard lstat(path, &st) == 0 else { return }
        guard st.st_mode & S_IFMT == S_IFSOCK else {
            throw .upgradeSocket("\(path) exists and is not a socket: remove it, or set listen.upgrade_socket to another path")
        }
        if let probe = try? UpgradeClient.connect(address) {
            close(probe)
            throw LifecycleError(LifecycleError.inUseCode, "another edgeproxy answers on \(path): take over from it with `edgeproxy run --upgrade-from \(path)`, "
                                 + "or give this one another listen.upgrade_socket")
        }
        unlink(path)
    }

    public func start() {
        let thread = Thread { [self] in acceptLoop() }
        thread.name = "edgeproxy-upgrade"
        thread.start()
    }

    /// At exit: the path goes, unless a new process has bound its own socket there.
    public func removeFile() {
        var st = stat()
        if stat(path, &st) == 0 && st.st_ino == inode { unlink(path) }
    }

    private func acceptLoop() {
        while true {
            guard case .done(let client)? = try? syscall("accept(upgrade)", { CSystem_accept4(fd, nil, nil, Int32(SOCK_CLOEXEC.rawValue)) }) else {
                usleep(100_000)  // EMFILE and the like: try again later
                continue
            }
            let handedOver = serve(client)  // which closed `fd` then, before answering
            close(client)
            if handedOver { return }
        }
    }

    /// One upgrade; true when the new process took over (the path is its now).
    private func serve(_ client: Int32) -> Bool {
        if let refusal = Self.refusePeer(client) {
            Log.warning("upgrade socket: \(refusal)")
            try? DescriptorPassing.send(client, "refused \(refusal)")
            return false
        }
        // The new process loads its certificates between the two steps: allow it minutes, not forever.
        var tv = timeval(tv_sec: 600, tv_usec: 0)
        setsockopt(client, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
        do {
            while let (text, fds) = try DescriptorPassing.receive(client) {
                for fd in fds { close(fd) }
                if text == "sockets" {
                    guard let all = sockets() else {
                        try DescriptorPassing.send(client, "refused this process is draining already")
                        continue
                    }
                    try DescriptorPassing.send(client, "sockets \(all.count)")
                    for start in stride(from: 0, to: all.count, by: DescriptorPassing.maxPerMessage) {
                        try DescriptorPassing.send(client, "fds", fds: Array(all[start..<min(start + DescriptorPassing.maxPerMessage, all.count)]))
                    }
                    Log.info("upgrade: handed \(all.count) listening socket(s) to a new process")
                } else if text.hasPrefix("drain ") {
                    let pid = Int32(text.dropFirst(6)) ?? 0
                    close(fd)  // the new process binds the path next
                    try? DescriptorPassing.send(client, "draining")
                    drain(pid)
                    return true
                } else {
                    try DescriptorPassing.send(client, "refused unknown request")
                }
            }
            Log.info("upgrade: the new process went away before taking over; still serving")
        } catch {
            Log.warning("upgrade socket: \(error); still serving")
        }
        return false
    }

    /// Only our own user or root may take the sockets (the file's 0600 mode says the same).
    private static func refusePeer(_ client: Int32) -> String? {
        // struct ucred, which Glibc's module leaves out (it needs _GNU_SOURCE).
        struct Credentials { var pid: Int32 = 0; var uid: UInt32 = 0; var gid: UInt32 = 0 }
        var cred = Credentials()
        var len = socklen_t(MemoryLayout<Credentials>.size)
        guard getsockopt(client, SOL_SOCKET, SO_PEERCRED, &cred, &len) == 0 else { return "no peer credentials" }
        if cred.uid == 0 || cred.uid == geteuid() { return nil }
        return "pid \(cred.pid) runs as uid \(cred.uid), not \(geteuid()) or root"
    }
}

/// The new process's end: the sockets first, the old process's drain once this one serves.
public final class UpgradeClient {
    public let path: String
    private let fd: Int32

    public init(path: String) throws(LifecycleError) {
        self.path = path
        guard let address = UnixAddress(path) else { throw .upgrade("\(path) is too long for a Unix socket path") }
        do { fd = try Self.connect(address) } catch {
            throw .upgrade("cannot reach the running edgeproxy at \(path): \(error): check the path (listen.upgrade_socket of the running one) and that it runs")
        }
        var tv = timeval(tv_sec: 30, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
    }

    deinit { close(fd) }

    static func connect(_ address: UnixAddress) throws(SystemError) -> Int32 {
        let fd = try syscallValue("socket(AF_UNIX)") { socket(AF_UNIX, Int32(SOCK_SEQPACKET.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0) }
        do {
            _ = try address.withSockaddr { sa, len throws(SystemError) in try syscallValue("connect(\(address.path))") { Glibc.connect(fd, sa, len) } }
        } catch {
            close(fd)
            throw error
        }
        return fd
    }

    /// The running process's listening sockets, checked and made ours.
    public func fetchSockets() throws(LifecycleError) -> [InheritedSocket] {
        var received: [Int32] = []
        do {
            try DescriptorPassing.send(fd, "sockets")
            guard let (head, _) = try DescriptorPassing.receive(fd) else { throw LifecycleError.upgrade("\(path): the running process hung up") }
            if head.hasPrefix("refused ") { throw LifecycleError.upgrade("the running process refused: \(head.dropFirst(8))") }
            guard head.hasPrefix("sockets "), let count = Int(head.dropFirst(8)) else {
                throw LifecycleError.upgrade("\(path) answered \"\(head)\": is it an edgeproxy upgrade socket?")
            }
            while received.count < count {
                guard let (text, fds) = try DescriptorPassing.receive(fd), text == "fds" else {
                    throw LifecycleError.upgrade("\(path): the running process stopped after \(received.count) of \(count) sockets")
                }
                received += fds
            }
        } catch let e as LifecycleError {
            for fd in received { close(fd) }
            throw e
        } catch {
            for fd in received { close(fd) }
            throw .upgrade("\(path): \(error)")
        }
        var sockets: [InheritedSocket] = []
        for (i, fd) in received.enumerated() {
            do {
                sockets.append(try SocketActivation.adopt(fd, name: "socket \(i + 1) of \(received.count) from \(path)",
                                                          hint: "the running process handed over something else", LifecycleError.upgrade))
            } catch {
                for fd in received { close(fd) }
                throw error
            }
        }
        return sockets
    }

    /// Tells the running process to drain and exit: this one serves now.
    public func finish() throws(LifecycleError) {
        do {
            try DescriptorPassing.send(fd, "drain \(getpid())")
            guard let (text, _) = try DescriptorPassing.receive(fd), text == "draining" else {
                throw LifecycleError.upgrade("\(path): the running process did not confirm it drains")
            }
        } catch let e as LifecycleError {
            throw e
        } catch {
            throw .upgrade("\(path): \(error)")
        }
    }
}
