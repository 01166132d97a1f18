import CSystem
import Dispatch
import Foundation
import Glibc
import HTTP1

/// The admin API's listener: a thread blocked in accept(2), each connection served on a global
/// queue with blocking I/O under timeouts, one request per connection. Nothing here is on the
/// proxy's hot path, so plain blocking sockets keep it short. Bounded: 16 connections at once,
/// 16 KiB heads, 1 MiB bodies, 10 s per read/write.
public final class AdminServer: @unchecked Sendable {  // `fd` is set in start() before the thread runs
    public static let maxBody: Int64 = 1 << 20
    static let ioTimeout = 10

    private let host: String
    private let port: UInt16
    private let token: String?
    private let handler: @Sendable (AdminRoute, AdminRequest) -> AdminResponse
    private let slots = DispatchSemaphore(value: 16)
    private var fd: Int32 = -1

    public init(host: String, port: UInt16, token: String?,
                handler: @escaping @Sendable (AdminRoute, AdminRequest) -> AdminResponse) {
        self.host = host; self.port = port; self.token = token; self.handler = handler
    }

    public func start() throws(AdminError) {
        fd = try Self.listen(host: host, port: port)
        let thread = Thread { [self] in acceptLoop() }
        thread.name = "edgeproxy-admin"
        thread.start()
    }

