import ControlClient
import HTTP1
import TLS

/// One HTTP response from the CA, body fully read (the control plane's response type).
public typealias HTTPResponse = ControlClient.HTTPResponse

/// How the ACME client reaches the CA. A protocol so tests (and a later cluster build) can wrap
/// or replace the transport; `HTTPSClient` is the real one.
public protocol HTTPTransport: AnyObject {
    func request(method: String, url: String, headers: [HTTPField], body: [UInt8]) throws(ACMEError) -> HTTPResponse
}

/// The CA transport: `ControlClient.HTTPClient` restricted to https, its failures reported as
/// `ACMEError(.transport, …)`. It keeps one connection alive to the CA and reconnects once when
/// a reused connection fails before any response byte; ACME POSTs are safe to resend then (a
/// replayed nonce is refused, RFC 8555 §6.5). For a background thread only; not thread-safe.
public final class HTTPSClient: HTTPTransport {
    private let client: HTTPClient
    /// Requests sent (every attempt counts), for the "CA requests per issuance" figure.
    public var requestCount: Int { client.requestCount }
    /// Largest response body accepted: certificate chains and JSON objects are a few KiB.
    static let maxBody = 4 << 20

    public init(context: TLSClientContext, timeout: Double = 30, keepAlive: Bool = true, userAgent: String = "edgeproxy-acme/0.1") {
        var options = HTTPClient.Options()
        options.timeout = timeout
        options.keepAlive = keepAlive
        options.userAgent = userAgent
        options.maxResponseBody = Self.maxBody
        client = HTTPClient(tls: context, options: options)
    }

    public func request(method: String, url: String, headers: [HTTPField] = [], body: [UInt8] = []) throws(ACMEError) -> HTTPResponse {
        guard url.lowercased().hasPrefix("https://") else { throw ACMEError(.transport, "not an https URL: \(url)") }
        do { return try client.request(method: method, url: url, headers: headers, body: body) } catch {
            throw ACMEError(.transport, error.reason)
        }
    }
}
