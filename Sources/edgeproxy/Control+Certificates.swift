import Admin
import Certificates
import Config
import EventLoop
import Foundation
import Logs
import Metrics
import Proxy

extension Control {
    /// Start-up: everything from disk (in parallel), then the first snapshot. With `deferBuild`,
    /// certificates the start-up index can read serve from it and OpenSSL builds them later
    /// (`startWarmUp`); `check` builds everything at once.
    func loadInitialCertificates(deferBuild: Bool) -> (count: Int, configured: Bool, refused: Int) {
        transaction.configure(defaultName: settings.tls.defaultName, strictSNI: settings.tls.strictSNI)
        let report = files.refreshAll(settings.tls, acme: settings.acme != nil, source: "startup", deferBuild: deferBuild)
        let configured = !settings.tls.certificates.isEmpty || settings.tls.certificateDirectory != nil
        return (transaction.read { $0.count }, configured, report.refused.count)
    }

    /// SIGHUP and `POST /reload`: configuration first (a bad one changes nothing), then every
    /// certificate source; unchanged files are recognised by their stamps and cost a stat(2).
    func reloadConfiguration(trigger: String) -> UpdateReport {
        // systemd hears of every reload (SIGHUP or the admin API), refused or not.
        notifier.reloading()
        defer { notifier.reloaded() }
        let new: Settings
        switch Self.loadSettings(configPath) {
        case .failure(let e):
            Log.error("reload refused, still running the previous configuration: \(e)")
            return UpdateReport(configError: "\(e)")
        case .success(let s): new = s
        }
        do { try UpstreamTLSContexts.shared.apply(new.upstreams) } catch {
            Log.error("reload refused, still running the previous configuration: \(error)")
            return UpdateReport(configError: "\(error)")
        }
        transaction.configure(defaultName: new.tls.defaultName, strictSNI: new.tls.strictSNI)
        let report = files.refreshAll(new.tls, acme: new.acme != nil, source: trigger)
        // A change that changed no certificate still takes the new default name and strict_sni.
        if report.applied + report.removed == 0
            && (new.tls.defaultName != settings.tls.defaultName || new.tls.strictSNI != settings.tls.strictSNI) {
            transaction.refreshSnapshot()
        }
        health.apply(new.upstreams)  // before the loops take the new upstreams
        UpstreamAddresses.shared.apply(new.upstreams)
        server?.apply(new)
        let directoryChanged = new.tls.certificateDirectory != settings.tls.certificateDirectory || new.tls.watch != settings.tls.watch
        reloadACME(settings.acme, new.acme)
        reloadOCSP(settings.tls, new.tls)
        settings = new
        if directoryChanged { files.startWatcher() }
        Log.info("reloaded \(configPath): \(transaction.read { $0.count }) certificate(s) (\(report.applied) new or changed, "
                 + "\(report.removed) removed, \(report.refused.count) refused), \(new.routes.count) route(s)")
        return report
    }

    // MARK: Admin API

    /// Throws when the admin listener cannot be bound (start-up fails, as for any listener).
    func startAdmin() throws(AdminError) {
        guard let admin = settings.admin else { return }
        let server = AdminServer(host: admin.listen.host, port: admin.listen.port, token: admin.token) { [unowned self] route, request in
            switch route {
            // Thread-safe state only, and never behind a reload or an etcd call on the control queue:
            // a load balancer's health check must not wait for etcd.
            case .health, .metrics, .clusterStatus, .upstreams, .traffic:
                return handleAdmin(route, request)
            // A request to the CA: never on the control queue. A renewal only wakes the manager.
            case .acmeRevoke, .acmeRenew:
                return handleAdmin(route, request)
            // With a cluster, uploads go to etcd and come back through the (thread-safe) transaction.
            case .putCertificate where cluster != nil, .deleteCertificate where cluster != nil:
                return handleAdmin(route, request)
            default:
                return queue.sync { handleAdmin(route, request) }
            }
        }
        try server.start()
        adminServer = server
        Log.info("admin API on \(admin.listen)\(admin.token == nil ? " (loopback clients only, no token)" : " (bearer token)")")
    }

