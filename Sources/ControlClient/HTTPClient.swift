import Foundation
import HTTP1
import TLS

/// The control plane's blocking HTTP/1.1 client (ACME CAs, the cluster store): plain TCP for
/// `http://`, TLS verified with a `TLSClientContext` for `https://`. Framing comes from HTTP1's
/// writer and `ResponseParser`. It keeps one connection alive to the last origin (an issuance is
/// ~15 sequential requests to one CA). For background threads only; one owner thread at a time
/// (not thread-safe; pool instances to share).
public final class HTTPClient {
    public struct Options: Sendable {
        /// Bounds connect, the TLS handshake and each read and write (not the whole exchange).
        public var timeout: Double = 30
        /// Largest response body accepted by `request`.
        public var maxResponseBody = 4 << 20
        public var keepAlive = true
        public var userAgent = "edgeproxy/0.1"
        /// Written first on every new connection, before TLS: e.g. the PROXY protocol header an
        /// origin behind one expects (health checks send v2 LOCAL).
        public var preamble: [UInt8] = []
        /// https: the name sent as SNI and verified instead of the URL's host (which is then only
        /// where to connect), e.g. a health check of one server of a TLS upstream.
        public var serverName: String?
        public init() {}
    }

    private let tlsContext: TLSClientContext?
    public let options: Options
    private var connection: (origin: Origin, stream: ClientConnection)?
    /// Requests sent (every attempt counts), e.g. for "CA requests per issuance".
    public private(set) var requestCount = 0

    /// `tls`: trust (and client certificate) for https URLs; nil trusts the system store.
    public init(tls: TLSClientContext? = nil, options: Options = Options()) {
        self.tlsContext = tls
        self.options = options
    }

    deinit { drop() }

    /// One request/response exchange; the body is read whole (up to `options.maxResponseBody`).
    /// `timeout` overrides `options.timeout` for this request.
    public func request(method: String, url: String, headers: [HTTPField] = [], body: [UInt8] = [],
                        timeout: Double? = nil) throws(HTTPClientError) -> HTTPResponse {
        let origin = try Origin(url)
        let bytes = requestBytes(method: method, origin: origin, headers: headers, body: body, close: !options.keepAlive)
        let timeout = timeout ?? options.timeout
        // A kept-alive connection the server closed meanwhile fails (EOF or reset) before any
        // response byte: reconnect once. Not after a timeout: the server may be working on it.
        if let reused = connection, reused.origin == origin {
            TCPConnection.setTimeout(reused.stream.fd, SO_RCVTIMEO, timeout)
            TCPConnection.setTimeout(reused.stream.fd, SO_SNDTIMEO, timeout)
            do { return try exchange(bytes, method: method, on: reused.stream) } catch {
                drop()
                guard !error.receivedResponseBytes, error.code == .closed || error.code == .io else { throw error }
            }
        } else {
            drop()
        }
        let stream = try connect(origin, timeout: timeout)
        connection = (origin, stream)
        do { return try exchange(bytes, method: method, on: stream) } catch { drop(); throw error }
    }

    /// A long response (e.g. a watch) on its own connection: `onHead` sees the final head
    /// (return false to stop), `onData` each piece of de-chunked body as it arrives (return false
    /// to stop). Returns when the body ends, a callback stops it, or throws on failure;
    /// `cancellation.cancel()` from another thread ends it promptly with `.cancelled`.
    /// `idleTimeout`: longest silence between body bytes (nil waits forever).
    public func stream(method: String, url: String, headers: [HTTPField] = [], body: [UInt8] = [],
                       idleTimeout: Double?, cancellation: HTTPCancellation = HTTPCancellation(),
                       onHead: (HTTPResponseHead) -> Bool, onData: ([UInt8]) -> Bool) throws(HTTPClientError) {
        let origin = try Origin(url)
        let bytes = requestBytes(method: method, origin: origin, headers: headers, body: body, close: true)
        guard !cancellation.isCancelled else { throw HTTPClientError(.cancelled, "stream cancelled") }
        let stream = try connect(origin, timeout: options.timeout)
        defer { cancellation.detach(); stream.close() }
        guard cancellation.attach(stream.fd) else { throw HTTPClientError(.cancelled, "stream cancelled") }
        requestCount += 1
        do throws(HTTPClientError) {
            try stream.write(bytes)
            var reader = ResponseReader(method: method, stream: stream)
            guard let head = try reader.readHead() else { return }
            guard onHead(HTTPResponseHead(status: head.status, headers: Array(head.fields))) else { return }
            TCPConnection.setTimeout(stream.fd, SO_RCVTIMEO, idleTimeout)
            while let piece = try reader.readBody() {
                if !piece.isEmpty && !onData(piece) { return }
            }
            if cancellation.isCancelled { throw HTTPClientError(.cancelled, "stream cancelled") }
        } catch {
            if cancellation.isCancelled { throw HTTPClientError(.cancelled, "stream cancelled", receivedResponseBytes: error.receivedResponseBytes) }
            throw error.afterSending()
        }
    }

