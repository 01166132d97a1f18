import Certificates
import Foundation
import Synchronization
import Testing
@testable import ACME
import TLS

/// End to end against real Pebble 2.4 (Debian `pebble`), started per test on free loopback ports,
/// with PEBBLE_WFE_NONCEREJECT=30 so that badNonce retries happen. Serialised: the machine has
/// two cores, and Pebble's VA is timing-sensitive enough without contention.
@Suite(.serialized, .timeLimit(.minutes(1)))
struct PebbleIntegrationTests {
    /// Pebble plus an HTTP-01 responder on its validation port, serving `table`; storage in `dir`.
    struct HTTP01Fixture {
        let pebble: Pebble
        let table = ChallengeTable()
        let server: HTTP01TestServer
        let dir: TempDir
        let storage: FileStorage
        init(_ pebble: Pebble) throws {
            self.pebble = pebble
            server = try HTTP01TestServer(port: pebble.httpPort, table: table)
            dir = try TempDir()
            storage = FileStorage(root: dir.path("acme"))
        }
        func stop() { server.stop(); pebble.stop() }
    }


    @Test func accountIsCreatedOnceAndReused() throws {
        let pebble = try Pebble()
        defer { pebble.stop() }
        let dir = try TempDir()
        let storage = FileStorage(root: dir.path("acme"))
        let first = try Issuer(configuration: pebble.configuration(), storage: storage, solvers: [])
        let client = try first.account()
        let url = try #require(client.accountURL)
        let stored = try #require(try storage.loadAccount(ca: FileStorage.caKey(directoryURL: pebble.directoryURL)))
        #expect(stored.url == url)
        let keyPath = dir.path("acme/accounts/\(FileStorage.caKey(directoryURL: pebble.directoryURL))/account.key")
        #expect(try FileManager.default.attributesOfItem(atPath: keyPath)[.posixPermissions] as? Int == 0o600)

        // A second run (new process, same storage) finds the account without asking the CA.
        let second = try Issuer(configuration: pebble.configuration(), storage: storage, solvers: [])
        let again = try second.account()
        #expect(again.accountURL == url)
        #expect(second.requestCount == 0)
        // The CA agrees that this key has exactly that account (onlyReturnExisting, RFC 8555 §7.3.1)…
        #expect(try again.findAccount() == url)
        // …and a fresh key has none.
        let stranger = ACMEClient(directoryURL: pebble.directoryURL, accountKey: try AccountKey.generate(),
                                  transport: HTTPSClient(context: try TLSClientContext(trustRootsPEMFile: pebble.apiCertificatePath)))
        #expect(try stranger.findAccount() == nil)

        // Signed requests with 30 % of nonces rejected, until one was: badNonce must have been
        // retried, and every request still succeeded (twenty missed it once in a thousand runs;
        // a hundred would miss it with odds of 0.7^100).
        var sent = 0
        while again.badNonceRetries == 0 && sent < 100 {
            try again.post(url, payload: nil)
            sent += 1
        }
        #expect(again.badNonceRetries > 0)
    }

    @Test func issuesForTwoNamesOverHTTP01() throws {
        let pebble = try Pebble()
        let http = try HTTP01Fixture(pebble)
        defer { http.stop() }
        let (table, server, dir, storage) = (http.table, http.server, http.dir, http.storage)
        let started = Date()
        let issuer = try Issuer(configuration: pebble.configuration(), storage: storage, solvers: [HTTP01Solver(table: table, storage: storage)])
        let names = ["www.acme-http.test", "api.acme-http.test"]
        let certificate = try issuer.certificate(for: names)
        let firstCertSeconds = Date().timeIntervalSince(started)
        let report = try #require(issuer.lastReport)
        print("ACME figures: HTTP-01, 2 names: time to first certificate \(String(format: "%.2f", firstCertSeconds)) s "
              + "(account included, \(issuer.requestCount) CA requests); issuance alone \(report.requests) CA requests, "
              + "\(String(format: "%.2f", report.seconds)) s; badNonce retries \(try issuer.account().badNonceRetries)")
        #expect(table.count == 0)  // cleaned up
        #expect(server.served >= 2)
        try checkIssued(certificate, names: names, pebble: pebble, storage: storage, dir: dir)

        // Asking again serves the stored certificate: no new order.
        let before = issuer.requestCount
        let cached = try issuer.certificate(for: [names[0].uppercased(), names[1]])
        #expect(issuer.requestCount == before)
        #expect(cached.chainPEM.elementsEqual(certificate.chainPEM), "stored chain differs")
    }

    /// Two issuers (as two threads, or two processes on one storage) wanting the same names at
    /// once: the lock and the second look at storage make it one order and one certificate.
    @Test func concurrentWishesCollapseIntoOneOrder() throws {
        let pebble = try Pebble(nonceRejectPercent: 0)  // so that each logged newOrder is one order
        let http = try HTTP01Fixture(pebble)
        defer { http.stop() }
        let (table, storage) = (http.table, http.storage)
        var configuration = pebble.configuration()
        configuration.challengeTypes = [ChallengeType.http01]
        let config = configuration
        let names = ["same.acme-http.test"]
        let results = Mutex<[Result<[UInt8], Error>]>([])
        let threads = (0..<2).map { _ in
            Thread {
                let outcome = Result { () throws -> [UInt8] in
                    let issuer = try Issuer(configuration: config, storage: storage, solvers: [HTTP01Solver(table: table)])
                    return try issuer.certificate(for: names).chainPEM
                }
                results.withLock { $0.append(outcome) }
            }
        }
        for t in threads { t.start() }
        let deadline = Date().addingTimeInterval(40)
        while results.withLock({ $0.count }) < 2 && Date() < deadline { usleep(20_000) }
        let chains = try results.withLock { try $0.map { try $0.get() } }
        #expect(chains.count == 2)
        #expect(chains.first == chains.last, "both callers get the one certificate")
        #expect(pebble.log.components(separatedBy: "POST /order-plz").count - 1 == 1, "one newOrder")
    }

