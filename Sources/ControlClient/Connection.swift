import EventLoop
import Glibc
import TLS

/// The byte stream under one HTTP/1.1 connection: plain TCP or TLS over it.
protocol ClientConnection: AnyObject {
    /// The socket, for timeouts and cancellation (owned by the TCP layer).
    var fd: Int32 { get }
    func write(_ bytes: [UInt8]) throws(HTTPClientError)
    /// Blocks for the first byte; 0 means the peer closed.
    func read(into buffer: UnsafeMutableRawBufferPointer) throws(HTTPClientError) -> Int
    func close()
}

/// A blocking TCP connection with send/receive timeouts. Owner of its socket; every call goes
/// through the errno gate, where an expired SO_RCVTIMEO/SO_SNDTIMEO shows up as `.wouldBlock`.
final class TCPConnection: ClientConnection {
    let fd: Int32
    private var closed = false
    let peer: String

    /// Tries each address of `host` in turn. SO_SNDTIMEO also bounds a blocking connect on Linux
    /// (it then fails with EINPROGRESS, which the gate reports as `.wouldBlock`).
    init(host: String, port: Int, timeout: Double) throws(HTTPClientError) {
        // A write to a socket the server reset would otherwise kill the process with SIGPIPE.
        signal(SIGPIPE, SIG_IGN)
        peer = (host.contains(":") ? "[\(host)]" : host) + ":\(port)"
        var hints = addrinfo()
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        hints.ai_family = AF_UNSPEC
        var list: UnsafeMutablePointer<addrinfo>?
        // getaddrinfo reports through its return value, not errno (EAI_SYSTEM aside).
        let rc = getaddrinfo(host, String(port), &hints, &list)
        guard rc == 0, let list else {
            let why = rc == EAI_SYSTEM ? String(cString: strerror(errno)) : String(cString: gai_strerror(rc))
            throw HTTPClientError(.resolve, "cannot resolve \(host): \(why); check the host name and DNS")
        }
        defer { freeaddrinfo(list) }
        var last = HTTPClientError(.connect, "\(peer): no address")
        var next: UnsafeMutablePointer<addrinfo>? = list
        while let ai = next {
            next = ai.pointee.ai_next
            let fd: Int32
            do {
                fd = try syscallValue("socket") { socket(ai.pointee.ai_family, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0) }
            } catch {
                last = HTTPClientError(.connect, "\(peer): \(error)")
                continue
            }
            Self.setTimeout(fd, SO_RCVTIMEO, timeout)
            Self.setTimeout(fd, SO_SNDTIMEO, timeout)
            var one: Int32 = 1
            setsockopt(fd, Int32(IPPROTO_TCP), TCP_NODELAY, &one, socklen_t(MemoryLayout<Int32>.size))
            do {
                switch try syscall("connect", { Glibc.connect(fd, ai.pointee.ai_addr, ai.pointee.ai_addrlen) }) {
                case .done:
                    self.fd = fd
                    return
                case .wouldBlock:
                    last = HTTPClientError(.timeout, "connect to \(peer) timed out after \(timeout) s; is the server up and reachable?")
                }
            } catch {
                last = HTTPClientError(.connect, "connect to \(peer): \(String(cString: strerror(error.errno))); is the server running there?")
            }
            Glibc.close(fd)
        }
        throw last
    }

    deinit { close() }

    static func setTimeout(_ fd: Int32, _ option: Int32, _ seconds: Double?) {
        // A zero timeval means "block forever".
        let s = max(0, seconds ?? 0)
        var tv = timeval(tv_sec: Int(s), tv_usec: Int((s - s.rounded(.down)) * 1_000_000))
        if seconds != nil && tv.tv_sec == 0 && tv.tv_usec == 0 { tv.tv_usec = 1 }
        setsockopt(fd, SOL_SOCKET, option, &tv, socklen_t(MemoryLayout<timeval>.size))
    }

    func setReadTimeout(_ seconds: Double?) { Self.setTimeout(fd, SO_RCVTIMEO, seconds) }

    func write(_ bytes: [UInt8]) throws(HTTPClientError) {
        var offset = 0
        while offset < bytes.count {
            let result: IOResult<Int>
            do {
                result = try bytes.withUnsafeBytes { raw in
                    Result { () throws(SystemError) in
                        try syscall("send") { send(fd, raw.baseAddress! + offset, raw.count - offset, Int32(MSG_NOSIGNAL)) }
                    }
                }.get()
            } catch {
                throw HTTPClientError(.io, "sending to \(peer): \(String(cString: strerror(error.errno)))")
            }
            switch result {
            case .done(let n): offset += n
            case .wouldBlock: throw HTTPClientError(.timeout, "sending to \(peer) timed out")
            }
        }
    }

    func read(into buffer: UnsafeMutableRawBufferPointer) throws(HTTPClientError) -> Int {
        let result: IOResult<Int>
        do { result = try syscall("recv") { recv(fd, buffer.baseAddress, buffer.count, 0) } } catch {
            throw HTTPClientError(.io, "reading from \(peer): \(String(cString: strerror(error.errno)))")
        }
        switch result {
        case .done(let n): return n
        case .wouldBlock: throw HTTPClientError(.timeout, "\(peer) timed out (no response byte within the timeout)")
        }
    }

    func close() {
        guard !closed else { return }
        closed = true
        Glibc.close(fd)
    }
}

/// TLS over a `TCPConnection`, which keeps owning the socket.
final class TLSStream: ClientConnection {
    private let tcp: TCPConnection
    private let tls: TLSClientConnection
    var fd: Int32 { tcp.fd }

    init(tcp: TCPConnection, host: String, context: TLSClientContext) throws(HTTPClientError) {
        self.tcp = tcp
        do { tls = try TLSClientConnection(socket: tcp.fd, host: host, context: context) } catch {
            tcp.close()
            throw error.timedOut ? HTTPClientError(.timeout, "TLS handshake with \(tcp.peer) timed out")
                : HTTPClientError(.tls, "\(tcp.peer): \(error); check the trusted CA file and the server's certificate names")
        }
    }

    func write(_ bytes: [UInt8]) throws(HTTPClientError) {
        do { try tls.write(bytes) } catch { throw Self.map(error, tcp.peer) }
    }

    func read(into buffer: UnsafeMutableRawBufferPointer) throws(HTTPClientError) -> Int {
        do { return try tls.read(into: buffer) } catch { throw Self.map(error, tcp.peer) }
    }

    func close() {
        tls.close()
        tcp.close()
    }

    private static func map(_ error: TLSError, _ peer: String) -> HTTPClientError {
        // After the handshake a TLS failure means the session broke, like a reset.
        error.timedOut ? HTTPClientError(.timeout, "\(peer) timed out") : HTTPClientError(.io, "\(peer): TLS session: \(error)")
    }
}
