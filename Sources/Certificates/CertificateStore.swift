import Metrics
import Synchronization
import TLS

/// The one place handshakes get certificates from. Readers take the current snapshot under a
/// lock held for a pointer copy; writers build a whole new snapshot first (contexts included),
/// then swap it in. Handshakes already running keep the contexts they were switched to.
public final class CertificateStore: ContextSelector {
    private let current: Mutex<Snapshot>
    private let strictSNI: Atomic<Bool>

    public init(_ snapshot: Snapshot, strictSNI: Bool) {
        current = Mutex(snapshot)
        self.strictSNI = Atomic(strictSNI)
    }

    public var snapshot: Snapshot { current.withLock { $0 } }

    public func replace(with snapshot: Snapshot, strictSNI: Bool) {
        current.withLock { $0 = snapshot }
        self.strictSNI.store(strictSNI, ordering: .relaxed)
    }

    public func select(_ hello: ClientHello) -> TLSContext? {
        let snap = current.withLock { $0 }
        let (bundle, match) = snap.resolve(hello.serverName, offersECDSA: hello.offersECDSA,
                                           strict: strictSNI.load(ordering: .relaxed))
        let m = Metrics.shared
        switch match {
        case .exact: m.sniExact.wrappingAdd(1, ordering: .relaxed)
        case .wildcard: m.sniWildcard.wrappingAdd(1, ordering: .relaxed)
        case .fallback: m.sniDefault.wrappingAdd(1, ordering: .relaxed)
        case .rejected: m.sniRejected.wrappingAdd(1, ordering: .relaxed)
        }
        return bundle?.context
    }
}