    func handleAdmin(_ route: AdminRoute, _ request: AdminRequest) -> AdminResponse {
        switch route {
        case .health:
            // Serving never depends on etcd: still 200 during an outage, with the body saying so.
            if let status = cluster?.sync.status, !status.connected {
                return AdminResponse(status: 200, contentType: "text/plain; charset=utf-8",
                                     body: "ok (cluster: etcd unreachable: \(status.lastError ?? "connecting"); serving what this node has)\n")
            }
            return AdminResponse(status: 200, contentType: "text/plain; charset=utf-8", body: "ok\n")
        case .metrics:
            let expiry = transaction.read { catalog in
                catalog.items.map { id, item in
                    PrometheusText.CertificateExpiry(name: CertificateListing.displayName(id), serial: item.bundle.serialHex,
                                                     notAfter: item.bundle.notAfter)
                }
            }.sorted { $0.name < $1.name }
            return AdminResponse(status: 200, contentType: "text/plain; version=0.0.4; charset=utf-8",
                                 body: PrometheusText.render(Metrics.shared, certificates: expiry, acme: acmeMetrics, cluster: clusterMetrics,
                                                             upstreams: upstreamMetrics, ocsp: ocspMetrics))
        case .status:
            return statusResponse()
        case .showCertificate(let name):
            return showCertificate(name)
        case .listCertificates:
            let list = transaction.read { catalog in
                catalog.items.sorted { $0.key < $1.key }.map { CertificateListing.describe(id: $0.key, item: $0.value, ocsp: ocspListing($0.key)) }
            }
            return .json(list)
        case .putCertificate(let name):
            if let parts = cluster { return putClusterCertificate(parts, name, pem: request.body) }
            switch uploads.put(name, pem: request.body, directory: settings.tls.certificateDirectory) {
            case .failure(let e): return .error(e.status, e.reason)
            case .success(let id):
                guard let item = transaction.read({ $0.items[id] }) else { return .error(500, "not applied") }
                return .json(CertificateListing.describe(id: id, item: item))
            }
        case .deleteCertificate(let name):
            if let parts = cluster, let answer = deleteClusterCertificate(parts, name) { return answer }
            switch uploads.delete(name, directory: settings.tls.certificateDirectory) {
            case .failure(let e): return .error(e.status, e.reason)
            case .success: return .json(DeletedAnswer(deleted: name))
            }
        case .acmeStatus:
            return acmeStatusJSON()
        case .acmeRevoke(let name, let reason):
            return revokeACME(name, reason: reason)
        case .acmeRenew(let name):
            return renewACME(name)
        case .clusterStatus:
            return clusterStatusJSON()
        case .upstreams:
            return AdminResponse(status: 200, body: health.statusJSON())
        case .traffic:
            return .json(TrafficReport(Metrics.shared))
        case .reload:
            let report = reloadConfiguration(trigger: "api")
            return .json(ReloadAnswer(report), status: report.configError == nil ? 200 : 422)
        case .notFound:
            return .error(404, "no such route (try GET /status, GET /certificates, GET|PUT|DELETE /certificates/NAME, POST /reload, GET /acme, "
                          + "POST /acme/renew/NAME, POST /acme/revoke/NAME, GET /cluster, GET /upstreams, GET /traffic, GET /healthz, GET /metrics, "
                          + "GET /openapi.json, GET /dashboard)")
        case .openAPI, .dashboard, .dashboardLogin:
            return .error(500, "answered by the admin listener itself")  // AdminServer serves these without the handler
        case .methodNotAllowed(let allow):
            return .error(405, "method not allowed here; use \(allow)", headers: [("Allow", allow)])
        }
    }
}
