import CSystem
import Glibc

/// A resolved IPv4 or IPv6 socket address.
public struct SocketAddress: Sendable, CustomStringConvertible {
    /// Room for either family (a sockaddr_in fits in a sockaddr_in6): 28 bytes where a
    /// sockaddr_storage takes 128, and every connection keeps its peer's.
    var storage = sockaddr_in6()
    var length: socklen_t = 0

    public var family: Int32 { Int32(storage.sin6_family) }

    /// Resolves "host" + port with getaddrinfo; empty or "*" host means all IPv4 addresses.
    public static func resolve(host: String, port: UInt16) throws(SystemError) -> SocketAddress {
        var hints = addrinfo()
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        hints.ai_flags = AI_NUMERICSERV | AI_PASSIVE
        var result: UnsafeMutablePointer<addrinfo>?
        let node: String? = (host.isEmpty || host == "*") ? nil : host
        let rc = getaddrinfo(node, String(port), &hints, &result)
        guard rc == 0, let first = result else {
            throw SystemError("getaddrinfo(\(host)): \(String(cString: gai_strerror(rc)))", errno: EINVAL)
        }
        defer { freeaddrinfo(result) }
        return SocketAddress(UnsafeRawBufferPointer(start: first.pointee.ai_addr, count: Int(first.pointee.ai_addrlen)))
    }

    /// From a sockaddr of either family as the kernel or getaddrinfo wrote it (anything longer,
    /// another family's, is cut to what fits: only IP addresses are used).
    init(_ sockaddr: UnsafeRawBufferPointer) {
        let count = min(sockaddr.count, MemoryLayout<sockaddr_in6>.size)
        withUnsafeMutableBytes(of: &storage) { $0.copyMemory(from: UnsafeRawBufferPointer(rebasing: sockaddr[..<count])) }
        length = socklen_t(count)
    }
    init() {}

    /// From 4 (IPv4) or 16 (IPv6) network-order bytes and a port, e.g. a PROXY header's client.
    public init?(rawAddress: [UInt8], port: UInt16) {
        if rawAddress.count == 4 {
            var sin = sockaddr_in()
            sin.sin_family = sa_family_t(AF_INET)
            sin.sin_port = port.bigEndian
            withUnsafeMutableBytes(of: &sin.sin_addr) { $0.copyBytes(from: rawAddress) }
            withUnsafeMutableBytes(of: &storage) { $0.copyBytes(from: withUnsafeBytes(of: &sin) { Array($0) }) }
            length = socklen_t(MemoryLayout<sockaddr_in>.size)
        } else if rawAddress.count == 16 {
            var sin6 = sockaddr_in6()
            sin6.sin6_family = sa_family_t(AF_INET6)
            sin6.sin6_port = port.bigEndian
            withUnsafeMutableBytes(of: &sin6.sin6_addr) { $0.copyBytes(from: rawAddress) }
            withUnsafeMutableBytes(of: &storage) { $0.copyBytes(from: withUnsafeBytes(of: &sin6) { Array($0) }) }
            length = socklen_t(MemoryLayout<sockaddr_in6>.size)
        } else {
            return nil
        }
    }

    /// The address's 4 (IPv4) or 16 (IPv6) network-order bytes; empty for other families.
    public var rawAddress: [UInt8] {
        var s = storage
        return withUnsafePointer(to: &s) { p in
            if family == AF_INET {
                return p.withMemoryRebound(to: sockaddr_in.self, capacity: 1) { sin in withUnsafeBytes(of: sin.pointee.sin_addr) { Array($0) } }
            }
            if family == AF_INET6 {
                return p.withMemoryRebound(to: sockaddr_in6.self, capacity: 1) { sin in withUnsafeBytes(of: sin.pointee.sin6_addr) { Array($0) } }
            }
            return []
        }
    }

    /// "1.2.3.4" or "::1", without the port: the client address as logs and X-Forwarded-For show it.
    public var host: String {
        var buf = [CChar](repeating: 0, count: Int(INET6_ADDRSTRLEN))
        var s = storage
        return withUnsafePointer(to: &s) { p -> String in
            if family == AF_INET {
                return p.withMemoryRebound(to: sockaddr_in.self, capacity: 1) { sin in
                    var a = sin.pointee.sin_addr
                    inet_ntop(AF_INET, &a, &buf, socklen_t(buf.count))
                    return buf.withUnsafeBufferPointer { String(cString: $0.baseAddress!) }
                }
            } else if family == AF_INET6 {
                return p.withMemoryRebound(to: sockaddr_in6.self, capacity: 1) { sin in
                    var a = sin.pointee.sin6_addr
                    inet_ntop(AF_INET6, &a, &buf, socklen_t(buf.count))
                    return buf.withUnsafeBufferPointer { String(cString: $0.baseAddress!) }
                }
            }
            return "unknown"
        }
    }