    @Test func issuesOverTLSALPN01() throws {
        let pebble = try Pebble()
        defer { pebble.stop() }
        let dir = try TempDir()
        let alpn = try ALPNTestServer(port: pebble.tlsPort, directory: dir.path("alpn"), log: dir.path("alpn.log"))
        defer { alpn.stop() }
        let storage = FileStorage(root: dir.path("acme"))
        var config = pebble.configuration()
        config.challengeTypes = [ChallengeType.tlsALPN01, ChallengeType.http01]
        let table = ALPNChallengeTable()
        let solver = ExportingALPNSolver(inner: TLSALPN01Solver(table: table), directory: alpn.directory)
        let issuer = try Issuer(configuration: config, storage: storage, solvers: [solver])
        let names = ["alpn.acme-tls.test", "two.acme-tls.test"]
        let started = Date()
        let certificate = try issuer.obtain(names: names)
        print("ACME figures: TLS-ALPN-01, 2 names: \(issuer.lastReport!.requests) CA requests, "
              + "\(String(format: "%.2f", Date().timeIntervalSince(started))) s")
        #expect(table.count == 0)
        let log = (try? String(contentsOfFile: dir.path("alpn.log"), encoding: .utf8)) ?? ""
        #expect(log.contains("acme-tls/1"), "ALPN server log: \(log)")
        try checkIssued(certificate, names: names, pebble: pebble, storage: storage, dir: dir)
    }

    @Test func externalAccountBinding() throws {
        let pebble = try Pebble(eabRequired: true)
        defer { pebble.stop() }
        let dir = try TempDir()
        let storage = FileStorage(root: dir.path("acme"))
        // Without EAB the CA refuses, and says why (RFC 8555 §7.3.4).
        let refused = try Issuer(configuration: pebble.configuration(), storage: storage, solvers: [])
        let error = try #require(throws: ACMEError.self) { try refused.account() }
        #expect(error.problem?.type == Problem.externalAccountRequired, "\(error)")

        var config = pebble.configuration()
        config.externalAccountBinding = ExternalAccountBinding(keyID: "kid-1", base64URLMACKey: Pebble.eabKeys["kid-1"]!)
        let bound = try Issuer(configuration: config, storage: storage, solvers: [])
        let client = try bound.account()
        #expect(client.accountURL != nil)
        #expect(try storage.loadAccount(ca: FileStorage.caKey(directoryURL: pebble.directoryURL))?.url == client.accountURL)
    }

    @Test func wrongAnswerSurfacesTheProblemDocument() throws {
        let pebble = try Pebble()
        let http = try HTTP01Fixture(pebble)
        defer { http.stop() }
        let (table, storage) = (http.table, http.storage)
        let issuer = try Issuer(configuration: pebble.configuration(), storage: storage,
                                solvers: [WrongHTTP01Solver(inner: HTTP01Solver(table: table))])
        let error = try #require(throws: ACMEError.self) { try issuer.obtain(names: ["wrong.acme-http.test"]) }
        #expect(error.code == .authorizationFailed)
        #expect(error.problem?.type == Problem.unauthorized, "\(error)")
        #expect(error.problem?.detail?.isEmpty == false)
        print("ACME wrong answer surfaced: \(error)")
        #expect(table.count == 0)
        #expect(try storage.loadCertificate(name: "wrong.acme-http.test") == nil)
    }

    /// Chain verifies to Pebble's root, covers the names, loads as a serving bundle, key file 0600.
    private func checkIssued(_ certificate: StoredCertificate, names: [String], pebble: Pebble, storage: FileStorage, dir: TempDir) throws {
        let chain = try X509Certificate.parseChain(pem: certificate.chainPEM)
        #expect(chain.count >= 2)
        #expect(Set(chain[0].dnsNames) == Set(names))
        let bundle = try certificate.bundle()
        #expect(Set(bundle.names) == Set(names))

        try Data(pebble.issuingRootPEM()).write(to: dir.url("root.pem"))
        try Data(chain[0].pem()).write(to: dir.url("leaf.pem"))
        try Data(chain.dropFirst().flatMap { (try? $0.pem()) ?? [] }).write(to: dir.url("intermediates.pem"))
        let verify = try run("/usr/bin/openssl", ["verify", "-CAfile", dir.path("root.pem"), "-untrusted", dir.path("intermediates.pem"), dir.path("leaf.pem")])
        #expect(verify.status == 0, "openssl verify: \(verify.output)")

        let stored = try #require(try storage.loadCertificate(name: names[0]))
        #expect(stored.chainPEM.elementsEqual(certificate.chainPEM), "stored chain differs")
        let keyPath = storage.certificateDirectory + "/\(names[0]).key"
        #expect(try FileManager.default.attributesOfItem(atPath: keyPath)[.posixPermissions] as? Int == 0o600)
        // The layout is tls.certificate_dir's: the proxy's loader reads it as is.
        let (bundles, errors) = CertificateLoader.directory(storage.certificateDirectory)
        #expect(errors.isEmpty, "\(errors)")
        #expect(bundles.contains { Set($0.names) == Set(names) })
    }
}
