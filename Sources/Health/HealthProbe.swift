import Config
import ControlClient
import Foundation
import HTTP1
import ProxyProtocol
import TLS

/// One health check: a blocking HTTP/1.1 request to one server on a fresh connection (closed
/// after, as HAProxy's checks do, so a listener that stopped accepting fails at once).
public enum HealthProbe {
    public struct Result: Sendable, Encodable {
        public var at: Date
        public var passed: Bool
        /// nil when no response came (refused, timed out, reset).
        public var status: Int?
        public var latencySeconds: Double
        /// "status 200", or why it failed.
        public var detail: String
    }

    /// Never throws: a failure is a result. `proxyProtocol` (1, 2): the upstream's servers expect a
    /// PROXY header on each connection; a check sends the one that names no client (v2 LOCAL,
    /// v1 UNKNOWN), as HAProxy's checks do. `tls`: the upstream's settings and context (nil when
    /// none could be built): the check handshakes as the proxy's own connections do.
    static func run(_ check: HealthCheck, on server: SocketAddressSpec, proxyProtocol: Int?,
                    tls: (settings: UpstreamTLS, context: UpstreamTLSContext?)? = nil) -> Result {
        var options = HTTPClient.Options()
        options.timeout = check.timeout
        options.keepAlive = false
        options.maxResponseBody = 1 << 20
        options.userAgent = "edgeproxy-health-check"
        options.preamble = proxyProtocol.map { $0 == 1 ? ProxyHeader.v1Unknown : ProxyHeader.v2Local } ?? []
        options.serverName = tls?.settings.serverName
        if let tls, tls.context == nil {
            return Result(at: Date(), passed: false, status: nil, latencySeconds: 0, detail: "no TLS context for this upstream")
        }
        let client = HTTPClient(tls: tls?.context?.blockingClient, options: options)
        defer { client.close() }
        let headers = check.host.map { [HTTPField(name: "Host", value: $0)] } ?? []
        let at = Date()
        let start = ContinuousClock.now
        func seconds() -> Double {
            let d = ContinuousClock.now - start
            return Double(d.components.seconds) + Double(d.components.attoseconds) / 1e18
        }
        do {
            let response = try client.request(method: check.method, url: "\(tls == nil ? "http" : "https")://\(server)\(check.path)", headers: headers)
            let took = seconds()
            // The client's timeout bounds connect and each read; a slow trickle can outlast it.
            if took > check.timeout {
                return Result(at: at, passed: false, status: response.status, latencySeconds: took,
                              detail: "answered after \(String(format: "%.3f", took))s, over the \(check.timeout)s timeout")
            }
            let passed = check.expect.contains(response.status)
            return Result(at: at, passed: passed, status: response.status, latencySeconds: took,
                          detail: passed ? "status \(response.status)" : "status \(response.status), expected \(check.expectText)")
        } catch {
            return Result(at: at, passed: false, status: nil, latencySeconds: seconds(), detail: error.reason)
        }
    }
}
