import CSystem
import Metrics
import Synchronization
import TLS

/// The one place handshakes get certificates from. Writers build a whole new snapshot first
/// (certificates parsed and checked), then swap it in under a lock and bump `generation`. Each
/// thread that handshakes keeps its own copy of the snapshot and the generation it was taken at,
/// and takes the lock only when the generation moved: a handshake reads one atomic that is
/// written only on a swap, so loops share no written cache line. Handshakes already running keep
/// the certificate they installed.
public final class CertificateStore: CertificateSelector {
    private struct Current { var snapshot: Snapshot; var strictSNI: Bool }
    private let current: Mutex<Current>
    /// Bumped (releasing) after every swap; a handshake loads it (acquiring), so once it sees the
    /// new value its next read of `current` returns the new snapshot or a newer one.
    private let generation = Atomic<UInt64>(1)
    /// Never reused, unlike an object address: tells this store's per-thread copy from another's.
    private static let instances = Atomic<Int>(0)
    private let id = CertificateStore.instances.wrappingAdd(1, ordering: .relaxed).newValue
    /// TLS-ALPN-01 answers; consulted only when a client offers "acme-tls/1".
    public let alpnChallenges: ALPNChallengeTable
    /// Asked about names nothing serves; nil: such clients get the default (or an alert).
    public let onDemand: CertificateOnDemand?

    public init(_ snapshot: Snapshot, strictSNI: Bool, alpnChallenges: ALPNChallengeTable = ALPNChallengeTable(),
                onDemand: CertificateOnDemand? = nil) {
        current = Mutex(Current(snapshot: snapshot, strictSNI: strictSNI))
        self.alpnChallenges = alpnChallenges
        self.onDemand = onDemand
    }

    /// The current snapshot, under the lock (control paths; handshakes use `local()`).
    public var snapshot: Snapshot { current.withLock { $0.snapshot } }

    public func replace(with snapshot: Snapshot, strictSNI: Bool) {
        current.withLock { $0 = Current(snapshot: snapshot, strictSNI: strictSNI) }
        generation.wrappingAdd(1, ordering: .releasing)
    }

    /// This thread's copy of the current snapshot, refreshed when a swap happened since it was taken.
    func local() -> (snapshot: Snapshot, strictSNI: Bool) {
        let slot = Int32(CSystem_slotCertificates)
        let copy: LocalCopy
        if let raw = CSystem_threadSlot(slot) {
            copy = Unmanaged<LocalCopy>.fromOpaque(raw).takeUnretainedValue()
        } else {
            copy = LocalCopy()
            CSystem_setThreadSlot(slot, Unmanaged.passRetained(copy).toOpaque())  // kept for the thread's life
        }
        let now = generation.load(ordering: .acquiring)
        if copy.store != id || copy.generation != now {
            let c = current.withLock { $0 }
            copy.store = id; copy.generation = now; copy.snapshot = c.snapshot; copy.strictSNI = c.strictSNI
        }
        return (copy.snapshot!, copy.strictSNI)
    }

    public func select(_ hello: ClientHello) -> CertificateSelection {
        if hello.offersACMETLS, let name = hello.serverName,
           let challenge = alpnChallenges.entry(for: name) {
            Metrics.shared.count(.acmeChallengeHandshakes)
            return .certificate(challenge.certifiedKey)
        }
        let (snap, strict) = local()
        let (bundle, match) = snap.resolve(hello.serverName, offersECDSA: hello.offersECDSA, strict: strict)
        if match == .fallback || match == .rejected, hello.mayWait, let name = hello.serverName, let onDemand,
           onDemand.shouldWait(for: name) {
            return .wait
        }
        switch match {
        case .exact: Metrics.shared.count(.sniExact)
        case .wildcard: Metrics.shared.count(.sniWildcard)
        case .fallback: Metrics.shared.count(.sniDefault)
        case .rejected: Metrics.shared.count(.sniRejected)
        }
        return bundle?.certified.map { .certificate($0) } ?? .reject
    }

    /// Whether a handshake for `name` finds a certificate of its own (exact or wildcard), not the default.
    public func serves(_ name: String) -> Bool {
        let (_, match) = snapshot.resolve(name, offersECDSA: true, strict: true)
        return match == .exact || match == .wildcard
    }
}

/// One thread's copy of a store's snapshot; touched only by that thread. A thread handshaking
/// for several stores (tests) refreshes on every switch.
private final class LocalCopy {
    var store = -1
    var generation: UInt64 = 0
    var snapshot: Snapshot?
    var strictSNI = false
}

/// Obtains certificates for names that have none while their handshakes wait (on-demand TLS).
public protocol CertificateOnDemand: AnyObject, Sendable {
    /// On the loop, inside the ClientHello callback (fast, never blocking): hold this handshake
    /// while a certificate for `name` is obtained?
    func shouldWait(for name: String) -> Bool
    /// On the loop, once the handshake is held: `resume` runs, on any thread, when a certificate
    /// for `name` serves, when obtaining it failed or was not allowed, or after `maxWait`.
    func wait(for name: String, resume: @escaping @Sendable () -> Void)
    /// The longest a held handshake waits, in seconds.
    var maxWait: Double { get }
}
