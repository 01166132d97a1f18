import CSystem
import Foundation
import Glibc
import Logs
import Metrics
import TLS

/// One change from a certificate source: certificates to add or replace (validated and built
/// already), ids to remove, and what the source refused. Each source names its certificates with
/// its own id prefix: "dir:" and "file:" (files), "api:" (admin uploads without a directory),
/// "acme:" (issued here), "cluster:" (from the shared store), "self-signed".
public struct CertificateChange {
    public var upserts: [(id: String, bundle: CertificateBundle, origin: String)]
    public var removals: [String]
    public var refused: [CertificateError]
    public var unchanged: Int
    /// The metrics label: "startup", "signal", "api", "file", "acme", "cluster".
    public var source: String

    public init(upserts: [(id: String, bundle: CertificateBundle, origin: String)] = [], removals: [String] = [],
                refused: [CertificateError] = [], unchanged: Int = 0, source: String) {
        self.upserts = upserts; self.removals = removals; self.refused = refused; self.unchanged = unchanged; self.source = source
    }
}

/// The outcome of one change, for the log and the admin API.
public struct UpdateReport: Sendable {
    public var applied = 0
    public var removed = 0
    public var unchanged = 0
    public var refused: [CertificateError] = []
    /// Set when the change was refused as a whole (it would leave no certificate), or the
    /// configuration behind it was.
    public var configError: String?

    public init(applied: Int = 0, removed: Int = 0, unchanged: Int = 0, refused: [CertificateError] = [], configError: String? = nil) {
        self.applied = applied; self.removed = removed; self.unchanged = unchanged; self.refused = refused; self.configError = configError
    }
}

/// What every certificate source hands its changes to: the directory watcher and SIGHUP, the
/// admin API, ACME and the cluster watch all submit through this one protocol.
public protocol CertificateSink: AnyObject, Sendable {
    @discardableResult func submit(_ change: CertificateChange) -> UpdateReport
}

/// The certificate update transaction (HAProxy's `ckch_store_replace`): sources validate and
/// build off the handshake path, then one `submit` applies the change to the catalog and swaps
/// the store's snapshot. A refused certificate leaves its previous version serving, and a change
/// that would leave no certificate at all is refused whole. Safe from any thread: changes are
/// applied one at a time under a lock that handshakes never take.
public final class CertificateTransaction: CertificateSink, @unchecked Sendable {  // catalog and policy under `lock`
    private let lock = NSLock()
    private let catalog = CertificateCatalog()
    /// Called after each swap, outside the lock (on the submitting thread): on-demand issuance
    /// wakes the handshakes waiting for a name that now serves.
    private var swapped: (@Sendable (CertificateStore) -> Void)?
    private var defaultName: String?
    private var strictSNI = false
    /// nil until `openStore`: changes before it (start-up) only fill the catalog.
    private var store: CertificateStore?
    /// Told about every applied change (start-up included), in order (see `observe`).
    private var observers: [@Sendable (_ upserts: [(id: String, bundle: CertificateBundle)], _ removals: [String]) -> Void] = []

    public init() {}

    /// The snapshot rules: which name answers clients without a match, and whether such clients
    /// get an alert instead. Applies from the next change (or `openStore`) on.
    public func configure(defaultName: String?, strictSNI: Bool) {
        lock.withLock { self.defaultName = defaultName; self.strictSNI = strictSNI }
    }

    /// The store handshakes read, built from what the catalog holds now; once.
    public func openStore(alpnChallenges: ALPNChallengeTable, alpnLookups: ALPNChallengeLookups? = nil,
                          onDemand: CertificateOnDemand? = nil) -> CertificateStore {
        lock.withLock {
            precondition(store == nil, "openStore is called once, at start-up")
            let opened = CertificateStore(makeSnapshot(), strictSNI: strictSNI, alpnChallenges: alpnChallenges, alpnLookups: alpnLookups,
                                          onDemand: onDemand)
            store = opened
            return opened
        }
    }

    /// Reads the catalog under the transaction's lock (no change lands meanwhile).
    public func read<T>(_ body: (CertificateCatalog) throws -> T) rethrows -> T {
        try lock.withLock { try body(catalog) }
    }

    /// Swaps in a snapshot rebuilt under the current rules (after `configure`).
    public func refreshSnapshot() {
        lock.withLock { store?.replace(with: makeSnapshot(), strictSNI: strictSNI) }
    }

    /// Set before `openStore`.
    public func onSwap(_ body: @escaping @Sendable (CertificateStore) -> Void) {
        lock.withLock { swapped = body }
    }

    /// `body` learns of each applied change, in the order they apply. It runs with the
    /// transaction's lock held, so it must only hand the change over (e.g. to its own queue).
    public func observe(_ body: @escaping @Sendable (_ upserts: [(id: String, bundle: CertificateBundle)], _ removals: [String]) -> Void) {
        lock.withLock { observers.append(body) }
    }

    @discardableResult
    public func submit(_ change: CertificateChange) -> UpdateReport {
        let (report, notify) = lock.withLock { () -> (UpdateReport, (() -> Void)?) in
            let report = apply(change)
            guard report.applied + report.removed > 0, let store, let swapped else { return (report, nil) }
            return (report, { swapped(store) })
        }
        notify?()
        return report
    }

    /// Called with `lock` held.
    private func apply(_ c: CertificateChange) -> UpdateReport {
        var report = UpdateReport(applied: c.upserts.count, removed: c.removals.count, unchanged: c.unchanged, refused: c.refused)
        for e in c.refused { Log.error("certificate refused: \(e) (anything it would have replaced keeps serving)") }
        for u in c.upserts {
            for w in u.bundle.warnings { Log.warning("certificate \(u.bundle.source): \(w)") }
            Log.debug("certificate \(u.bundle.names.joined(separator: ",")) (\(u.bundle.keyType)) from \(u.bundle.source)")
        }
        Metrics.shared.certificateUpdate(source: c.source, applied: c.upserts.count + c.removals.count, refused: c.refused.count)
        let swap = store != nil
        if catalog.countAfter(upserts: c.upserts.map(\.id), removals: c.removals) == 0 && swap {
            Log.error("update refused: it would leave no certificate at all; keeping the current certificates")
            report.applied = 0; report.removed = 0
            report.configError = "the update would leave no certificate; nothing changed"
            return report
        }
        guard !c.upserts.isEmpty || !c.removals.isEmpty else { return report }
        catalog.apply(upserts: c.upserts, removals: c.removals)
        for observer in observers { observer(c.upserts.map { ($0.id, $0.bundle) }, c.removals) }
        store?.replace(with: makeSnapshot(), strictSNI: strictSNI)
        // The replaced certificates were freed with the old snapshot. After a large batch, hand
        // their free pages back: without it, repeated replace-alls kept growing the heap
        // (10,000 certificates, three replace-alls: 263 MiB, with it 185 MiB).
        if c.upserts.count + c.removals.count >= 1000 { malloc_trim(0) }
        return report
    }

    private func makeSnapshot() -> Snapshot {
        let snapshot = catalog.snapshot(defaultName: defaultName)
        if !snapshot.defaultFound {
            Log.warning("tls.default names \"\(defaultName ?? "")\", which no certificate carries; another certificate answers instead")
        }
        return snapshot
    }
}