    public var port: UInt16 {
        var s = storage
        return withUnsafePointer(to: &s) { p in
            if family == AF_INET { return p.withMemoryRebound(to: sockaddr_in.self, capacity: 1) { UInt16(bigEndian: $0.pointee.sin_port) } }
            if family == AF_INET6 { return p.withMemoryRebound(to: sockaddr_in6.self, capacity: 1) { UInt16(bigEndian: $0.pointee.sin6_port) } }
            return 0
        }
    }

    public var description: String { family == AF_INET6 ? "[\(host)]:\(port)" : "\(host):\(port)" }

    /// Same family, address and port: a listening socket's `getsockname` against a configured address.
    public func sameEndpoint(as other: SocketAddress) -> Bool {
        family == other.family && port == other.port && rawAddress == other.rawAddress
    }

    func withSockaddr<R>(_ body: (UnsafePointer<sockaddr>, socklen_t) -> R) -> R {
        var s = storage
        return withUnsafePointer(to: &s) { p in p.withMemoryRebound(to: sockaddr.self, capacity: 1) { body($0, length) } }
    }
}

/// Non-blocking socket operations. Descriptors are plain Int32s owned by the caller's object,
/// which closes them exactly once.
public enum Socket {
    /// A listening socket with SO_REUSEPORT, so each loop has its own and the kernel spreads accepts
    /// (`shared: false`: without it, so that a second process fails to bind instead of sharing).
    /// TCP_NODELAY is set on it: Linux copies it to every connection it accepts, which then needs
    /// no setsockopt of its own (responses go out as soon as written; the loop batches its writes).
    public static func listen(_ address: SocketAddress, backlog: Int32 = 1024, shared: Bool = true) throws(SystemError) -> Int32 {
        let fd = try syscallValue("socket") { socket(address.family, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_NONBLOCK.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0) }
        do {
            try setOption(fd, SOL_SOCKET, SO_REUSEADDR, 1)
            if shared { try setOption(fd, SOL_SOCKET, SO_REUSEPORT, 1) }
            if address.family == AF_INET6 { try setOption(fd, Int32(IPPROTO_IPV6), IPV6_V6ONLY, 1) }
            try setOption(fd, Int32(IPPROTO_TCP), TCP_NODELAY, 1)
            _ = try syscallValue("bind(\(address))") { address.withSockaddr { bind(fd, $0, $1) } }
            _ = try syscallValue("listen(\(address))") { Glibc.listen(fd, backlog) }
        } catch {
            close(fd)
            throw error
        }
        return fd
    }

