import EventLoop
import Glibc

/// A blocking DNS client for one server (an authoritative one, for the DNS-01 solver): queries
/// and signed UPDATEs over UDP, again over TCP when the answer comes back truncated (TC). For
/// background threads only; every socket call goes through the errno gate.
public struct DNSClient: Sendable {
    public let server: String
    public let port: Int
    /// For each exchange, per transport: sending and waiting for the answer.
    public let timeout: Double

    /// `server` is an IPv4 or IPv6 address literal.
    public init(server: String, port: Int = 53, timeout: Double = 5) {
        self.server = server; self.port = port; self.timeout = timeout
    }

    /// The answer section for `name`/`type`. An NXDOMAIN or an empty NOERROR is `[]`; any
    /// other RCODE throws `.rcode`.
    public func query(name: String, type: DNSType) throws(DNSError) -> [DNSRecord] {
        let request = DNSMessage.query(id: .random(in: .min ... .max), name: name, type: type)
        let response = try DNSMessage(decoding: exchange(try request.encode(), id: request.header.id))
        // An answer to some other question (a spoofing attempt, or a confused server) is not ours.
        guard let asked = response.questions.first, response.questions.count == 1,
              asked.name.lowercased() == name.lowercased().trimmingSuffixDot, asked.type == type else {
            throw DNSError(.malformed, "\(peer) answered another question than \(name) \(type)")
        }
        switch response.header.rcode {
        case .noError, .nxDomain: return response.answers
        default: throw DNSError(.rcode, "query \(name) \(type) at \(peer): \(response.header.rcode)", rcode: response.header.rcode)
        }
    }

    /// Sends `update` signed with `key`, verifies the signed answer and requires NOERROR.
    /// REFUSED, NOTAUTH and TSIG errors throw with what to check (key name, secret,
    /// `allow-update` / `update-policy` in named.conf, the zone name).
    public func update(_ update: DNSMessage, key: TSIGKey) throws(DNSError) {
        let request = try TSIG.sign(update, key: key)
        let bytes = try exchange(request.bytes, id: request.id)
        let zone = update.questions.first?.name ?? "?"
        let response: DNSMessage
        do { response = try TSIG.verify(response: bytes, to: request, key: key) } catch {
            guard error.code == .tsig, let rcode = error.rcode, rcode != .noError else { throw error }
            // Unsigned refusals: say what the server said as well as what is missing.
            throw DNSError(.tsig, "UPDATE of zone \(zone) at \(peer): \(rcode): \(error.reason)", rcode: rcode, tsigError: error.tsigError)
        }
        let rcode = response.header.rcode
        guard rcode == .noError else {
            throw DNSError(.rcode, "UPDATE of zone \(zone) at \(peer): \(rcode): \(Self.advice(rcode, zone: zone, key: key))", rcode: rcode)
        }
    }

    static func advice(_ rcode: DNSRCode, zone: String, key: TSIGKey) -> String {
        switch rcode {
        case .refused: "the server refused the update: check `allow-update { key \"\(key.name)\"; };` (or update-policy) for zone \(zone) in named.conf"
        case .notAuth: "the server is not authoritative for \(zone) or rejected key \(key.name): check the zone name, the key name and its secret"
        case .notZone: "a record is outside zone \(zone): check the zone name"
        case .servFail: "the server failed applying it: check its log (a read-only zone file or journal?)"
        case .notImp: "the server does not implement UPDATE"
        case .formErr: "the server could not parse the update"
        default: "see the server's log"
        }
    }

    /// "host:port" (IPv6 in brackets), as errors name the server.
    public var peer: String { (server.contains(":") ? "[\(server)]" : server) + ":\(port)" }

    /// One request, its answer bytes: UDP, then TCP if the UDP answer has TC set.
    func exchange(_ request: [UInt8], id: UInt16) throws(DNSError) -> [UInt8] {
        let address = try SocketAddress(server, port: port)
        let udp = try exchangeUDP(request, id: id, address)
        guard udp.count >= 3, udp[2] & 0x02 != 0 else { return udp }
        return try exchangeTCP(request, id: id, address)
    }

    private func exchangeUDP(_ request: [UInt8], id: UInt16, _ address: SocketAddress) throws(DNSError) -> [UInt8] {
        let socket = try DNSSocket(address, type: SOCK_DGRAM, timeout: timeout, peer: peer)
        try socket.connect()
        try socket.send(request)
        let deadline = monotonicNanos() + UInt64(timeout * 1e9)
        var buffer = [UInt8](repeating: 0, count: 65535)
        while true {
            let n = try socket.receive(into: &buffer)
            let answer = Array(buffer[0..<n])
            // Skip stray datagrams (an earlier query's late answer): match the ID and the QR bit.
            if n >= 12, UInt16(answer[0]) << 8 | UInt16(answer[1]) == id, answer[2] & 0x80 != 0 { return answer }
            guard monotonicNanos() < deadline else { throw DNSError(.timeout, "no answer from \(peer) within \(timeout) s") }
        }
    }

    private func exchangeTCP(_ request: [UInt8], id: UInt16, _ address: SocketAddress) throws(DNSError) -> [UInt8] {
        let socket = try DNSSocket(address, type: SOCK_STREAM, timeout: timeout, peer: peer)
        try socket.connect()
        // RFC 1035 §4.2.2: a two-byte length before each message.
        try socket.send([UInt8(request.count >> 8), UInt8(request.count & 0xFF)] + request)
        let prefix = try socket.receiveExactly(2)
        let answer = try socket.receiveExactly(Int(prefix[0]) << 8 | Int(prefix[1]))
        guard answer.count >= 12, UInt16(answer[0]) << 8 | UInt16(answer[1]) == id else {
            throw DNSError(.malformed, "\(peer) answered over TCP with another message ID")
        }
        return answer
    }
}

