import ACME
import Certificates
import Config
import DNS
import EventLoop
import Foundation
import Logs
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
        guard let (manager, http, alpn) = acme else { return .error(404, "ACME is off (no acme section in the configuration)") }
        let cas = settings.acme?.issuers.map(\.directory) ?? []
        func ca(_ index: Int?) -> String? { index.flatMap { cas.indices.contains($0) ? cas[$0] : nil } }
        let certificates = manager.statuses.map { s in
            let problem = s.lastProblem.map { p in
                ACMEReport.Problem(type: p.type ?? "", detail: p.detail ?? "", subproblems: (p.subproblems ?? []).map {
                    ACMEReport.Problem.Subproblem(type: $0.type ?? "", detail: $0.detail ?? "", identifier: $0.identifier?.value ?? "")
                })
            }
            return ACMEReport.Certificate(
                name: s.names[0], names: s.names, profile: settings.acme?.profile(for: s.names[0], issuer: s.issuer), issuer: ca(s.issuer) ?? "",
                issuedBy: ca(s.issuedBy), serial: s.serial, notAfter: s.notAfter, renewAt: s.renewAt,
                ariWindow: s.ariWindow.map { ACMEReport.Window(start: $0.start, end: $0.end) }, nextAttempt: s.nextAttempt,
                failures: s.failures, issued: s.issued, lastIssued: s.lastIssued, lastError: s.lastError, lastProblem: problem)
        }
        let onDemand = onDemand.map { o in
            let s = o.status
            return ACMEReport.OnDemand(waiting: s.waiting, lookingUp: s.lookingUp, held: s.held, denied: s.denied, rateLimited: s.rateLimited,
                                       refusedBusy: s.busy, startedInInterval: s.startsInInterval)
        }
        let dns = dns01.map { provider, activity in
            let c = activity.current
            return ACMEReport.DNS(provider: provider, recordsPresent: c.present, presented: c.presented, failed: c.failed,
                                  lastPropagationSeconds: c.lastPropagationSeconds.map(Self.milliseconds), lastError: c.lastError)
        }
        let events = manager.eventDelivery.map { e in
            let s = e.status
            return ACMEReport.Events(queued: s.queued, delivered: s.delivered, failed: s.failed, dropped: s.dropped, retries: s.retries,
                                     claimedElsewhere: s.claimedElsewhere, lastError: s.lastError, lastErrorAt: s.lastErrorAt)
        }
        return .json(ACMEReport(certificates: certificates, pendingChallenges: ACMEReport.Pending(http01: http.count, tlsALPN01: alpn.count),
                                onDemand: onDemand, dns: dns, events: events))
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
            return .json(RevokedAnswer(revoked: serial, name: name, reason: reason.name))
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
        return .json(RenewingAnswer(renewing: name, serial: status.serial), status: 202)
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
}
