import ACME
import Certificates
import Config
import DNS
import EventLoop
import Foundation
import Metrics
import Admin
import TLS

/// ACME: the manager obtains and renews on its own thread; each certificate it hands over enters
/// the store through the transaction (`submit`), like every other source (id "acme:NAME", origin "acme").
extension Control {
    /// Before the first snapshot: build the manager (no request to the CA yet) and serve what
    /// storage already holds. Throws when the ACME settings cannot be used (start-up fails).
    func prepareACME(http: ChallengeTable, alpn: ALPNChallengeTable) throws {
        guard let a = settings.acme else { return }
        let configurations = try a.issuers.map { ca in
            var configuration = IssuerConfiguration(directoryURL: ca.directory, trustRootsPEMFile: ca.caRoot)
            configuration.contact = a.email.map { ["mailto:" + $0] } ?? []
            if let eab = ca.eab {
                guard let binding = ExternalAccountBinding(keyID: eab.keyID, base64URLMACKey: eab.hmacKey) else {
                    throw ACMEError(.protocolViolation, "the eab.hmac_key of \(ca.directory) is not valid base64url")
                }
                configuration.externalAccountBinding = binding
            }
            configuration.challengeTypes = ca.challenges
            configuration.requestTimeout = a.requestTimeout
            return configuration
        }
        // With a cluster, ACME's state is the fleet's (etcd): one account, one order per name,
        // challenges any node answers. The manager's install then only validates: the record it
        // stored reaches this node's store through the cluster sync, in revision order.
        let shared: ACMEStorage? = cluster?.storage
        let storage = shared ?? FileStorage(root: a.storage)
        var solvers: [ChallengeSolver] = [HTTP01Solver(table: http, storage: shared), TLSALPN01Solver(table: alpn, storage: shared)]
        if let dns = a.dns {
            let solver = DNS01Solver(configuration: try Self.dns01Configuration(dns))
            solvers.append(solver)
            dns01 = (dns.provider, solver.activity)
        }
        // Per concurrent order, one issuer per CA, each with its own connection to it.
        let workers = try (0..<ACMEManager.defaultConcurrency).map { _ in
            try configurations.map { try Issuer(configuration: $0, storage: storage, solvers: solvers) }
        }
        // Called at start on this thread (the queue is idle and the store not built yet), later
        // from the manager thread.
        let manager = ACMEManager(workers: workers, schedule: a) { [transaction, clustered = shared != nil] certificate in
            if clustered {
                _ = try certificate.bundle(source: "acme:\(certificate.primaryName)")
            } else {
                try Self.installACME(certificate, into: transaction)
            }
        }
        acme = (manager, http, alpn)
        if let settings = a.events {
            // Its own thread, idle until the manager emits; claims go through the same storage as the orders.
            let events = CertificateEvents(settings: settings, storage: storage, node: self.settings.cluster?.node ?? ClusterSettings.hostNodeName)
            manager.deliverEvents(to: events)
            events.start()
        }
        if let settings = a.onDemand {
            let onDemand = OnDemandIssuance(settings: settings, manager: manager, storage: storage)
            self.onDemand = onDemand
            transaction.onSwap { onDemand.swapped($0) }
            if shared == nil { onDemand.resumeStoredNames() }
        }
        // Shared storage: the local cache and the cluster sync install what etcd holds, without a
        // request to etcd per name before the listeners open.
        if shared == nil { manager.installStored() }
    }

    /// Names issued on demand by any node are managed here too: looked for at start (a cluster
    /// reads etcd here, off the start-up path) and every check interval after.
    func startOnDemand(store: CertificateStore) {
        guard let onDemand, let interval = settings.acme?.renewal.checkInterval else { return }
        onDemand.attach(store)
        @Sendable func look(after delay: Double) {
            DispatchQueue.global().asyncAfter(deadline: .now() + delay) {
                onDemand.resumeStoredNames()
                look(after: interval)
            }
        }
        look(after: cluster != nil ? 0 : interval)
    }

    /// `acme.dns` as the DNS-01 solver's configuration (the secret was checked as base64 when read).
    static func dns01Configuration(_ dns: ACMEDNSSettings) throws -> DNS01Configuration {
        var configuration: DNS01Configuration
        if let command = dns.command {
            configuration = DNS01Configuration(command: command, timeout: dns.commandTimeout)
        } else if let server = dns.server, let keyName = dns.keyName, let secret = dns.keySecret {
            configuration = DNS01Configuration(server: server.host, port: Int(server.port), key: try TSIGKey(name: keyName, base64Secret: secret))
        } else {
            throw ACMEError(.dns, "acme.dns has neither a command nor a server and key")  // the config reader guarantees one
        }
        configuration.zone = dns.zone
        configuration.ttl = UInt32(dns.ttl.rounded())
        configuration.propagationTimeout = dns.propagationTimeout
        configuration.checkServers = dns.checkServers.map { ($0.host, Int($0.port)) }
        return configuration
    }

