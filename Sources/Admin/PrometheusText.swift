import Foundation
import Metrics

/// `GET /metrics` in the Prometheus text exposition format (version 0.0.4).
public enum PrometheusText {
    public struct CertificateExpiry: Sendable {
        public var name: String
        public var serial: String
        public var notAfter: Date
        public init(name: String, serial: String, notAfter: Date) { self.name = name; self.serial = serial; self.notAfter = notAfter }
    }

    /// One ACME-managed certificate's schedule.
    public struct ACMECertificate: Sendable {
        public var name: String
        public var nextAttempt: Date
        public var failures: Int
        public var issued: Int
        public init(name: String, nextAttempt: Date, failures: Int, issued: Int) {
            self.name = name; self.nextAttempt = nextAttempt; self.failures = failures; self.issued = issued
        }
    }

    /// ACME's part: nil when ACME is off (its families are left out).
    public struct ACME: Sendable {
        public var certificates: [ACMECertificate]
        public var pendingHTTP01: Int
        public var pendingTLSALPN01: Int
        public init(certificates: [ACMECertificate], pendingHTTP01: Int, pendingTLSALPN01: Int) {
            self.certificates = certificates; self.pendingHTTP01 = pendingHTTP01; self.pendingTLSALPN01 = pendingTLSALPN01
        }
    }

    public static func render(_ m: Metrics, certificates: [CertificateExpiry], acme: ACME? = nil, now: Date = Date()) -> String {
        var out = ""
        func family(_ name: String, _ type: String, _ help: String) {
            out += "# HELP \(name) \(help)\n# TYPE \(name) \(type)\n"
        }
        func sample(_ name: String, _ labels: [(String, String)], _ value: Int) {
            let l = labels.isEmpty ? "" : "{" + labels.map { "\($0.0)=\"\(escape($0.1))\"" }.joined(separator: ",") + "}"
            out += "\(name)\(l) \(value)\n"
        }
        family("edgeproxy_tls_handshakes_total", "counter", "TLS handshakes by outcome and protocol version.")
        sample("edgeproxy_tls_handshakes_total", [("outcome", "ok"), ("version", "TLSv1.3")], m.handshakesTLS13.load(ordering: .relaxed))
        sample("edgeproxy_tls_handshakes_total", [("outcome", "ok"), ("version", "TLSv1.2")], m.handshakesTLS12.load(ordering: .relaxed))
        sample("edgeproxy_tls_handshakes_total", [("outcome", "failed"), ("version", "")], m.handshakesFailed.load(ordering: .relaxed))
        sample("edgeproxy_tls_handshakes_total", [("outcome", "aborted"), ("version", "")], m.handshakesAborted.load(ordering: .relaxed))
        family("edgeproxy_sni_total", "counter", "Certificate selections by how the SNI name matched.")
        sample("edgeproxy_sni_total", [("match", "exact")], m.sniExact.load(ordering: .relaxed))
        sample("edgeproxy_sni_total", [("match", "wildcard")], m.sniWildcard.load(ordering: .relaxed))
        sample("edgeproxy_sni_total", [("match", "default")], m.sniDefault.load(ordering: .relaxed))
        sample("edgeproxy_sni_total", [("match", "rejected")], m.sniRejected.load(ordering: .relaxed))
        family("edgeproxy_certificate_reloads_total", "counter", "Certificates installed or replaced, by source.")
        for (source, n) in m.certificateReloads.sorted(by: { $0.key < $1.key }) { sample("edgeproxy_certificate_reloads_total", [("source", source)], n) }
        family("edgeproxy_certificate_refusals_total", "counter", "Certificates refused by validation, by source.")
        for (source, n) in m.certificateRefusals.sorted(by: { $0.key < $1.key }) { sample("edgeproxy_certificate_refusals_total", [("source", source)], n) }
        family("edgeproxy_certificate_expiry_seconds", "gauge", "Seconds until each certificate's notAfter.")
        for c in certificates {
            sample("edgeproxy_certificate_expiry_seconds", [("name", c.name), ("serial", c.serial)], Int(c.notAfter.timeIntervalSince(now)))
        }
        if let acme {
            family("edgeproxy_acme_next_attempt_timestamp_seconds", "gauge", "When ACME next looks at each managed certificate (Unix time).")
            for c in acme.certificates {
                sample("edgeproxy_acme_next_attempt_timestamp_seconds", [("name", c.name)], Int(c.nextAttempt.timeIntervalSince1970))
            }
            family("edgeproxy_acme_consecutive_failures", "gauge", "Failed ACME attempts in a row per certificate (0 after a success).")
            for c in acme.certificates { sample("edgeproxy_acme_consecutive_failures", [("name", c.name)], c.failures) }
            family("edgeproxy_acme_certificates_issued_total", "counter", "Certificates obtained from the CA since start.")
            for c in acme.certificates { sample("edgeproxy_acme_certificates_issued_total", [("name", c.name)], c.issued) }
            family("edgeproxy_acme_challenges_pending", "gauge", "Challenge answers being served now, by type.")
            sample("edgeproxy_acme_challenges_pending", [("type", "http-01")], acme.pendingHTTP01)
            sample("edgeproxy_acme_challenges_pending", [("type", "tls-alpn-01")], acme.pendingTLSALPN01)
            family("edgeproxy_acme_challenge_handshakes_total", "counter", "Handshakes answered with a TLS-ALPN-01 certificate.")
            sample("edgeproxy_acme_challenge_handshakes_total", [], m.acmeChallengeHandshakes.load(ordering: .relaxed))
        }
        family("edgeproxy_http_responses_total", "counter", "Responses by status class.")
        sample("edgeproxy_http_responses_total", [("class", "1xx")], m.responses1xx.load(ordering: .relaxed))
        sample("edgeproxy_http_responses_total", [("class", "2xx")], m.responses2xx.load(ordering: .relaxed))
        sample("edgeproxy_http_responses_total", [("class", "3xx")], m.responses3xx.load(ordering: .relaxed))
        sample("edgeproxy_http_responses_total", [("class", "4xx")], m.responses4xx.load(ordering: .relaxed))
        sample("edgeproxy_http_responses_total", [("class", "5xx")], m.responses5xx.load(ordering: .relaxed))
        family("edgeproxy_http_requests_total", "counter", "Requests answered, by the protocol the client spoke.")
        sample("edgeproxy_http_requests_total", [("protocol", "HTTP/1.1")], m.requestsHTTP1.load(ordering: .relaxed))
        sample("edgeproxy_http_requests_total", [("protocol", "HTTP/2")], m.requestsHTTP2.load(ordering: .relaxed))
        family("edgeproxy_upstream_errors_total", "counter", "Requests whose upstream failed (connect, reset, timeout).")
        sample("edgeproxy_upstream_errors_total", [], m.upstreamErrors.load(ordering: .relaxed))
        family("edgeproxy_open_connections", "gauge", "Client connections open now.")
        sample("edgeproxy_open_connections", [], m.openConnections.load(ordering: .relaxed))
        return out
    }

    static func escape(_ v: String) -> String {
        v.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "\"", with: "\\\"").replacingOccurrences(of: "\n", with: "\\n")
    }
}