    private func acceptLoop() {
        while true {
            var storage = sockaddr_storage()
            var len = socklen_t(MemoryLayout<sockaddr_storage>.size)
            let client = withUnsafeMutablePointer(to: &storage) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { CSystem_accept4(fd, $0, &len, Int32(SOCK_CLOEXEC.rawValue)) }
            }
            if client < 0 {
                if errno == EINTR || errno == ECONNABORTED { continue }
                usleep(100_000)  // EMFILE and friends: back off instead of spinning
                continue
            }
            let loopback = Self.isLoopback(storage)
            guard slots.wait(timeout: .now()) == .success else {
                Self.send(client, AdminResponse.error(503, "too many admin connections; retry shortly"))
                close(client)
                continue
            }
            DispatchQueue.global().async { [self] in
                serve(client, loopback: loopback)
                close(client)
                slots.signal()
            }
        }
    }

    private func serve(_ client: Int32, loopback: Bool) {
        var tv = timeval(tv_sec: Self.ioTimeout, tv_usec: 0)
        setsockopt(client, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
        setsockopt(client, SOL_SOCKET, SO_SNDTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
        let response: AdminResponse
        switch Self.readRequest(client) {
        case .failure(let e):
            guard e.status > 0 else { return }  // the client went away or timed out
            response = .error(e.status, e.reason)
        case .success(let (head, body)):
            func field(_ name: String) -> String? { head.fields.first { HTTPField.nameEquals($0.name, name) }?.value }
            let request = AdminRequest(method: head.method, path: head.target, authorization: field("authorization"),
                                       body: body, peerIsLoopback: loopback, cookie: field("cookie"))
            response = respond(AdminRouter.route(method: head.method, path: head.target), request)
        }
        Self.send(client, response)
    }

    private func respond(_ route: AdminRoute, _ request: AdminRequest) -> AdminResponse {
        // The dashboard answers people: a login form where the API would answer a JSON 401.
        if route == .dashboard || route == .dashboardLogin { return DashboardPage.respond(route, request, token: token) }
        if let denied = AdminRouter.authorize(token: token, authorization: request.authorization, peerIsLoopback: request.peerIsLoopback,
                                              cookie: request.cookie, method: request.method) {
            return denied
        }
        // openapi.json, compiled into the binary (SwiftPM's embedInCode).
        if route == .openAPI { return AdminResponse(status: 200, contentType: "application/json", bytes: PackageResources.openapi_json) }
        return handler(route, request)
    }

    /// Reads one request: head and whole body. A status of 0 means "nothing to answer".
    static func readRequest(_ client: Int32) -> Result<(RequestHead, [UInt8]), HTTPParseError> {
        var parser = RequestParser(maxHeaderBytes: 16 * 1024, maxHeaders: 100, maxBodyBytes: maxBody)
        var pending: [UInt8] = []
        var head: RequestHead?
        var body: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 64 * 1024)
        while true {
            // Parse what is buffered before reading more.
            var progressed = true
            while progressed {
                progressed = false
                let parsed = pending.withUnsafeBytes { buf -> Result<(consumed: Int, event: RequestEvent), HTTPParseError> in
                    do throws(HTTPParseError) { return .success(try parser.parse(buf)) } catch { return .failure(error) }
                }
                let step: (consumed: Int, event: RequestEvent)
                switch parsed {
                case .success(let s): step = s
                case .failure(let e): return .failure(e)
                }
                switch step.event {
                case .needMore: break
                case .head(let h): head = h; progressed = true
                case .body(let range):
                    body += pending[range]
                    if Int64(body.count) > maxBody { return .failure(HTTPParseError(status: 413, reason: "body over 1 MiB")) }
                    progressed = true
                case .end:
                    guard let head else { return .failure(HTTPParseError(status: 400, reason: "no request head")) }
                    return .success((head, body))
                }
                pending.removeFirst(step.consumed)
                if step.consumed > 0 { progressed = true }
            }
            let n = chunk.withUnsafeMutableBytes { recv(client, $0.baseAddress, $0.count, 0) }
            if n < 0 && errno == EINTR { continue }
            if n <= 0 { return .failure(HTTPParseError(status: 0, reason: "closed")) }
            pending += chunk[0..<n]
        }
    }

    static func send(_ client: Int32, _ r: AdminResponse) {
        var fields = [HTTPField(name: "Content-Type", value: r.contentType),
                      HTTPField(name: "Content-Length", value: String(r.body.count)),
                      HTTPField(name: "Connection", value: "close")]
        for (name, value) in r.headers { fields.append(HTTPField(name: name, value: value)) }
        var out: [UInt8] = []
        HTTP1Writer.appendResponseHead(status: r.status, reason: nil, fields: fields, into: &out)
        out += r.body
        var sent = 0
        while sent < out.count {
            let n = out.withUnsafeBytes { Glibc.send(client, $0.baseAddress! + sent, $0.count - sent, Int32(MSG_NOSIGNAL)) }
            if n < 0 && errno == EINTR { continue }
            if n <= 0 { return }
            sent += n
        }
    }

    static func isLoopback(_ storage: sockaddr_storage) -> Bool {
        var s = storage
        return withUnsafePointer(to: &s) { p in
            if Int32(storage.ss_family) == AF_INET {
                return p.withMemoryRebound(to: sockaddr_in.self, capacity: 1) { UInt32(bigEndian: $0.pointee.sin_addr.s_addr) >> 24 == 127 }
            }
            if Int32(storage.ss_family) == AF_INET6 {
                return p.withMemoryRebound(to: sockaddr_in6.self, capacity: 1) { sin6 in
                    let b = withUnsafeBytes(of: sin6.pointee.sin6_addr) { Array($0) }
                    let v6Loopback = b[0..<15].allSatisfy { $0 == 0 } && b[15] == 1
                    let v4Mapped = b[0..<10].allSatisfy { $0 == 0 } && b[10] == 0xff && b[11] == 0xff && b[12] == 127
                    return v6Loopback || v4Mapped
                }
            }
            return false
        }
    }

    /// A blocking listener on host:port (no SO_REUSEPORT: a second instance must fail, not share).
    static func listen(host: String, port: UInt16) throws(AdminError) -> Int32 {
        let h = host == "localhost" ? "127.0.0.1" : host
        let v6 = h.contains(":")
        let fd = socket(v6 ? AF_INET6 : AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw AdminError("admin: socket: \(String(cString: strerror(errno)))") }
        var one: Int32 = 1
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size))
        var rc: Int32
        if v6 {
            var a = sockaddr_in6()
            a.sin6_family = sa_family_t(AF_INET6)
            a.sin6_port = port.bigEndian
            guard inet_pton(AF_INET6, h, &a.sin6_addr) == 1 else { close(fd); throw AdminError("admin: bad address \(host)") }
            rc = withUnsafePointer(to: &a) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in6>.size)) } }
        } else {
            var a = sockaddr_in()
            a.sin_family = sa_family_t(AF_INET)
            a.sin_port = port.bigEndian
            if h.isEmpty || h == "*" {
                a.sin_addr.s_addr = 0
            } else if inet_pton(AF_INET, h, &a.sin_addr) != 1 {
                close(fd); throw AdminError("admin: bad address \(host)")
            }
            rc = withUnsafePointer(to: &a) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
        }
        guard rc == 0, Glibc.listen(fd, 64) == 0 else {
            let reason = String(cString: strerror(errno))
            close(fd)
            throw AdminError("admin: cannot listen on \(host):\(port): \(reason) (change admin.listen, or stop what holds the port)")
        }
        return fd
    }
}

/// The admin listener could not be opened; the text says what to change.
public struct AdminError: Error, CustomStringConvertible {
    public let description: String
    public init(_ description: String) { self.description = description }
}
