import Certificates
import CSystem
import Config
import EventLoop
import Foundation
import Glibc
import Metrics
import Reload
import TLS

/// Where certificates come from and what was loaded from each; touched on the control queue only.
final class CertificateSources {
    let catalog = CertificateCatalog()
    let files = CertificateFileSet()
    var watcher: DirectoryWatcher?
    var admin: AdminServer?
    var selfSigned: (names: [String], bundle: CertificateBundle)?
}

/// The outcome of one update, for the log and the admin API.
struct UpdateReport {
    var applied = 0
    var removed = 0
    var unchanged = 0
    var refused: [CertificateError] = []
    var configError: String?

    var json: String {
        let refusals = refused.map { "{\"source\":\(JSON.string($0.source)),\"reason\":\(JSON.string($0.reason))}" }
        return "{\"applied\":\(applied),\"removed\":\(removed),\"unchanged\":\(unchanged),\"refused\":[\(refusals.joined(separator: ","))]"
            + (configError.map { ",\"error\":\(JSON.string($0))" } ?? "") + "}\n"
    }
}

extension Control {
    /// Start-up: everything from disk (in parallel), then the first snapshot. With `deferBuild`,
    /// certificates the start-up index can read serve from it and OpenSSL builds them later
    /// (`startWarmUp`); `check` builds everything at once.
    func loadInitialCertificates(deferBuild: Bool) -> (snapshot: Snapshot, count: Int, configured: Bool, refused: Int) {
        let report = refreshAll(settings, source: "startup", swap: false, deferBuild: deferBuild)
        let configured = !settings.tls.certificates.isEmpty || settings.tls.certificateDirectory != nil
        return (makeCatalogSnapshot(settings), certificates.catalog.count, configured, report.refused.count)
    }

    func makeCatalogSnapshot(_ s: Settings) -> Snapshot {
        let snapshot = certificates.catalog.snapshot(defaultName: s.tls.defaultName)
        if !snapshot.defaultFound {
            Log.warning("tls.default names \"\(s.tls.defaultName ?? "")\", which no certificate carries; another certificate answers instead")
        }
        return snapshot
    }

    /// SIGHUP and `POST /reload`: configuration first (a bad one changes nothing), then every
    /// certificate source; unchanged files are recognised by their stamps and cost a stat(2).
    func reloadConfiguration(trigger: String) -> UpdateReport {
        let new: Settings
        switch Self.loadSettings(configPath) {
        case .failure(let e):
            Log.error("reload refused, still running the previous configuration: \(e)")
            var r = UpdateReport()
            r.configError = "\(e)"
            return r
        case .success(let s): new = s
        }
        let report = refreshAll(new, source: trigger, swap: true)
        server?.apply(new)
        let directoryChanged = new.tls.certificateDirectory != settings.tls.certificateDirectory || new.tls.watch != settings.tls.watch
        reloadACME(settings.acme, new.acme)
        settings = new
        if directoryChanged { startWatcher() }
        Log.info("reloaded \(configPath): \(certificates.catalog.count) certificate(s) (\(report.applied) new or changed, "
                 + "\(report.removed) removed, \(report.refused.count) refused), \(new.routes.count) route(s)")
        return report
    }

