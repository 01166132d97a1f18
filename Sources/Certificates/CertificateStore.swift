import Metrics
import Synchronization
import TLS

/// The one place handshakes get certificates from. Readers take the current snapshot under a
/// lock held for a pointer copy; writers build a whole new snapshot first (certificates parsed and
/// checked), then swap it in. Handshakes already running keep the certificate they installed.
public final class CertificateStore: CertificateSelector {
    private let current: Mutex<Snapshot>
    private let strictSNI: Atomic<Bool>
    /// TLS-ALPN-01 answers; consulted only when a client offers "acme-tls/1".
    public let alpnChallenges: ALPNChallengeTable

    public init(_ snapshot: Snapshot, strictSNI: Bool, alpnChallenges: ALPNChallengeTable = ALPNChallengeTable()) {
        current = Mutex(snapshot)
        self.strictSNI = Atomic(strictSNI)
        self.alpnChallenges = alpnChallenges
    }

    public var snapshot: Snapshot { current.withLock { $0 } }

    public func replace(with snapshot: Snapshot, strictSNI: Bool) {
        current.withLock { $0 = snapshot }
        self.strictSNI.store(strictSNI, ordering: .relaxed)
    }

    public func select(_ hello: ClientHello) -> CertifiedKey? {
        if let name = hello.serverName, hello.alpn.contains(ALPNChallengeCertificate.alpnProtocol),
           let challenge = alpnChallenges.entry(for: name) {
            Metrics.shared.acmeChallengeHandshakes.wrappingAdd(1, ordering: .relaxed)
            return challenge.certifiedKey
        }
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
        return bundle?.certified
    }
}
