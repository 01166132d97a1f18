import Certificates
import Foundation
import TLS

/// What the issuer needs to know; the lead maps the `acme:` configuration section onto it.
public struct IssuerConfiguration: Sendable {
    public var directoryURL: String
    /// PEM roots trusted for the CA's API (Pebble's is self-signed); nil: the system store.
    public var trustRootsPEMFile: String?
    public var contact: [String] = []
    public var termsOfServiceAgreed = true
    public var externalAccountBinding: ExternalAccountBinding?
    /// Challenge types in order of preference; each needs a solver.
    public var challengeTypes: [String] = [ChallengeType.http01, ChallengeType.tlsALPN01]
    public var clientOptions = ACMEClientOptions()
    /// Socket timeout for each request to the CA.
    public var requestTimeout: Double = 30

    public init(directoryURL: String, trustRootsPEMFile: String? = nil) {
        self.directoryURL = directoryURL
        self.trustRootsPEMFile = trustRootsPEMFile
    }
}

/// How one issuance went, for logs and metrics.
public struct IssuanceReport: Sendable {
    public var names: [String]
    /// HTTP requests made to the CA for this issuance (account set-up excluded), retries included.
    public var requests: Int
    public var seconds: Double
}

/// "Obtain a certificate for these names": account (loaded or created, persisted), order,
/// authorizations through the configured solvers, finalize with a fresh P-256 key, download,
/// persist. Blocking; run it on a background thread. One `Issuer` per CA; not thread-safe (the
/// storage lock serialises issuers across threads and processes).
public final class Issuer {
    public let configuration: IssuerConfiguration
    public let storage: ACMEStorage
    private let solvers: [String: ChallengeSolver]
    private let transport: HTTPTransport
    private var client: ACMEClient?
    public private(set) var lastReport: IssuanceReport?
    /// Total requests of this issuer's client (account set-up included).
    public var requestCount: Int { client?.requestCount ?? 0 }

    public init(configuration: IssuerConfiguration, storage: ACMEStorage, solvers: [ChallengeSolver],
                transport: HTTPTransport? = nil) throws {
        self.configuration = configuration
        self.storage = storage
        self.solvers = Dictionary(solvers.map { ($0.challengeType, $0) }, uniquingKeysWith: { first, _ in first })
        if let transport {
            self.transport = transport
        } else {
            let context = try TLSClientContext(trustRootsPEMFile: configuration.trustRootsPEMFile)
            self.transport = HTTPSClient(context: context, timeout: configuration.requestTimeout)
        }
    }

    private var caKey: String { FileStorage.caKey(directoryURL: configuration.directoryURL) }

    /// The registered account's client: from storage when it is there (no request to the CA),
    /// else registered once under the account lock and persisted. The key is saved before
    /// registering, so a crash in between finds the account again (onlyReturnExisting) rather
    /// than creating a second one.
    public func account() throws -> ACMEClient {
        if let client, client.accountURL != nil { return client }
        if let stored = try storage.loadAccount(ca: caKey), let url = stored.url {
            return try makeClient(keyPEM: stored.keyPEM, url: url)
        }
        return try storage.withLock("account-\(caKey)") {
            var stored = try storage.loadAccount(ca: caKey)  // check again under the lock
            if let stored, let url = stored.url { return try makeClient(keyPEM: stored.keyPEM, url: url) }
            if stored == nil {
                stored = StoredAccount(keyPEM: try PrivateKey.generateP256().pem(), url: nil)
                try storage.saveAccount(stored!, ca: caKey)
            }
            let client = try makeClient(keyPEM: stored!.keyPEM, url: nil)
            let url = try client.findAccount() ?? client.createAccount(contact: configuration.contact,
                                                                        termsOfServiceAgreed: configuration.termsOfServiceAgreed,
                                                                        externalAccountBinding: configuration.externalAccountBinding)
            try storage.saveAccount(StoredAccount(keyPEM: stored!.keyPEM, url: url), ca: caKey)
            return client
        }
    }

    private func makeClient(keyPEM: [UInt8], url: String?) throws -> ACMEClient {
        let client = ACMEClient(directoryURL: configuration.directoryURL, accountKey: try AccountKey(PrivateKey.parse(pem: keyPEM)),
                                transport: transport, accountURL: url, options: configuration.clientOptions)
        self.client = client
        return client
    }

    /// The stored certificate when it covers `names` and is not `due` for renewal; otherwise a new
    /// one (check storage, lock, check again: another thread or node may just have issued it).
    /// `replacing`: the certificate this one renews, named to the CA when it offers ARI (RFC 9773 §5).
    /// `profile`: the CA's certificate profile to order under (nil: the CA's default).
    public func certificate(for names: [String], replacing: X509Certificate? = nil, profile: String? = nil,
                            due: (X509Certificate) -> Bool = { RenewalPolicy.isDue(notBefore: $0.notBefore, notAfter: $0.notAfter) })
        throws -> StoredCertificate {
        let names = try Self.normalise(names)
        if let stored = try usable(names, due: due) { return stored }
        return try storage.withLock("certificate-\(names[0])") {
            if let stored = try usable(names, due: due) { return stored }
            return try obtain(names: names, replacing: replacing, profile: profile)
        }
    }