    /// Configured files, the whole directory and the self-signed fallback.
    func refreshAll(_ s: Settings, source: String, swap: Bool, deferBuild: Bool = false) -> UpdateReport {
        let files = certificates.files
        var pairs = s.tls.certificates.map { CertificateFileSet.Pair(id: "file:" + $0.cert, cert: $0.cert, key: $0.key) }
        var result = files.refresh(pairs, complete: { $0.hasPrefix("file:") }, deferBuild: deferBuild)
        pairs = s.tls.certificateDirectory.map { CertificateFileSet.directoryPairs($0).pairs } ?? []
        if let dir = s.tls.certificateDirectory, (try? FileManager.default.contentsOfDirectory(atPath: dir)) == nil {
            result.refused.append(CertificateError(source: dir, reason: "cannot read the directory"))
        }
        let dirResult = files.refresh(pairs, complete: { $0.hasPrefix("dir:") }, deferBuild: deferBuild)
        result.upserts += dirResult.upserts
        result.removals += dirResult.removals
        result.refused += dirResult.refused
        result.unchanged += dirResult.unchanged

        var upserts = result.upserts.map { (id: $0.id, bundle: $0.bundle, origin: $0.id.hasPrefix("dir:") ? "directory" : "file") }
        var removals = result.removals
        // The self-signed fallback serves when no certificate is configured and, with ACME on, until
        // anything else has loaded (a first start with an empty certificate directory).
        let configured = !s.tls.certificates.isEmpty || s.tls.certificateDirectory != nil
        let others = certificates.catalog.countAfter(upserts: upserts.map(\.id), removals: removals + ["self-signed"])
        if configured && (s.acme == nil || others > 0) {
            if certificates.catalog.items["self-signed"] != nil { removals.append("self-signed") }
        } else if certificates.catalog.items["self-signed"] == nil || certificates.selfSigned?.names != s.tls.selfSignedNames {
            do {
                let b = try certificates.selfSigned.flatMap { $0.names == s.tls.selfSignedNames ? $0.bundle : nil }
                    ?? CertificateLoader.selfSigned(names: s.tls.selfSignedNames)
                certificates.selfSigned = (s.tls.selfSignedNames, b)
                upserts.append((id: "self-signed", bundle: b, origin: "self-signed"))
                Log.info("\(configured ? "no certificate loaded yet" : "no certificate configured"): serving a self-signed "
                         + "P-256 certificate for \(s.tls.selfSignedNames.joined(separator: ", "))")
            } catch { Log.error("\(error)") }
        }
        return commit(upserts: upserts, removals: removals, refused: result.refused, unchanged: result.unchanged,
                      source: source, settings: s, swap: swap)
    }

    /// The watcher's batch: only the base names it reported (nil: everything).
    ///
    /// A certificate and its key are two files written one after the other; on a busy machine the
    /// gap can outlast the debounce, and the first file alone does not validate. So a refusal of
    /// files written within the last second is held back and looked at again every 300 ms: it is
    /// reported once its files have been left alone for a second (`heldBack` carries it along).
    func directoryChanged(_ bases: Set<String>?, heldBack: [CertificateError] = []) {
        guard let dir = settings.tls.certificateDirectory else { return }
        let (pairs, gone) = CertificateFileSet.directoryPairs(dir, bases: bases)
        let result = certificates.files.refresh(pairs, gone: gone, complete: bases == nil ? { $0.hasPrefix("dir:") } : nil)
        // Held-back refusals whose files did not change since (neither loaded nor refused anew).
        var refused = result.refused + heldBack.filter { e in
            !result.upserts.contains { $0.bundle.source == e.source } && !result.refused.contains { $0.source == e.source }
        }
        let fresh = refused.filter { Self.writtenRecently($0.source) }
        if !fresh.isEmpty {
            refused.removeAll { e in fresh.contains { $0.source == e.source } }
            let again = Set(fresh.compactMap { CertificateFileSet.baseName(ofEvent: ($0.source as NSString).lastPathComponent) })
            queue.asyncAfter(deadline: .now() + 0.3) { [unowned self] in directoryChanged(again, heldBack: fresh) }
        }
        guard !result.upserts.isEmpty || !result.removals.isEmpty || !refused.isEmpty else { return }
        _ = commit(upserts: result.upserts.map { (id: $0.id, bundle: $0.bundle, origin: "directory") }, removals: result.removals,
                   refused: refused, unchanged: result.unchanged, source: "file", settings: settings, swap: true)
    }