    /// Validates the certificate, then submits it (any thread).
    static func installACME(_ certificate: StoredCertificate, into transaction: CertificateTransaction) throws {
        let bundle = try certificate.bundle(source: "acme:\(certificate.primaryName)")
        let report = transaction.submit(CertificateChange(upserts: [(id: "acme:\(certificate.primaryName)", bundle: bundle, origin: "acme")],
                                                          source: "acme"))
        if let error = report.configError { throw CertificateError(source: bundle.source, reason: error) }
    }

    /// SIGHUP: names and renewal settings apply at once (certificates no longer listed leave the
    /// store); the CA, account and storage on restart.
    func reloadACME(_ old: ACMESettings?, _ new: ACMESettings?) {
        guard old != new else { return }
        guard let manager = acme?.manager, let old, let new else {
            Log.warning("acme was \(old == nil ? "added" : "removed"): that takes a restart; ACME carries on as before")
            return
        }
        var unchanged = old
        unchanged.certificates = new.certificates
        unchanged.renewal = new.renewal
        if unchanged != new {
            Log.warning("acme directory, account, challenge and storage settings change on restart only; names and renewal settings were applied")
        }
        manager.update(new)
        // Names added on demand stay managed, so they stay in the store too.
        let kept = Set(manager.statuses.map { "acme:\($0.names[0])" })
        let dropped = transaction.read { $0.items.keys.filter { $0.hasPrefix("acme:") && !kept.contains($0) } }
        if !dropped.isEmpty {
            transaction.submit(CertificateChange(removals: dropped, source: "acme"))
            Log.info("ACME: no longer managed, removed from the store: \(dropped.map { String($0.dropFirst(5)) }.sorted().joined(separator: ", "))")
        }
    }

    func acmeStatusJSON() -> AdminResponse {
        guard let manager = acme?.manager else { return .error(404, "ACME is off (no acme section in the configuration)") }
        let iso = ISO8601DateFormatter()
        func date(_ d: Date?) -> String { d.map { "\"\(iso.string(from: $0))\"" } ?? "null" }
        let items = manager.statuses.map { s -> String in
            let names = s.names.map(JSON.string).joined(separator: ",")
            var problem = "null"
            if let p = s.lastProblem {
                let subs = (p.subproblems ?? []).map { sub in
                    "{\"type\":\(JSON.string(sub.type ?? "")),\"detail\":\(JSON.string(sub.detail ?? "")),"
                        + "\"identifier\":\(JSON.string(sub.identifier?.value ?? ""))}"
                }.joined(separator: ",")
                problem = "{\"type\":\(JSON.string(p.type ?? "")),\"detail\":\(JSON.string(p.detail ?? "")),\"subproblems\":[\(subs)]}"
            }
            let window = s.ariWindow.map { "{\"start\":\(date($0.start)),\"end\":\(date($0.end))}" } ?? "null"
            let profile = settings.acme?.profile(for: s.names[0], issuer: s.issuer).map(JSON.string) ?? "null"
            let cas = settings.acme?.issuers.map(\.directory) ?? []
            let issuedBy = s.issuedBy.flatMap { cas.indices.contains($0) ? JSON.string(cas[$0]) : nil } ?? "null"
            return "{\"name\":\(JSON.string(s.names[0])),\"names\":[\(names)],\"profile\":\(profile),"
                + "\"issuer\":\(JSON.string(cas.indices.contains(s.issuer) ? cas[s.issuer] : "")),\"issued_by\":\(issuedBy),\"serial\":\(s.serial.map(JSON.string) ?? "null"),"
                + "\"not_after\":\(date(s.notAfter)),\"renew_at\":\(date(s.renewAt)),\"ari_window\":\(window),"
                + "\"next_attempt\":\(date(s.nextAttempt)),\"failures\":\(s.failures),\"issued\":\(s.issued),"
                + "\"last_issued\":\(date(s.lastIssued)),\"last_error\":\(s.lastError.map(JSON.string) ?? "null"),\"last_problem\":\(problem)}"
        }
        let pending = "{\"http-01\":\(acme!.http.count),\"tls-alpn-01\":\(acme!.alpn.count)}"
        var onDemandJSON = "null"
        if let o = onDemand?.status {
            onDemandJSON = "{\"waiting\":\(o.waiting),\"looking_up\":[\(o.lookingUp.map(JSON.string).joined(separator: ","))],"
                + "\"held\":\(o.held),\"denied\":\(o.denied),\"rate_limited\":\(o.rateLimited),\"refused_busy\":\(o.busy),"
                + "\"started_in_interval\":\(o.startsInInterval)}"
        }
        var dnsJSON = "null"
        if let (provider, activity) = dns01 {
            let c = activity.current
            dnsJSON = "{\"provider\":\(JSON.string(provider)),\"records_present\":\(c.present),\"presented\":\(c.presented),"
                + "\"failed\":\(c.failed),\"last_propagation_seconds\":\(c.lastPropagationSeconds.map { String(format: "%.3f", $0) } ?? "null"),"
                + "\"last_error\":\(c.lastError.map(JSON.string) ?? "null")}"
        }
        return AdminResponse(status: 200, body: "{\"certificates\":[" + items.joined(separator: ",\n") + "],\"pending_challenges\":\(pending),"
                             + "\"on_demand\":\(onDemandJSON),\"dns\":\(dnsJSON),\"events\":\(Self.eventsJSON(manager.eventDelivery?.status))}\n")
    }

