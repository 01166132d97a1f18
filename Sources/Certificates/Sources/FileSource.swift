import Config
import Dispatch
import Foundation
import Logs

/// Certificates from files: `tls.certificates`, the certificate directory (inotify watcher and
/// SIGHUP), and the self-signed fallback that answers when nothing else is configured (and, with
/// ACME on, until anything else has loaded). Confined to `queue`, the control queue.
public final class FileSource: @unchecked Sendable {  // touched on `queue` only
    public let files = CertificateFileSet()
    private let sink: CertificateTransaction
    private let queue: DispatchQueue
    private var watcher: DirectoryWatcher?
    private var selfSigned: (names: [String], bundle: CertificateBundle)?
    /// The `tls:` settings the files were last read with (the watcher reads the directory from them).
    private var tls: TLSSettings?

    public init(sink: CertificateTransaction, queue: DispatchQueue) {
        self.sink = sink
        self.queue = queue
    }

    /// Configured files, the whole directory and the self-signed fallback. `acme`: ACME is on, so
    /// an empty configuration is waiting for issuance rather than asking for the fallback.
    public func refreshAll(_ tls: TLSSettings, acme: Bool, source: String, deferBuild: Bool = false) -> UpdateReport {
        self.tls = tls
        var pairs = tls.certificates.map { CertificateFileSet.Pair(id: "file:" + $0.cert, cert: $0.cert, key: $0.key) }
        var result = files.refresh(pairs, complete: { $0.hasPrefix("file:") }, deferBuild: deferBuild)
        pairs = tls.certificateDirectory.map { CertificateFileSet.directoryPairs($0).pairs } ?? []
        if let dir = tls.certificateDirectory, (try? FileManager.default.contentsOfDirectory(atPath: dir)) == nil {
            result.refused.append(CertificateError(source: dir, reason: "cannot read the directory"))
        }
        let dirResult = files.refresh(pairs, complete: { $0.hasPrefix("dir:") }, deferBuild: deferBuild)
        result.upserts += dirResult.upserts
        result.removals += dirResult.removals
        result.refused += dirResult.refused
        result.unchanged += dirResult.unchanged

        var upserts = result.upserts.map { (id: $0.id, bundle: $0.bundle, origin: $0.id.hasPrefix("dir:") ? "directory" : "file") }
        var removals = result.removals
        let configured = !tls.certificates.isEmpty || tls.certificateDirectory != nil
        let (others, hasFallback) = sink.read { catalog in
            (catalog.countAfter(upserts: upserts.map(\.id), removals: removals + ["self-signed"]), catalog.items["self-signed"] != nil)
        }
        if configured && (!acme || others > 0) {
            if hasFallback { removals.append("self-signed") }
        } else if !hasFallback || selfSigned?.names != tls.selfSignedNames {
            do {
                let b = try selfSigned.flatMap { $0.names == tls.selfSignedNames ? $0.bundle : nil }
                    ?? CertificateLoader.selfSigned(names: tls.selfSignedNames)
                selfSigned = (tls.selfSignedNames, b)
                upserts.append((id: "self-signed", bundle: b, origin: "self-signed"))
                Log.info("\(configured ? "no certificate loaded yet" : "no certificate configured"): serving a self-signed "
                         + "P-256 certificate for \(tls.selfSignedNames.joined(separator: ", "))")
            } catch { Log.error("\(error)") }
        }
        return sink.submit(CertificateChange(upserts: upserts, removals: removals, refused: result.refused,
                                             unchanged: result.unchanged, source: source))
    }

    /// The self-signed fallback, for when the last certificate left (nil: it cannot be made).
    public func fallback() -> (id: String, bundle: CertificateBundle, origin: String)? {
        guard let names = tls?.selfSignedNames, let bundle = try? CertificateLoader.selfSigned(names: names) else { return nil }
        Log.warning("no certificate left: serving a self-signed P-256 certificate for \(names.joined(separator: ", "))")
        return (id: "self-signed", bundle: bundle, origin: "self-signed")
    }

    /// The watcher's batch: only the base names it reported (nil: everything).
    ///
    /// A certificate and its key are two files written one after the other; on a busy machine the
    /// gap can outlast the debounce, and the first file alone does not validate. So a refusal of
    /// files written within the last second is held back and looked at again every 300 ms: it is
    /// reported once its files have been left alone for a second (`heldBack` carries it along).
    func directoryChanged(_ bases: Set<String>?, heldBack: [CertificateError] = []) {
        guard let dir = tls?.certificateDirectory else { return }
        let (pairs, gone) = CertificateFileSet.directoryPairs(dir, bases: bases)
        let result = files.refresh(pairs, gone: gone, complete: bases == nil ? { $0.hasPrefix("dir:") } : nil)
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
        sink.submit(CertificateChange(upserts: result.upserts.map { (id: $0.id, bundle: $0.bundle, origin: "directory") },
                                      removals: result.removals, refused: refused, unchanged: result.unchanged, source: "file"))
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

    /// (Re)starts the inotify watcher for the directory of the last `refreshAll`, when `tls.watch`.
    public func startWatcher() {
        watcher?.stop()
        watcher = nil
        guard let tls, tls.watch, let dir = tls.certificateDirectory else { return }
        let watcher = DirectoryWatcher(directory: dir, queue: queue) { [unowned self] bases in directoryChanged(bases) }
        do {
            try watcher.start()
            self.watcher = watcher
            Log.info("watching \(dir) for certificate changes")
        } catch {
            Log.error("\(error); certificate changes there apply on SIGHUP only")
        }
    }
}