    /// Modified within the last second (or its `.key` partner was).
    static func writtenRecently(_ path: String) -> Bool {
        let now = Date().timeIntervalSince1970
        let partner = path.hasSuffix(".crt") ? String(path.dropLast(4)) + ".key" : path
        return [path, partner].contains { p in
            guard let st = FileStamp.of(p) else { return false }
            return now - (Double(st.mtimeSeconds) + Double(st.mtimeNanoseconds) / 1e9) < 1
        }
    }

    /// The transaction's last step: everything is validated and built; apply to the catalog and
    /// swap the snapshot in one store. Refused certificates leave their previous version serving.
    func commit(upserts: [(id: String, bundle: CertificateBundle, origin: String)], removals: [String],
                refused: [CertificateError], unchanged: Int, source: String, settings s: Settings, swap: Bool) -> UpdateReport {
        var report = UpdateReport(applied: upserts.count, removed: removals.count, unchanged: unchanged, refused: refused)
        for e in refused { Log.error("certificate refused: \(e) (anything it would have replaced keeps serving)") }
        for u in upserts {
            for w in u.bundle.warnings { Log.warning("certificate \(u.bundle.source): \(w)") }
            Log.debug("certificate \(u.bundle.names.joined(separator: ",")) (\(u.bundle.keyType)) from \(u.bundle.source)")
        }
        Metrics.shared.certificateUpdate(source: source, applied: upserts.count + removals.count, refused: refused.count)
        if certificates.catalog.countAfter(upserts: upserts.map(\.id), removals: removals) == 0 && swap {
            Log.error("update refused: it would leave no certificate at all; keeping the current certificates")
            report.applied = 0; report.removed = 0
            report.configError = "the update would leave no certificate; nothing changed"
            return report
        }
        guard !upserts.isEmpty || !removals.isEmpty || !swap else { return report }
        certificates.catalog.apply(upserts: upserts, removals: removals)
        if swap { store?.replace(with: makeCatalogSnapshot(s), strictSNI: s.tls.strictSNI) }
        // The replaced certificates were freed with the old snapshot. After a large batch, hand
        // their free pages back: without it, repeated replace-alls kept growing the heap
        // (10,000 certificates, three replace-alls: 263 MiB, with it 185 MiB).
        if upserts.count + removals.count >= 1000 { malloc_trim(0) }
        return report
    }

    // MARK: Watcher and admin API

    func startWatcher() {
        certificates.watcher?.stop()
        certificates.watcher = nil
        guard settings.tls.watch, let dir = settings.tls.certificateDirectory else { return }
        let watcher = DirectoryWatcher(directory: dir, queue: queue) { [unowned self] bases in directoryChanged(bases) }
        do {
            try watcher.start()
            certificates.watcher = watcher
            Log.info("watching \(dir) for certificate changes")
        } catch {
            Log.error("\(error); certificate changes there apply on SIGHUP only")
        }
    }

    /// Throws when the admin listener cannot be bound (start-up fails, as for any listener).
    func startAdmin() throws(WatchError) {
        guard let admin = settings.admin else { return }
        let server = AdminServer(host: admin.listen.host, port: admin.listen.port, token: admin.token) { [unowned self] route, request in
            queue.sync { handleAdmin(route, request) }
        }
        try server.start()
        certificates.admin = server
        Log.info("admin API on \(admin.listen)\(admin.token == nil ? " (loopback clients only, no token)" : " (bearer token)")")
    }