    /// `POST /acme/revoke/NAME?reason=R`: revoked at the CA, replaced at once (on the manager's threads).
    func revokeACME(_ name: String, reason: String?) -> AdminResponse {
        guard let manager = acme?.manager else { return .error(404, "ACME is off (no acme section in the configuration)") }
        guard let reason = reason.map(RevocationReason.init(name:)) ?? .unspecified else {
            let names = RevocationReason.allCases.map(\.name).joined(separator: ", ")
            return .error(400, "unknown revocation reason; use one of \(names) (RFC 5280 §5.3.1)")
        }
        guard manager.status(of: name) != nil else {
            return .error(404, "\(name) is not managed by ACME here (GET /acme lists the names)")
        }
        do {
            let serial = try manager.revoke(name, reason: reason)
            return AdminResponse(status: 200, body: "{\"revoked\":\(JSON.string(serial)),\"name\":\(JSON.string(name)),"
                                 + "\"reason\":\(JSON.string(reason.name)),\"replacement\":\"being obtained\"}\n")
        } catch {
            Log.error("ACME: revoking \(name) failed: \(error)")
            return .error(502, "revoking \(name) failed: \(error); the certificate still serves")
        }
    }

    /// `POST /acme/renew/NAME`: a new certificate now, on the manager's threads; answers at once.
    func renewACME(_ name: String) -> AdminResponse {
        guard let manager = acme?.manager else { return .error(404, "ACME is off (no acme section in the configuration)") }
        guard let status = manager.renew(name) else {
            return .error(404, "\(name) is not managed by ACME here (GET /acme lists the names)")
        }
        return AdminResponse(status: 202, body: "{\"renewing\":\(JSON.string(name)),\"serial\":\(JSON.string(status.serial))}\n")
    }

    var acmeMetrics: PrometheusText.ACME? {
        guard let (manager, http, alpn) = acme else { return nil }
        var metrics = PrometheusText.ACME(certificates: manager.statuses.map {
            PrometheusText.ACMECertificate(name: $0.names[0], nextAttempt: $0.nextAttempt, failures: $0.failures, issued: $0.issued)
        }, pendingHTTP01: http.count, pendingTLSALPN01: alpn.count, onDemand: onDemand.map { o in
            let s = o.status
            return PrometheusText.OnDemand(waiting: s.waiting, held: s.held, denied: s.denied, rateLimited: s.rateLimited)
        })
        metrics.events = manager.eventDelivery.map { e in
            let s = e.status
            return PrometheusText.ACMEEvents(queued: s.queued, delivered: s.delivered, failed: s.failed, dropped: s.dropped,
                                             retries: s.retries, claimedElsewhere: s.claimedElsewhere)
        }
        return metrics
    }

    /// `acme.events`' counters for `GET /acme` (null when no events are configured).
    static func eventsJSON(_ status: CertificateEvents.Status?) -> String {
        let encoder = JSONEncoder()
        encoder.dateEncodingStrategy = .iso8601
        return status.flatMap { try? encoder.encode($0) }.map { String(decoding: $0, as: UTF8.self) } ?? "null"
    }
}