    /// Closes the kept-alive connection, if any.
    public func close() { drop() }

    private func connect(_ origin: Origin, timeout: Double) throws(HTTPClientError) -> ClientConnection {
        let tcp = try TCPConnection(host: origin.host, port: origin.port, timeout: timeout)
        if !options.preamble.isEmpty {
            do { try tcp.write(options.preamble) } catch { tcp.close(); throw error }
        }
        guard origin.secure else { return tcp }
        let context: TLSClientContext
        if let tlsContext { context = tlsContext } else {
            do { context = try TLSClientContext() } catch { tcp.close(); throw HTTPClientError(.tls, "\(error)") }
        }
        return try TLSStream(tcp: tcp, host: options.serverName ?? origin.host, context: context)
    }

    private func requestBytes(method: String, origin: Origin, headers: [HTTPField], body: [UInt8], close: Bool) -> [UInt8] {
        // A Host among `headers` replaces the URL's (a health check naming a virtual host).
        let host = headers.first { HTTPField.nameEquals($0.name, "host") } ?? HTTPField(name: "Host", value: origin.hostField)
        var fields = [host, HTTPField(name: "User-Agent", value: options.userAgent)]
        fields += headers.filter { !HTTPField.nameEquals($0.name, "host") }
        if !body.isEmpty || method == "POST" || method == "PUT" { fields.append(HTTPField(name: "Content-Length", value: String(body.count))) }
        if close { fields.append(HTTPField(name: "Connection", value: "close")) }
        var bytes: [UInt8] = []
        HTTP1Writer.appendRequestHead(method: method, target: origin.target, fields: fields, into: &bytes)
        bytes += body
        return bytes
    }

    private func exchange(_ request: [UInt8], method: String, on stream: ClientConnection) throws(HTTPClientError) -> HTTPResponse {
        requestCount += 1
        do { return try exchangeOnce(request, method: method, on: stream) } catch { throw error.afterSending() }
    }

    private func exchangeOnce(_ request: [UInt8], method: String, on stream: ClientConnection) throws(HTTPClientError) -> HTTPResponse {
        try stream.write(request)
        var reader = ResponseReader(method: method, stream: stream)
        guard let head = try reader.readHead() else {
            throw HTTPClientError(.closed, "the server closed the connection without answering; retry")
        }
        var body: [UInt8] = []
        while let piece = try reader.readBody() {
            body += piece
            if body.count > options.maxResponseBody {
                throw HTTPClientError(.tooLarge, "response body over \(options.maxResponseBody) bytes; raise the limit or fix the server",
                                      receivedResponseBytes: true)
            }
        }
        if !options.keepAlive || !head.keepAlive || reader.endedByEOF { drop() }
        return HTTPResponse(status: head.status, headers: Array(head.fields), body: body)
    }

    private func drop() {
        connection?.stream.close()
        connection = nil
    }
}

/// The head of a streamed response.
public struct HTTPResponseHead: Sendable {
    public var status: Int
    public var headers: [HTTPField]
    public func header(_ name: String) -> String? { headers.firstValue(named: name) }
}