/// An IPv4 or IPv6 socket address from a literal.
struct SocketAddress {
    var storage: sockaddr_storage
    let length: socklen_t
    let family: Int32

    init(_ host: String, port: Int) throws(DNSError) {
        var storage = sockaddr_storage()
        guard (0...65535).contains(port) else { throw DNSError(.badInput, "port \(port) is out of range") }
        var v4 = sockaddr_in(), v6 = sockaddr_in6()
        if inet_pton(AF_INET, host, &v4.sin_addr) == 1 {
            v4.sin_family = sa_family_t(AF_INET); v4.sin_port = in_port_t(UInt16(port).bigEndian)
            withUnsafeBytes(of: &v4) { src in withUnsafeMutableBytes(of: &storage) { $0.copyMemory(from: src) } }
            length = socklen_t(MemoryLayout<sockaddr_in>.size); family = AF_INET
        } else if inet_pton(AF_INET6, host, &v6.sin6_addr) == 1 {
            v6.sin6_family = sa_family_t(AF_INET6); v6.sin6_port = in_port_t(UInt16(port).bigEndian)
            withUnsafeBytes(of: &v6) { src in withUnsafeMutableBytes(of: &storage) { $0.copyMemory(from: src) } }
            length = socklen_t(MemoryLayout<sockaddr_in6>.size); family = AF_INET6
        } else {
            throw DNSError(.badInput, "\(host) is not an IP address; give the DNS server as an address")
        }
        self.storage = storage
    }
}

/// One blocking socket with send/receive timeouts; owner of its descriptor. An expired
/// SO_RCVTIMEO/SO_SNDTIMEO comes out of the errno gate as `.wouldBlock`.
final class DNSSocket {
    let fd: Int32
    private var address: SocketAddress
    private let peer: String
    private let timeout: Double

    init(_ address: SocketAddress, type: __socket_type, timeout: Double, peer: String) throws(DNSError) {
        self.address = address; self.peer = peer; self.timeout = timeout
        signal(SIGPIPE, SIG_IGN)
        do {
            fd = try syscallValue("socket") { socket(address.family, Int32(type.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0) }
        } catch {
            throw DNSError(.io, "socket for \(peer): \(error)")
        }
        let s = max(0.001, timeout)
        var tv = timeval(tv_sec: Int(s), tv_usec: Int((s - s.rounded(.down)) * 1_000_000))
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
    }

    deinit { Glibc.close(fd) }

    func connect() throws(DNSError) {
        let length = address.length
        let result: IOResult<Int32>
        do {
            result = try withUnsafePointer(to: &address.storage) { p in
                Result { () throws(SystemError) in
                    try p.withMemoryRebound(to: sockaddr.self, capacity: 1) { sa throws(SystemError) in
                        try syscall("connect") { Glibc.connect(fd, sa, length) }
                    }
                }
            }.get()
        } catch {
            throw DNSError(.io, "connect to \(peer): \(String(cString: strerror(error.errno))); is the DNS server running there?")
        }
        if case .wouldBlock = result { throw DNSError(.timeout, "connect to \(peer) timed out after \(timeout) s") }
    }

    func send(_ bytes: [UInt8]) throws(DNSError) {
        var offset = 0
        while offset < bytes.count {
            let result: IOResult<Int>
            do {
                result = try bytes.withUnsafeBytes { raw in
                    Result { () throws(SystemError) in
                        try syscall("send") { Glibc.send(fd, raw.baseAddress! + offset, raw.count - offset, Int32(MSG_NOSIGNAL)) }
                    }
                }.get()
            } catch {
                throw DNSError(.io, "sending to \(peer): \(String(cString: strerror(error.errno)))")
            }
            switch result {
            case .done(let n): offset += n
            case .wouldBlock: throw DNSError(.timeout, "sending to \(peer) timed out after \(timeout) s")
            }
        }
    }

    /// One datagram or some stream bytes; 0 means the peer closed (TCP).
    func receive(into buffer: inout [UInt8], from start: Int = 0, max: Int? = nil) throws(DNSError) -> Int {
        let count = max ?? buffer.count - start
        let result: IOResult<Int>
        do {
            result = try buffer.withUnsafeMutableBytes { raw in
                Result { () throws(SystemError) in try syscall("recv") { recv(fd, raw.baseAddress! + start, count, 0) } }
            }.get()
        } catch {
            // A UDP socket reports the server's ICMP port unreachable here as ECONNREFUSED.
            throw DNSError(.io, "reading from \(peer): \(String(cString: strerror(error.errno))); is the DNS server running there?")
        }
        switch result {
        case .done(let n): return n
        case .wouldBlock: throw DNSError(.timeout, "no answer from \(peer) within \(timeout) s")
        }
    }

    func receiveExactly(_ count: Int) throws(DNSError) -> [UInt8] {
        var buffer = [UInt8](repeating: 0, count: count)
        var filled = 0
        while filled < count {
            let n = try receive(into: &buffer, from: filled, max: count - filled)
            guard n > 0 else { throw DNSError(.io, "\(peer) closed the TCP connection after \(filled) of \(count) bytes") }
            filled += n
        }
        return buffer
    }
}

private extension String {
    var trimmingSuffixDot: String { hasSuffix(".") && !hasSuffix("\\.") ? String(dropLast()) : self }
}
