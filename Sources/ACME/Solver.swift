import Certificates
import TLS

/// Makes one challenge answerable and takes it down again (lego's provider: Present + CleanUp).
/// `present` returns only once the answer is served, because the CA is told to validate right after.
public protocol ChallengeSolver: Sendable {
    /// The challenge type this solver answers ("http-01", "tls-alpn-01").
    var challengeType: String { get }
    func present(domain: String, token: String, keyAuthorization: String) throws
    func cleanUp(domain: String, token: String, keyAuthorization: String)
}

/// HTTP-01 (RFC 8555 §8.3): the key authorization served as
/// http://DOMAIN/.well-known/acme-challenge/TOKEN from the shared `ChallengeTable` the port-80
/// listener reads. With a storage, the answer is written there first so other nodes can serve it.
public struct HTTP01Solver: ChallengeSolver {
    public let challengeType = ChallengeType.http01
    public let table: ChallengeTable
    public let storage: ACMEStorage?

    public init(table: ChallengeTable, storage: ACMEStorage? = nil) { self.table = table; self.storage = storage }

    /// The request path the CA fetches (§8.3).
    public static let pathPrefix = "/.well-known/acme-challenge/"

    public func present(domain: String, token: String, keyAuthorization: String) throws {
        try storage?.saveChallenge(token: token, keyAuthorization: keyAuthorization)
        table.present(token: token, keyAuthorization: keyAuthorization)
    }

    public func cleanUp(domain: String, token: String, keyAuthorization: String) {
        table.cleanUp(token: token)
        try? storage?.deleteChallenge(token: token)
    }
}

/// TLS-ALPN-01 (RFC 8737): a self-signed certificate with the acmeIdentifier extension, served
/// for DOMAIN when the ClientHello offers ALPN "acme-tls/1". The TLS layer reads `table`. With a
/// storage, the key authorization is written there first so other nodes can serve it.
public struct TLSALPN01Solver: ChallengeSolver {
    public let challengeType = ChallengeType.tlsALPN01
    public let table: ALPNChallengeTable
    public let storage: ACMEStorage?

    public init(table: ALPNChallengeTable, storage: ACMEStorage? = nil) { self.table = table; self.storage = storage }

    public func present(domain: String, token: String, keyAuthorization: String) throws {
        try storage?.saveALPNChallenge(name: domain, keyAuthorization: keyAuthorization)
        let key = try PrivateKey.generateP256()
        let certificate = try ALPNChallengeCertificate.make(name: domain, keyAuthorization: keyAuthorization, key: key)
        try table.present(name: domain, certificate: certificate, key: key)
    }

    public func cleanUp(domain: String, token: String, keyAuthorization: String) {
        table.cleanUp(name: domain)
        try? storage?.deleteALPNChallenge(name: domain)
    }
}