    func handleAdmin(_ route: AdminRoute, _ request: AdminRequest) -> AdminResponse {
        switch route {
        case .health:
            return AdminResponse(status: 200, contentType: "text/plain; charset=utf-8", body: "ok\n")
        case .metrics:
            let expiry = certificates.catalog.items.map { id, item in
                PrometheusText.CertificateExpiry(name: Self.displayName(id), serial: item.bundle.serialHex, notAfter: item.bundle.notAfter)
            }.sorted { $0.name < $1.name }
            return AdminResponse(status: 200, contentType: "text/plain; version=0.0.4; charset=utf-8",
                                 body: PrometheusText.render(Metrics.shared, certificates: expiry, acme: acmeMetrics))
        case .listCertificates:
            let list = certificates.catalog.items.sorted { $0.key < $1.key }.map { Self.describe(id: $0.key, item: $0.value) }
            return AdminResponse(status: 200, body: "[" + list.joined(separator: ",\n") + "]\n")
        case .putCertificate(let name):
            return putCertificate(name, pem: request.body)
        case .deleteCertificate(let name):
            return deleteCertificate(name)
        case .acmeStatus:
            return acmeStatusJSON()
        case .reload:
            let report = reloadConfiguration(trigger: "api")
            return AdminResponse(status: report.configError == nil ? 200 : 422, body: report.json)
        case .notFound:
            return .error(404, "no such route (try GET /certificates, PUT|DELETE /certificates/NAME, POST /reload, GET /acme, GET /healthz, GET /metrics)")
        case .methodNotAllowed(let allow):
            return .error(405, "method not allowed here; use \(allow)", headers: [("Allow", allow)])
        }
    }

    /// `PUT /certificates/NAME`: body = PEM chain (leaf first) + private key. Validated and built
    /// here; persisted to the certificate directory when there is one (key file mode 0600).
    func putCertificate(_ name: String, pem: [UInt8]) -> AdminResponse {
        let bundle: CertificateBundle
        do {
            bundle = try CertificateLoader.bundle(chainPEM: pem, keyPEM: pem, source: "api:\(name)")
        } catch {
            Log.error("certificate refused: \(error)")
            Metrics.shared.certificateUpdate(source: "api", applied: 0, refused: 1)
            return .error(422, "\(error.reason); the previous certificate for this name keeps serving")
        }
        var id = "api:\(name)"
        var removals: [String] = []
        if let dir = settings.tls.certificateDirectory {
            do {
                let pair = try persist(name, pem: pem, in: dir)
                certificates.files.adopt(pair, bundle: bundle)
                if certificates.catalog.items[id] != nil { removals.append(id) }
                id = pair.id
            } catch {
                return .error(500, "\(error); nothing changed")
            }
        }
        let report = commit(upserts: [(id: id, bundle: bundle, origin: "api")], removals: removals, refused: [], unchanged: 0,
                            source: "api", settings: settings, swap: true)
        Log.info("certificate \(name) (\(bundle.names.joined(separator: ","))) installed through the admin API")
        guard report.configError == nil, let item = certificates.catalog.items[id] else { return .error(500, report.configError ?? "not applied") }
        return AdminResponse(status: 200, body: Self.describe(id: id, item: item) + "\n")
    }

    func deleteCertificate(_ name: String) -> AdminResponse {
        var ids = ["api:\(name)"]
        var paths: [String] = []
        if let dir = settings.tls.certificateDirectory {
            let base = (dir as NSString).appendingPathComponent(name)
            ids += ["dir:\(base).crt", "dir:\(base).pem"]
            paths = ["\(base).crt", "\(base).key", "\(base).pem"]
        }
        let present = ids.filter { certificates.catalog.items[$0] != nil }
        guard !present.isEmpty else { return .error(404, "no certificate named \(name) from the directory or the API") }
        guard certificates.catalog.countAfter(upserts: [], removals: present) > 0 else {
            return .error(409, "\(name) is the last certificate; install another one first")
        }
        for p in paths { unlink(p) }
        for id in present { certificates.files.forget(id) }
        _ = commit(upserts: [], removals: present, refused: [], unchanged: 0, source: "api", settings: settings, swap: true)
        Log.info("certificate \(name) deleted through the admin API")
        return AdminResponse(status: 200, body: "{\"deleted\":\(JSON.string(name))}\n")
    }