    /// The stored certificate for `names` (first = primary) when its chain parses and its leaf
    /// covers every name, whether due or not.
    public func stored(_ names: [String]) throws -> (certificate: StoredCertificate, leaf: X509Certificate)? {
        let names = try Self.normalise(names)
        guard let stored = try storage.loadCertificate(name: names[0]),
              let leaf = try? X509Certificate.parseChain(pem: stored.chainPEM).first else { return nil }
        let covered = Set(leaf.dnsNames)
        guard names.allSatisfy(covered.contains) else { return nil }
        return (StoredCertificate(names: names, chainPEM: stored.chainPEM, keyPEM: stored.keyPEM), leaf)
    }

    private func usable(_ names: [String], due: (X509Certificate) -> Bool) throws -> StoredCertificate? {
        guard let (certificate, leaf) = try stored(names), !due(leaf) else { return nil }
        return certificate
    }

    /// Issues a new certificate for `names` (first = primary, the storage name) and persists it.
    /// Callers that may race other issuers should use `certificate(for:)` (it takes the lock).
    public func obtain(names: [String], replacing: X509Certificate? = nil, profile: String? = nil) throws -> StoredCertificate {
        let names = try Self.normalise(names)
        let client = try account()
        let started = Date(), firstRequest = client.requestCount
        let replaces = try replacing.flatMap { try client.directory().renewalInfo == nil ? nil : RenewalInfo.certificateID($0) }
        let (orderURL, order) = try client.newOrder(names: names, replaces: replaces, profile: profile)

        // Present every challenge and tell the CA before polling any, so validations overlap. Each
        // answer is taken down as soon as its authorization ends, valid or not (and on any throw).
        var presented: [String: (solver: ChallengeSolver, domain: String, token: String, keyAuthorization: String)] = [:]
        func takeDown(_ url: String) {
            guard let p = presented.removeValue(forKey: url) else { return }
            p.solver.cleanUp(domain: p.domain, token: p.token, keyAuthorization: p.keyAuthorization)
        }
        defer { for url in Array(presented.keys) { takeDown(url) } }
        var pending: [String] = []
        for url in order.authorizations {
            let authz = try client.authorization(url)
            if authz.status == Status.valid { continue }  // reused authorization (§7.1.4)
            guard authz.status == Status.pending else {
                throw ACMEError(.authorizationFailed, "\(authz.identifier.value): authorization \(authz.status)")
            }
            let (solver, challenge) = try choose(authz)
            guard let token = challenge.token else { throw ACMEError(.protocolViolation, "challenge without token: \(challenge.url)") }
            let keyAuthorization = client.accountKey.keyAuthorization(token: token)
            try solver.present(domain: authz.identifier.value, token: token, keyAuthorization: keyAuthorization)
            presented[url] = (solver, authz.identifier.value, token, keyAuthorization)
            // A challenge already processing (an order resumed after a restart) only needs its answer back.
            if challenge.status == Status.pending { try client.respond(to: challenge) }
            pending.append(url)
        }
        for url in pending {
            defer { takeDown(url) }
            _ = try client.waitForAuthorization(url)
        }

        let key = try PrivateKey.generateP256()
        let csr = try CertificateRequest.der(names: names, key: key)
        let final = try client.finalize(orderURL: orderURL, order: order, csrDER: csr)
        let chain = try client.downloadCertificate(final.certificate!)
        let certificate = StoredCertificate(names: names, chainPEM: chain, keyPEM: try key.pem())
        try storage.saveCertificate(certificate)
        lastReport = IssuanceReport(names: names, requests: client.requestCount - firstRequest,
                                    seconds: Date().timeIntervalSince(started))
        return certificate
    }

    /// Revokes `certificate` at the CA (RFC 8555 §7.6). keyCompromise is signed with the
    /// certificate's own key, which proves the key is in hand; other reasons with the account's.
    public func revoke(_ certificate: StoredCertificate, leaf: X509Certificate, reason: RevocationReason) throws {
        let client = try account()
        let key = reason == .keyCompromise ? try AccountKey(PrivateKey.parse(pem: certificate.keyPEM)) : nil
        try client.revoke(certificateDER: try leaf.der(), reason: reason, certificateKey: key)
    }

    /// The first configured challenge type the CA offers for this authorization and a solver handles.
    private func choose(_ authz: Authorization) throws(ACMEError) -> (ChallengeSolver, Challenge) {
        for type in configuration.challengeTypes {
            if let solver = solvers[type],
               let challenge = authz.challenges.first(where: { $0.type == type && ($0.status == Status.pending || $0.status == Status.processing) }) {
                return (solver, challenge)
            }
        }
        let offered = authz.challenges.map(\.type).joined(separator: ", ")
        throw ACMEError(.noSolver, "\(authz.identifier.value): no solver for the offered challenges (\(offered))")
    }

    /// Lower-cased, duplicates dropped, order kept (the first name names the certificate).
    static func normalise(_ names: [String]) throws(ACMEError) -> [String] {
        var seen = Set<String>()
        let unique = names.map { $0.lowercased() }.filter { seen.insert($0).inserted }
        guard !unique.isEmpty else { throw ACMEError(.protocolViolation, "no names to issue for") }
        return unique
    }
}

extension StoredCertificate {
    /// Validates the chain and key, ready for the certificate store.
    public func bundle(source: String = "acme") throws(CertificateError) -> CertificateBundle {
        try CertificateLoader.bundle(chainPEM: chainPEM, keyPEM: keyPEM, source: source)
    }
}
