import Foundation
import HTTP1
import TLS

/// One HTTP response from the CA, body fully read.
public struct HTTPResponse: Sendable {
    public var status: Int
    public var headers: [HTTPField]
    public var body: [UInt8]

    public init(status: Int, headers: [HTTPField], body: [UInt8]) { self.status = status; self.headers = headers; self.body = body }

    public func header(_ name: String) -> String? { headers.firstValue(named: name) }
}

/// How the ACME client reaches the CA. A protocol so tests (and a later cluster build) can wrap
/// or replace the transport; `HTTPSClient` is the real one.
public protocol HTTPTransport: AnyObject {
    func request(method: String, url: String, headers: [HTTPField], body: [UInt8]) throws(ACMEError) -> HTTPResponse
}

/// A small blocking HTTPS/1.1 client: TLS from `TLSClientConnection`, framing from HTTP1's
/// writer and `ResponseParser`. It keeps one connection alive to the last origin, because an
/// issuance is ~15 sequential requests to one CA. For a background thread only; not thread-safe.
public final class HTTPSClient: HTTPTransport {
    private let context: TLSClientContext
    private let timeout: Double
    private let keepAlive: Bool
    private let userAgent: String
    private var connection: (origin: String, tls: TLSClientConnection)?
    /// Requests sent (every attempt counts), for the "CA requests per issuance" figure.
    public private(set) var requestCount = 0
    /// Largest response body accepted: certificate chains and JSON objects are a few KiB.
    static let maxBody = 4 << 20

    public init(context: TLSClientContext, timeout: Double = 30, keepAlive: Bool = true, userAgent: String = "edgeproxy-acme/0.1") {
        self.context = context; self.timeout = timeout; self.keepAlive = keepAlive; self.userAgent = userAgent
    }

    public func request(method: String, url: String, headers: [HTTPField] = [], body: [UInt8] = []) throws(ACMEError) -> HTTPResponse {
        guard let parts = URLComponents(string: url), parts.scheme == "https", let host = parts.host, !host.isEmpty else {
            throw ACMEError(.transport, "not an https URL: \(url)")
        }
        let port = parts.port ?? 443
        var target = parts.percentEncodedPath.isEmpty ? "/" : parts.percentEncodedPath
        if let query = parts.percentEncodedQuery { target += "?" + query }
        let hostField = (host.contains(":") ? "[\(host)]" : host) + (port == 443 ? "" : ":\(port)")
        var fields = [HTTPField(name: "Host", value: hostField), HTTPField(name: "User-Agent", value: userAgent)]
        fields += headers
        if !body.isEmpty || method == "POST" { fields.append(HTTPField(name: "Content-Length", value: String(body.count))) }
        if !keepAlive { fields.append(HTTPField(name: "Connection", value: "close")) }
        var bytes: [UInt8] = []
        HTTP1Writer.appendRequestHead(method: method, target: target, fields: fields, into: &bytes)
        bytes += body

        let origin = "\(host):\(port)"
        // A kept-alive connection the server closed meanwhile fails before any response byte:
        // reconnect once. ACME POSTs are safe to resend: a replayed nonce is refused (RFC 8555 §6.5).
        if let reused = connection, reused.origin == origin {
            do { return try exchange(bytes, method: method, on: reused.tls, origin: origin) } catch {
                drop()
                if error.gotBytes { throw error.acme }
            }
        } else {
            drop()
        }
        let tls: TLSClientConnection
        do { tls = try TLSClientConnection(host: host, port: port, context: context, timeout: timeout) } catch {
            throw ACMEError(.transport, error.description)
        }
        connection = (origin, tls)
        do { return try exchange(bytes, method: method, on: tls, origin: origin) } catch { drop(); throw error.acme }
    }

    private struct ExchangeError: Error {
        var acme: ACMEError
        var gotBytes: Bool
    }

    private func exchange(_ request: [UInt8], method: String, on tls: TLSClientConnection, origin: String) throws(ExchangeError) -> HTTPResponse {
        requestCount += 1
        do { try tls.write(request) } catch { throw ExchangeError(acme: ACMEError(.transport, error.description), gotBytes: false) }
        var parser = ResponseParser()
        parser.expect(requestMethod: method)
        var pending: [UInt8] = []
        var head: ResponseHead?
        var body: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 16384)
        var gotBytes = false
        func fail(_ reason: String) -> ExchangeError { ExchangeError(acme: ACMEError(.transport, "\(origin): \(reason)"), gotBytes: gotBytes) }
        while true {
            // Feed what is buffered until the parser needs more.
            var ended = false
            while !ended {
                let step: (consumed: Int, event: ResponseEvent)
                do { step = try pending.withUnsafeBytes { raw in try parser.parse(raw) } } catch {
                    throw fail("bad response: \(error)")
                }
                switch step.event {
                case .needMore: break
                case .head(let h): if h.status >= 200 { head = h }
                case .body(let range): body += pending[range]
                case .end: ended = true
                }
                pending.removeFirst(step.consumed)
                if case .needMore = step.event { break }
                if body.count > Self.maxBody { throw fail("response body over \(Self.maxBody) bytes") }
            }
            if ended, let head {
                if !keepAlive || !head.keepAlive { drop() }
                return HTTPResponse(status: head.status, headers: head.fields, body: body)
            }
            let n: Int
            do { n = try buffer.withUnsafeMutableBytes { raw in try tls.read(into: raw) } } catch {
                throw fail("\(error)")
            }
            if n == 0 {
                do {
                    if case .end? = try parser.finishAtEOF(), let head {
                        drop()
                        return HTTPResponse(status: head.status, headers: head.fields, body: body)
                    }
                } catch { throw fail(error.reason) }
                throw fail("connection closed before a complete response")
            }
            gotBytes = true
            pending += buffer[0..<n]
        }
    }

    private func drop() {
        connection?.tls.close()
        connection = nil
    }
}