    /// Takes a socket this process did not create (from systemd, or from the process it replaces):
    /// made non-blocking and close-on-exec, and given TCP_NODELAY, like its own. Returns its local
    /// address, or nil when it is not a listening IPv4/IPv6 stream socket.
    public static func adoptListener(_ fd: Int32) throws(SystemError) -> SocketAddress? {
        var listening: Int32 = 0, type: Int32 = 0
        var len = socklen_t(4)
        guard case .done = try syscall("getsockopt(SO_ACCEPTCONN)", { getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &listening, &len) }),
              case .done = try syscall("getsockopt(SO_TYPE)", { getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &len) }),
              listening == 1, type == Int32(SOCK_STREAM.rawValue),
              let address = localAddress(fd), address.family == AF_INET || address.family == AF_INET6 else { return nil }
        let flags = try syscallValue("fcntl(F_GETFL)") { fcntl(fd, F_GETFL) }
        _ = try syscallValue("fcntl(F_SETFL)") { fcntl(fd, F_SETFL, flags | O_NONBLOCK) }
        _ = try syscallValue("fcntl(F_SETFD)") { fcntl(fd, F_SETFD, FD_CLOEXEC) }
        try setOption(fd, Int32(IPPROTO_TCP), TCP_NODELAY, 1)
        return address
    }

    /// Accepts one connection (non-blocking, close-on-exec); nil when the queue is empty.
    public static func accept(_ listener: Int32) throws(SystemError) -> (fd: Int32, peer: SocketAddress)? {
        var storage = sockaddr_storage()
        var length = socklen_t(MemoryLayout<sockaddr_storage>.size)
        let result = try withUnsafeMutablePointer(to: &storage) { p throws(SystemError) in
            try p.withMemoryRebound(to: sockaddr.self, capacity: 1) { sa throws(SystemError) in
                try syscall("accept4") { CSystem_accept4(listener, sa, &length, Int32(SOCK_NONBLOCK.rawValue) | Int32(SOCK_CLOEXEC.rawValue)) }
            }
        }
        switch result {
        case .wouldBlock: return nil
        case .done(let fd): return (fd, withUnsafeBytes(of: &storage) { SocketAddress(UnsafeRawBufferPointer(rebasing: $0[..<min(Int(length), $0.count)])) })
        }
    }

    /// Starts a non-blocking connect; completion shows up as writability (check `pendingError`).
    public static func connect(_ address: SocketAddress) throws(SystemError) -> Int32 {
        let fd = try syscallValue("socket") { socket(address.family, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_NONBLOCK.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0) }
        do {
            try? setOption(fd, Int32(IPPROTO_TCP), TCP_NODELAY, 1)
            _ = try syscall("connect(\(address))") { address.withSockaddr { Glibc.connect(fd, $0, $1) } }
        } catch {
            close(fd)
            throw error
        }
        return fd
    }

    /// The error a non-blocking connect ended with (SO_ERROR), or nil when it succeeded.
    public static func pendingError(_ fd: Int32) -> SystemError? {
        var err: Int32 = 0
        var len = socklen_t(4)
        getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len)
        return err == 0 ? nil : SystemError("connect", errno: err)
    }

    public static func setOption(_ fd: Int32, _ level: Int32, _ name: Int32, _ value: Int32) throws(SystemError) {
        var v = value
        _ = try syscallValue("setsockopt(\(name))") { setsockopt(fd, level, name, &v, socklen_t(4)) }
    }

    /// Reads into `buffer`: `.done(0)` is end of stream. recv, not read: the kernel's read path takes
    /// the file-position lock helper first, which a socket never needs.
    @inline(__always)
    public static func read(_ fd: Int32, into buffer: UnsafeMutableRawBufferPointer) throws(SystemError) -> IOResult<Int> {
        try syscall("recv") { recv(fd, buffer.baseAddress, buffer.count, 0) }
    }

    /// The local address of a connected socket (the address a client connected to); nil on failure.
    public static func localAddress(_ fd: Int32) -> SocketAddress? {
        var storage = sockaddr_storage()
        var length = socklen_t(MemoryLayout<sockaddr_storage>.size)
        let result = try? withUnsafeMutablePointer(to: &storage) { p throws(SystemError) in
            try p.withMemoryRebound(to: sockaddr.self, capacity: 1) { sa throws(SystemError) in try syscall("getsockname") { getsockname(fd, sa, &length) } }
        }
        guard case .done? = result else { return nil }
        return withUnsafeBytes(of: &storage) { SocketAddress(UnsafeRawBufferPointer(rebasing: $0[..<min(Int(length), $0.count)])) }
    }

    /// Looks at what has arrived without consuming it (`.done(0)`: end of stream).
    public static func peek(_ fd: Int32, into buffer: UnsafeMutableRawBufferPointer) throws(SystemError) -> IOResult<Int> {
        try syscall("recv(MSG_PEEK)") { recv(fd, buffer.baseAddress, buffer.count, Int32(MSG_PEEK)) }
    }

    /// Writes without raising SIGPIPE on a reset peer.
    @inline(__always)
    public static func write(_ fd: Int32, _ bytes: UnsafeRawBufferPointer) throws(SystemError) -> IOResult<Int> {
        try syscall("send") { send(fd, bytes.baseAddress, bytes.count, Int32(MSG_NOSIGNAL)) }
    }

    /// Writes `bytes[offset...]`.
    @inline(__always)
    public static func write(_ fd: Int32, _ bytes: [UInt8], from offset: Int) throws(SystemError) -> IOResult<Int> {
        try syscall("send") { bytes.withUnsafeBytes { send(fd, $0.baseAddress! + offset, $0.count - offset, Int32(MSG_NOSIGNAL)) } }
    }

    /// Waits until `fd` is readable (or writable) or the monotonic `deadline` (`monotonicNanos`)
    /// passes; false at the deadline, nil waits as long as it takes. For the threads that serve
    /// the control plane one connection each (the admin API); a loop never waits.
    public static func wait(_ fd: Int32, writable: Bool = false, until deadline: UInt64?) throws(SystemError) -> Bool {
        var entry = pollfd(fd: fd, events: Int16(writable ? POLLOUT : POLLIN), revents: 0)
        let ready = try syscallValue("poll") { () -> Int32 in
            guard let deadline else { return poll(&entry, 1, -1) }
            let now = monotonicNanos()
            let ms = now >= deadline ? 0 : min((deadline - now + 999_999) / 1_000_000, UInt64(Int32.max))
            return poll(&entry, 1, Int32(ms))
        }
        return ready > 0
    }

    public static func close(_ fd: Int32) { _ = Glibc.close(fd) }

    /// Half-closes the write side (used before closing after an error response, so the client reads it).
    public static func shutdownWrite(_ fd: Int32) { _ = Glibc.shutdown(fd, Int32(SHUT_WR)) }
}