/// Drives `ResponseParser` over a connection: the final head, then body pieces.
struct ResponseReader {
    private var parser = ResponseParser()
    private let stream: ClientConnection
    private var pending: [UInt8] = []
    private var buffer = [UInt8](repeating: 0, count: 16384)
    private var gotBytes = false
    private var ended = false
    /// Bytes of `pending` the last `.body` step consumed (removed once the range is copied).
    private var bodyConsumed = 0
    private(set) var endedByEOF = false

    init(method: String, stream: ClientConnection) {
        self.stream = stream
        parser.expect(requestMethod: method)
    }

    /// The final (non-1xx) head; nil if the server closed before sending any byte.
    mutating func readHead() throws(HTTPClientError) -> ResponseHead? {
        while true {
            switch try step() {
            case .head(let head) where head.status >= 200: return head
            case .head, .body: continue
            case .end: throw fail(.badResponse, "response ended before its head")
            case .needMore:
                if try !fill() {
                    if !gotBytes { return nil }
                    throw fail(.closed, "the server closed the connection inside a response head; retry")
                }
            }
        }
    }

    /// The next piece of body; nil at the end of the body.
    mutating func readBody() throws(HTTPClientError) -> [UInt8]? {
        while !ended {
            switch try step() {
            case .body(let range):
                let piece = Array(pending[range])
                pending.removeFirst(bodyConsumed)
                return piece
            case .end: ended = true
            case .head: throw fail(.badResponse, "a second head inside a body")
            case .needMore:
                if try !fill() {
                    do {
                        if case .end? = try parser.finishAtEOF() { ended = true; endedByEOF = true; break }
                    } catch { throw fail(.closed, "\(error.reason); retry") }
                    throw fail(.closed, "the server closed the connection before the response was complete; retry")
                }
            }
        }
        return nil
    }

    /// One parser step over what is buffered (body ranges stay in `pending` for the caller).
    private mutating func step() throws(HTTPClientError) -> ResponseEvent {
        let result: (consumed: Int, event: ResponseEvent)
        do {
            result = try pending.withUnsafeBytes { raw in Result { () throws(HTTPParseError) in try parser.parse(raw) } }.get()
        } catch {
            throw fail(.badResponse, "not a valid HTTP/1.1 response: \(error.reason)")
        }
        if case .body = result.event { bodyConsumed = result.consumed; return result.event }
        pending.removeFirst(result.consumed)
        return result.event
    }

    /// Reads more; false at EOF.
    private mutating func fill() throws(HTTPClientError) -> Bool {
        let n: Int
        let stream = self.stream
        do { n = try buffer.withUnsafeMutableBytes { raw in Result { () throws(HTTPClientError) in try stream.read(into: raw) } }.get() } catch {
            throw error.withBytes(gotBytes)
        }
        if n == 0 { endedByEOF = true; return false }
        gotBytes = true
        pending += buffer[0..<n]
        return true
    }

    private func fail(_ code: HTTPClientError.Code, _ reason: String) -> HTTPClientError {
        HTTPClientError(code, reason, receivedResponseBytes: gotBytes)
    }
}

/// scheme://host:port and the request target of one URL.
struct Origin: Equatable {
    let secure: Bool
    let host: String
    let port: Int
    let target: String

    init(_ url: String) throws(HTTPClientError) {
        guard let parts = URLComponents(string: url), let scheme = parts.scheme?.lowercased(), scheme == "https" || scheme == "http",
              let host = parts.host, !host.isEmpty else {
            throw HTTPClientError(.badURL, "not an http(s)://host URL: \(url)")
        }
        secure = scheme == "https"
        self.host = host.hasPrefix("[") ? String(host.dropFirst().dropLast()) : host
        port = parts.port ?? (secure ? 443 : 80)
        var target = parts.percentEncodedPath.isEmpty ? "/" : parts.percentEncodedPath
        if let query = parts.percentEncodedQuery { target += "?" + query }
        self.target = target
    }

    var hostField: String {
        (host.contains(":") ? "[\(host)]" : host) + (port == (secure ? 443 : 80) ? "" : ":\(port)")
    }

    static func == (a: Origin, b: Origin) -> Bool { a.secure == b.secure && a.host == b.host && a.port == b.port }
}
