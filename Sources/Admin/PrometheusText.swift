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
        public var onDemand: OnDemand?
        /// Certificate events' deliveries (nil when `acme.events` is off).
        public var events: ACMEEvents?
        public init(certificates: [ACMECertificate], pendingHTTP01: Int, pendingTLSALPN01: Int, onDemand: OnDemand? = nil) {
            self.certificates = certificates; self.pendingHTTP01 = pendingHTTP01; self.pendingTLSALPN01 = pendingTLSALPN01
            self.onDemand = onDemand
        }
    }

    /// On-demand issuance's counters (nil when `acme.on_demand` is off).
    public struct OnDemand: Sendable {
        public var waiting: Int
        public var held: Int
        public var denied: Int
        public var rateLimited: Int
        public init(waiting: Int, held: Int, denied: Int, rateLimited: Int) {
            self.waiting = waiting; self.held = held; self.denied = denied; self.rateLimited = rateLimited
        }
    }

    /// Certificate events: deliveries queued now, and totals since start (per event and target).
    public struct ACMEEvents: Sendable {
        public var queued: Int
        public var delivered: Int
        public var failed: Int
        public var dropped: Int
        public var retries: Int
        public var claimedElsewhere: Int
        public init(queued: Int, delivered: Int, failed: Int, dropped: Int, retries: Int, claimedElsewhere: Int) {
            self.queued = queued; self.delivered = delivered; self.failed = failed; self.dropped = dropped; self.retries = retries
            self.claimedElsewhere = claimedElsewhere
        }
    }

    /// Validator handshakes held for a TLS-ALPN-01 answer this node did not hold yet (ALPNChallengeLookups).
    public struct ALPNLookups: Sendable {
        public var held: Int, found: Int, missed: Int, busy: Int
        public init(held: Int, found: Int, missed: Int, busy: Int) {
            self.held = held; self.found = found; self.missed = missed; self.busy = busy
        }
    }

    /// The cluster's part: nil on a single node (its families are left out).
    public struct Cluster: Sendable {
        public var connected: Bool
        public var revision: Int64
        /// Seconds from a record being stored to this node serving it, for the last one applied.
        public var lastLag: Double?
        public var certificates: Int
        public var refused: Int
        public var outages: Int
        public var locksAcquired: Int
        public var locksLost: Int
        public var requests: Int
        /// TLS-ALPN-01 answers looked up in etcd while a validator's handshake waited.
        public var alpnLookups: ALPNLookups
        public init(connected: Bool, revision: Int64, lastLag: Double?, certificates: Int, refused: Int, outages: Int,
                    locksAcquired: Int, locksLost: Int, requests: Int, alpnLookups: ALPNLookups) {
            self.connected = connected; self.revision = revision; self.lastLag = lastLag; self.certificates = certificates
            self.refused = refused; self.outages = outages; self.locksAcquired = locksAcquired; self.locksLost = locksLost
            self.requests = requests; self.alpnLookups = alpnLookups
        }
    }

    /// One upstream server: active health-check state and counters, requests from every loop.
    public struct UpstreamServer: Sendable {
        public var upstream: String
        public var server: String
        public var up: Bool
        /// nil when the upstream has no health_check (its check families leave the server out).
        public var checks: (passed: Int, failed: Int)?
        public var lastCheckSeconds: Double?
        public var requests: Int
        public init(upstream: String, server: String, up: Bool, checks: (passed: Int, failed: Int)?, lastCheckSeconds: Double?,
                    requests: Int) {
            self.upstream = upstream; self.server = server; self.up = up; self.checks = checks
            self.lastCheckSeconds = lastCheckSeconds; self.requests = requests
        }
    }

    /// OCSP stapling's part: nil when `tls.ocsp_stapling` is off (its families are left out).
    public struct OCSP: Sendable {
        /// Certificates with a responder by state: good, pending, failed, revoked, expired.
        public var staples: [String: Int]
        /// Responder answers by result: good, revoked, invalid, error.
        public var fetches: [String: Int]
        public init(staples: [String: Int], fetches: [String: Int]) { self.staples = staples; self.fetches = fetches }
    }

    public static func render(_ m: Metrics, certificates: [CertificateExpiry], acme: ACME? = nil, cluster: Cluster? = nil,
                              upstreams: [UpstreamServer] = [], ocsp: OCSP? = nil, now: Date = Date()) -> String {
        var out = ""
        let t = m.totals()
        func family(_ name: String, _ type: String, _ help: String) {
            out += "# HELP \(name) \(help)\n# TYPE \(name) \(type)\n"
        }
        func sample(_ name: String, _ labels: [(String, String)], _ value: Int) {
            let l = labels.isEmpty ? "" : "{" + labels.map { "\($0.0)=\"\(escape($0.1))\"" }.joined(separator: ",") + "}"
            out += "\(name)\(l) \(value)\n"
        }
        family("edgeproxy_tls_handshakes_total", "counter", "TLS handshakes by outcome and protocol version.")
        sample("edgeproxy_tls_handshakes_total", [("outcome", "ok"), ("version", "TLSv1.3")], t[.handshakesTLS13])
        sample("edgeproxy_tls_handshakes_total", [("outcome", "ok"), ("version", "TLSv1.2")], t[.handshakesTLS12])
        sample("edgeproxy_tls_handshakes_total", [("outcome", "failed"), ("version", "")], t[.handshakesFailed])
        sample("edgeproxy_tls_handshakes_total", [("outcome", "aborted"), ("version", "")], t[.handshakesAborted])
        family("edgeproxy_proxy_protocol_headers_total", "counter", "PROXY headers read, and connections closed for one, by outcome.")
        sample("edgeproxy_proxy_protocol_headers_total", [("outcome", "accepted")], t[.proxyHeadersAccepted])
        sample("edgeproxy_proxy_protocol_headers_total", [("outcome", "local")], t[.proxyHeadersLocal])
        sample("edgeproxy_proxy_protocol_headers_total", [("outcome", "untrusted")], t[.proxyHeadersUntrusted])
        sample("edgeproxy_proxy_protocol_headers_total", [("outcome", "invalid")], t[.proxyHeadersInvalid])
        family("edgeproxy_sni_total", "counter", "Certificate selections by how the SNI name matched.")
        sample("edgeproxy_sni_total", [("match", "exact")], t[.sniExact])
        sample("edgeproxy_sni_total", [("match", "wildcard")], t[.sniWildcard])
        sample("edgeproxy_sni_total", [("match", "default")], t[.sniDefault])
        sample("edgeproxy_sni_total", [("match", "rejected")], t[.sniRejected])
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
            sample("edgeproxy_acme_challenge_handshakes_total", [], t[.acmeChallengeHandshakes])
            if let o = acme.onDemand {
                family("edgeproxy_acme_on_demand_handshakes_waiting", "gauge", "Handshakes held now while their certificate is obtained.")
                sample("edgeproxy_acme_on_demand_handshakes_waiting", [], o.waiting)
                family("edgeproxy_acme_on_demand_handshakes_held_total", "counter", "Handshakes held for an on-demand certificate.")
                sample("edgeproxy_acme_on_demand_handshakes_held_total", [], o.held)
                family("edgeproxy_acme_on_demand_refusals_total", "counter", "Names not issued on demand, by reason.")
                sample("edgeproxy_acme_on_demand_refusals_total", [("reason", "ask")], o.denied)
                sample("edgeproxy_acme_on_demand_refusals_total", [("reason", "rate_limit")], o.rateLimited)
            }
            if let e = acme.events {
                family("edgeproxy_acme_events_queued", "gauge", "Certificate event deliveries waiting (new, or for a retry).")
                sample("edgeproxy_acme_events_queued", [], e.queued)
                family("edgeproxy_acme_events_total", "counter", "Certificate event deliveries by outcome.")
                sample("edgeproxy_acme_events_total", [("outcome", "delivered")], e.delivered)
                sample("edgeproxy_acme_events_total", [("outcome", "failed")], e.failed)
                sample("edgeproxy_acme_events_total", [("outcome", "dropped")], e.dropped)
                sample("edgeproxy_acme_events_total", [("outcome", "claimed_elsewhere")], e.claimedElsewhere)
                family("edgeproxy_acme_event_retries_total", "counter", "Certificate event deliveries retried after a failed attempt.")
                sample("edgeproxy_acme_event_retries_total", [], e.retries)
            }
        }
        if let c = cluster {
            family("edgeproxy_cluster_etcd_connected", "gauge", "1 while this node's watch on etcd is live, 0 during an outage.")
            sample("edgeproxy_cluster_etcd_connected", [], c.connected ? 1 : 0)
            family("edgeproxy_cluster_revision_applied", "gauge", "The etcd revision this node has applied everything up to.")
            out += "edgeproxy_cluster_revision_applied \(c.revision)\n"
            family("edgeproxy_cluster_watch_lag_seconds", "gauge", "From a record being stored to this node serving it (last record).")
            out += "edgeproxy_cluster_watch_lag_seconds \(c.lastLag.map { String(format: "%.3f", $0) } ?? "NaN")\n"
            family("edgeproxy_cluster_certificates", "gauge", "Certificates this node holds from the cluster.")
            sample("edgeproxy_cluster_certificates", [], c.certificates)
            family("edgeproxy_cluster_records_refused_total", "counter", "Cluster records refused (corrupt, wrong seal, key mismatch).")
            sample("edgeproxy_cluster_records_refused_total", [], c.refused)
            family("edgeproxy_cluster_etcd_outages_total", "counter", "Times the connection to etcd was lost.")
            sample("edgeproxy_cluster_etcd_outages_total", [], c.outages)
            family("edgeproxy_cluster_lock_acquisitions_total", "counter", "Issuance locks this node took.")
            sample("edgeproxy_cluster_lock_acquisitions_total", [], c.locksAcquired)
            family("edgeproxy_cluster_lock_losses_total", "counter", "Locks found expired when their result was to be stored.")
            sample("edgeproxy_cluster_lock_losses_total", [], c.locksLost)
            family("edgeproxy_cluster_etcd_requests_total", "counter", "Requests sent to etcd (every attempt, watches included).")
            sample("edgeproxy_cluster_etcd_requests_total", [], c.requests)
            family("edgeproxy_cluster_tls_alpn_holds_total", "counter",
                   "Validator handshakes held while a TLS-ALPN-01 answer this node lacked was looked up in etcd.")
            sample("edgeproxy_cluster_tls_alpn_holds_total", [], c.alpnLookups.held)
            family("edgeproxy_cluster_tls_alpn_lookups_total", "counter", "Those lookups by result (missed: nothing stored, or etcd failed).")
            sample("edgeproxy_cluster_tls_alpn_lookups_total", [("result", "found")], c.alpnLookups.found)
            sample("edgeproxy_cluster_tls_alpn_lookups_total", [("result", "missed")], c.alpnLookups.missed)
            family("edgeproxy_cluster_tls_alpn_lookups_refused_total", "counter",
                   "Handshakes not held because the most lookups at once were running (they got the ordinary certificate).")
            sample("edgeproxy_cluster_tls_alpn_lookups_refused_total", [], c.alpnLookups.busy)
        }
        func server(_ s: UpstreamServer) -> [(String, String)] { [("upstream", s.upstream), ("server", s.server)] }
        family("edgeproxy_upstream_server_up", "gauge", "1 while the server may get requests, 0 while it fails its health checks.")
        for s in upstreams { sample("edgeproxy_upstream_server_up", server(s), s.up ? 1 : 0) }
        family("edgeproxy_upstream_health_checks_total", "counter", "Active health checks by result.")
        for s in upstreams {
            guard let checks = s.checks else { continue }
            sample("edgeproxy_upstream_health_checks_total", server(s) + [("result", "passed")], checks.passed)
            sample("edgeproxy_upstream_health_checks_total", server(s) + [("result", "failed")], checks.failed)
        }
        family("edgeproxy_upstream_health_check_seconds", "gauge", "How long the last health check took.")
        for s in upstreams {
            guard let seconds = s.lastCheckSeconds else { continue }
            let l = server(s).map { "\($0.0)=\"\(escape($0.1))\"" }.joined(separator: ",")
            out += "edgeproxy_upstream_health_check_seconds{\(l)} \(String(format: "%.6f", seconds))\n"
        }
        family("edgeproxy_upstream_requests_total", "counter", "Requests sent to each server, from every event loop.")
        for s in upstreams { sample("edgeproxy_upstream_requests_total", server(s), s.requests) }
        if let o = ocsp {
            family("edgeproxy_ocsp_staples", "gauge", "Certificates naming an OCSP responder, by stapling state.")
            for state in ["good", "pending", "failed", "revoked", "expired"] { sample("edgeproxy_ocsp_staples", [("state", state)], o.staples[state] ?? 0) }
            family("edgeproxy_ocsp_fetches_total", "counter", "OCSP responder answers by result (invalid: refused by the checks).")
            for result in ["good", "revoked", "invalid", "error"] { sample("edgeproxy_ocsp_fetches_total", [("result", result)], o.fetches[result] ?? 0) }
        }
        family("edgeproxy_http_responses_total", "counter", "Responses by status class.")
        sample("edgeproxy_http_responses_total", [("class", "1xx")], t[.responses1xx])
        sample("edgeproxy_http_responses_total", [("class", "2xx")], t[.responses2xx])
        sample("edgeproxy_http_responses_total", [("class", "3xx")], t[.responses3xx])
        sample("edgeproxy_http_responses_total", [("class", "4xx")], t[.responses4xx])
        sample("edgeproxy_http_responses_total", [("class", "5xx")], t[.responses5xx])
        family("edgeproxy_http_requests_total", "counter", "Requests answered, by the protocol the client spoke.")
        sample("edgeproxy_http_requests_total", [("protocol", "HTTP/1.1")], t[.requestsHTTP1])
        sample("edgeproxy_http_requests_total", [("protocol", "HTTP/2")], t[.requestsHTTP2])
        family("edgeproxy_upstream_errors_total", "counter", "Requests whose upstream failed (connect, reset, timeout).")
        sample("edgeproxy_upstream_errors_total", [], t[.upstreamErrors])
        family("edgeproxy_access_log_dropped_total", "counter", "Access-log lines dropped because the log writer fell behind.")
        sample("edgeproxy_access_log_dropped_total", [], t[.accessLogDropped])
        family("edgeproxy_open_connections", "gauge", "Client connections open now.")
        sample("edgeproxy_open_connections", [], t[.openConnections])
        return out
    }

    static func escape(_ v: String) -> String {
        v.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "\"", with: "\\\"").replacingOccurrences(of: "\n", with: "\\n")
    }
}
