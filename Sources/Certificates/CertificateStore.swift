import CSystem
import Metrics
import TLS

/// The one place handshakes get certificates from. Writers build a whole new snapshot first
/// (certificates parsed and checked), then swap it in; each loop reads its own copy, refreshed
/// after a swap (`PerThreadCopy`). Handshakes already running keep the certificate they installed.
public final class CertificateStore: CertificateSelector {
    private struct Current: Sendable { var snapshot: Snapshot; var strictSNI: Bool }
    private let current: PerThreadCopy<Current>
    /// TLS-ALPN-01 answers; consulted only when a client offers "acme-tls/1".
    public let alpnChallenges: ALPNChallengeTable
    /// Where TLS-ALPN-01 answers missing from `alpnChallenges` are looked up (a cluster's store);
    /// nil: a validator asking for one gets the ordinary certificate.
    public let alpnLookups: ALPNChallengeLookups?
    /// Asked about names nothing serves; nil: such clients get the default (or an alert).
    public let onDemand: CertificateOnDemand?

    public init(_ snapshot: Snapshot, strictSNI: Bool, alpnChallenges: ALPNChallengeTable = ALPNChallengeTable(),
                alpnLookups: ALPNChallengeLookups? = nil, onDemand: CertificateOnDemand? = nil) {
        current = PerThreadCopy(Current(snapshot: snapshot, strictSNI: strictSNI), threadSlot: Int32(CSystem_slotCertificates))
        self.alpnChallenges = alpnChallenges
        self.alpnLookups = alpnLookups
        self.onDemand = onDemand
    }

    /// The current snapshot, under the lock (control paths; handshakes use `local()`).
    public var snapshot: Snapshot { current.current.snapshot }

    public func replace(with snapshot: Snapshot, strictSNI: Bool) {
        current.update { $0 = Current(snapshot: snapshot, strictSNI: strictSNI) }
    }

    /// This thread's copy of the current snapshot.
    func local() -> (snapshot: Snapshot, strictSNI: Bool) {
        let c = current.local()
        return (c.snapshot, c.strictSNI)
    }

    public func select(_ hello: ClientHello) -> CertificateSelection {
        if hello.offersACMETLS, let name = hello.serverName {
            if let challenge = alpnChallenges.entry(for: name) {
                Metrics.shared.count(.acmeChallengeHandshakes)
                return .certificate(challenge.certifiedKey)
            }
            // The answer may be stored already without this node having seen it (a cluster's watch
            // a moment behind the CA): hold the validator while it is looked up.
            if hello.mayWait, let alpnLookups, ALPNChallengeCertificate.canAnswer(name), alpnLookups.shouldWait(for: name) {
                return .waitForChallenge
            }
        }
        let (snap, strict) = local()
        let (entry, match) = snap.entry(for: hello.serverName, strict: strict)
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
        return entry?.certified(offersECDSA: hello.offersECDSA).map { .certificate($0) } ?? .reject
    }

    /// Whether a handshake for `name` finds a certificate of its own (exact or wildcard), not the default.
    public func serves(_ name: String) -> Bool {
        let (_, match) = snapshot.entry(for: name, strict: true)
        return match == .exact || match == .wildcard
    }
}

/// What a held handshake (OpenSSL's ClientHello retry) waits on before it looks again.
public protocol HandshakeHold: AnyObject, Sendable {
    /// On the loop, once the handshake is held: `resume` runs, on any thread, when what it waits
    /// for has come or will not, or after `maxWait`.
    func wait(for name: String, resume: @escaping @Sendable () -> Void)
    /// The longest a held handshake waits, in seconds.
    var maxWait: Double { get }
}

/// Obtains certificates for names that have none while their handshakes wait (on-demand TLS).
/// `wait`'s `resume` runs when a certificate for the name serves, when obtaining it failed or
/// was not allowed, or after `maxWait`.
public protocol CertificateOnDemand: HandshakeHold {
    /// On the loop, inside the ClientHello callback (fast, never blocking): hold this handshake
    /// while a certificate for `name` is obtained?
    func shouldWait(for name: String) -> Bool
}
