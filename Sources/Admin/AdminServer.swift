import Dispatch
import EventLoop
import Foundation
import Glibc
import HTTP1

/// The admin API's listener: a thread waiting in accept, each connection served on a thread of
/// its own, one request per connection, its socket waited on with poll(2). Nothing here is on the
/// proxy's hot path, so a thread per connection keeps it short. Bounded: 16 connections at once,
/// 16 KiB heads, 1 MiB bodies, and one deadline for reading the whole request and another for
/// writing the answer (10 s each), so a client that trickles bytes cannot keep a slot.
public final class AdminServer: @unchecked Sendable {  // `fd` is set in start() before the thread runs
    public static let maxBody: Int64 = 1 << 20
    static let maxConnections = 16

    private let host: String
    private let port: UInt16
    private let token: String?
    private let timeout: UInt64
    private let handler: @Sendable (AdminRoute, AdminRequest) -> AdminResponse
    private let slots = DispatchSemaphore(value: AdminServer.maxConnections)
    private var fd: Int32 = -1

    /// `timeout`: seconds to read a whole request, and again to write its answer.
    public init(host: String, port: UInt16, token: String?, timeout: Double = 10,
                handler: @escaping @Sendable (AdminRoute, AdminRequest) -> AdminResponse) {
        precondition(timeout > 0 && timeout <= 3600, "admin timeout out of range: \(timeout) s")
        self.host = host; self.port = port; self.token = token; self.handler = handler
        self.timeout = UInt64(timeout * 1e9)
    }

    public func start() throws(AdminError) {
        fd = try Self.listen(host: host, port: port)
        let thread = Thread { [self] in acceptLoop() }
        thread.name = "edgeproxy-admin"
        thread.start()
    }

    private func acceptLoop() {
        while true {
            let client: Int32, peer: SocketAddress
            do throws(SystemError) {
                guard let next = try Socket.accept(fd) else { _ = try Socket.wait(fd, until: nil); continue }
                (client, peer) = next
            } catch {
                if error.errno != ECONNABORTED { usleep(100_000) }  // EMFILE and friends: back off instead of spinning
                continue
            }
            let loopback = Self.isLoopback(peer)
            guard slots.wait(timeout: .now()) == .success else {
                Self.send(client, AdminResponse.error(503, "too many admin connections; retry shortly"), until: monotonicNanos())
                Socket.close(client)
                continue
            }
            // A thread of its own, not Dispatch's shared pool: a connection waits for its client up
            // to the deadline, and 16 such waits would hold the pool's few threads from other work.
            let thread = Thread { [self] in
                serve(client, loopback: loopback)
                Socket.close(client)
                slots.signal()
            }
            thread.name = "edgeproxy-admin-conn"
            thread.start()
        }
    }

    private func serve(_ client: Int32, loopback: Bool) {
        let response: AdminResponse
        switch Self.readRequest(client, until: monotonicNanos() + timeout) {
        case .failure(let e):
            guard e.status > 0 else { return }  // the client went away or ran out of time
            response = .error(e.status, e.reason)
        case .success(let (head, body)):
            func field(_ name: String) -> String? { head.fields.first { HTTPField.nameEquals($0.name, name) }?.value }
            let request = AdminRequest(method: head.method, path: head.target, authorization: field("authorization"),
                                       body: body, peerIsLoopback: loopback, cookie: field("cookie"))
            response = respond(AdminRouter.route(method: head.method, path: head.target), request)
        }
        Self.send(client, response, until: monotonicNanos() + timeout)
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

    /// Reads one request, head and whole body, by `deadline`. A status of 0 means "nothing to answer".
    static func readRequest(_ client: Int32, until deadline: UInt64) -> Result<(RequestHead, [UInt8]), HTTPParseError> {
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
            guard let n = receive(client, into: &chunk, until: deadline) else { return .failure(HTTPParseError(status: 0, reason: "closed")) }
            pending += chunk[0..<n]
        }
    }

    /// Bytes that have arrived, waited for until `deadline`; nil when the client closed, failed or ran out of time.
    static func receive(_ client: Int32, into chunk: inout [UInt8], until deadline: UInt64) -> Int? {
        while true {
            do {  // withUnsafeMutableBytes rethrows untyped
                switch try chunk.withUnsafeMutableBytes({ try Socket.read(client, into: $0) }) {
                case .done(let n): return n > 0 ? n : nil
                case .wouldBlock: guard try Socket.wait(client, until: deadline) else { return nil }
                }
            } catch {
                return nil
            }
        }
    }

    /// Writes the answer, waiting for room until `deadline` (a client that reads nothing is left then).
    static func send(_ client: Int32, _ r: AdminResponse, until deadline: UInt64) {
        var fields = [HTTPField(name: "Content-Type", value: r.contentType),
                      HTTPField(name: "Content-Length", value: String(r.body.count)),
                      HTTPField(name: "Connection", value: "close")]
        for (name, value) in r.headers { fields.append(HTTPField(name: name, value: value)) }
        var out: [UInt8] = []
        HTTP1Writer.appendResponseHead(status: r.status, reason: nil, fields: fields, into: &out)
        out += r.body
        var sent = 0
        while sent < out.count {
            do throws(SystemError) {
                switch try Socket.write(client, out, from: sent) {
                case .done(let n): sent += n
                case .wouldBlock: guard try Socket.wait(client, writable: true, until: deadline) else { return }
                }
            } catch {
                return
            }
        }
    }

    /// 127.0.0.0/8, ::1, or an IPv4 loopback address mapped into IPv6.
    static func isLoopback(_ peer: SocketAddress) -> Bool {
        let b = peer.rawAddress
        if b.count == 4 { return b[0] == 127 }
        guard b.count == 16 else { return false }
        let v6Loopback = b[0..<15].allSatisfy { $0 == 0 } && b[15] == 1
        let v4Mapped = b[0..<10].allSatisfy { $0 == 0 } && b[10] == 0xff && b[11] == 0xff && b[12] == 127
        return v6Loopback || v4Mapped
    }

    /// The listener on host:port, without SO_REUSEPORT: a second instance must fail, not share.
    static func listen(host: String, port: UInt16) throws(AdminError) -> Int32 {
        do throws(SystemError) {
            let address = try SocketAddress.resolve(host: host == "localhost" ? "127.0.0.1" : host, port: port)
            return try Socket.listen(address, backlog: 64, shared: false)
        } catch {
            throw AdminError("admin: cannot listen on \(host):\(port): \(error) (check admin.listen, or stop what holds that port)")
        }
    }
}

/// The admin listener could not be opened; the text says what to change.
public struct AdminError: Error, CustomStringConvertible {
    public let description: String
    public init(_ description: String) { self.description = description }
}