    /// Writes NAME.crt + NAME.key when the directory already holds that pair, NAME.pem otherwise;
    /// each through a hidden temporary file and rename(2), so the watcher never sees half a file.
    func persist(_ name: String, pem: [UInt8], in dir: String) throws(WatchError) -> CertificateFileSet.Pair {
        let base = (dir as NSString).appendingPathComponent(name)
        if FileManager.default.fileExists(atPath: base + ".crt") {
            let (certs, keys) = Self.splitPEM(pem)
            try Self.writeAtomically(keys, to: base + ".key", mode: 0o600)
            try Self.writeAtomically(certs, to: base + ".crt", mode: 0o644)
            return CertificateFileSet.Pair(id: "dir:\(base).crt", cert: base + ".crt", key: base + ".key")
        }
        try Self.writeAtomically(pem, to: base + ".pem", mode: 0o600)
        return CertificateFileSet.Pair(id: "dir:\(base).pem", cert: base + ".pem", key: base + ".pem")
    }

    static func writeAtomically(_ bytes: [UInt8], to path: String, mode: mode_t) throws(WatchError) {
        let dir = (path as NSString).deletingLastPathComponent
        let tmp = (dir as NSString).appendingPathComponent(".\((path as NSString).lastPathComponent).tmp")
        let fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode)
        guard fd >= 0 else { throw WatchError("cannot write \(tmp): \(String(cString: strerror(errno))) (check the directory's permissions)") }
        fchmod(fd, mode)
        let ok = bytes.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) } == bytes.count && fsync(fd) == 0
        close(fd)
        guard ok, rename(tmp, path) == 0 else {
            unlink(tmp)
            throw WatchError("cannot write \(path): \(String(cString: strerror(errno)))")
        }
    }

    /// CERTIFICATE blocks (in order) apart from the rest (the key).
    static func splitPEM(_ pem: [UInt8]) -> (certificates: [UInt8], key: [UInt8]) {
        let text = String(decoding: pem, as: UTF8.self)
        var certs = "", key = ""
        for block in text.components(separatedBy: "-----BEGIN ").dropFirst() {
            guard let end = block.range(of: "-----END ") , let close = block[end.upperBound...].range(of: "-----") else { continue }
            let whole = "-----BEGIN " + block[..<close.upperBound] + "\n"
            if block.hasPrefix("CERTIFICATE-----") { certs += whole } else { key += whole }
        }
        return (Array(certs.utf8), Array(key.utf8))
    }

    static func displayName(_ id: String) -> String {
        guard let colon = id.firstIndex(of: ":") else { return id }
        let rest = String(id[id.index(after: colon)...])
        if id.hasPrefix("api:") { return rest }
        var file = (rest as NSString).lastPathComponent
        for suffix in [".crt", ".pem"] where file.hasSuffix(suffix) { file.removeLast(suffix.count) }
        return file
    }

    static func describe(id: String, item: CertificateCatalog.Item) -> String {
        // A certificate served from its start-up index and not yet built by OpenSSL is not built
        // here: listing 100,000 of them would hold the control queue for tens of seconds.
        let bundle = item.bundle, leaf = bundle.isPending ? nil : bundle.leaf
        let iso = ISO8601DateFormatter()
        let names = bundle.names.map(JSON.string).joined(separator: ",")
        return "{\"name\":\(JSON.string(displayName(id))),\"names\":[\(names)],\"key_type\":\"\(bundle.keyType.rawValue)\","
            + "\"issuer\":\(JSON.string(leaf?.issuer)),\"subject\":\(JSON.string(leaf?.subject)),\"checked\":\(leaf != nil),"
            + "\"not_before\":\"\(iso.string(from: bundle.notBefore))\",\"not_after\":\"\(iso.string(from: bundle.notAfter))\","
            + "\"serial\":\"\(bundle.serialHex)\",\"source\":\(JSON.string(item.origin)),\"path\":\(JSON.string(item.bundle.source))}"
    }
}
