import ACME
import Config
import Foundation
import HTTP1
import Synchronization
import Testing
import TLS

/// ACME Renewal Information (RFC 9773). Pebble 2.4 offers no renewalInfo, so the exchange is
/// driven here by a scripted CA; the identifier is checked against the RFC's own example.
@Suite struct ARITests {
    /// RFC 9773 §4.1: AKI keyIdentifier 69:88:5B:6B:87:46:40:41:E1:B3:7B:84:7B:A0:AE:2C:DE:01:C8:D4 and
    /// serial 0x87654321 give "aYhba4dGQEHhs3uEe6CuLN4ByNQ.AIdlQyE".
    @Test func certificateIdentifierMatchesTheRFCExample() throws {
        let dir = try TempDir()
        let leaf = try makeLeaf(dir, days: 90)
        #expect(RenewalInfo.certificateID(leaf.certificate) == "aYhba4dGQEHhs3uEe6CuLN4ByNQ.AIdlQyE")
    }

    /// A stored certificate with 90 days left would renew at ~60 days by the lifetime rule; the CA's
    /// window says days 10–11, and the manager plans inside it, asking again when Retry-After says.
    @Test func managerPlansRenewalInsideTheCAWindow() throws {
        let dir = try TempDir()
        let leaf = try makeLeaf(dir, days: 90)
        let storage = FileStorage(root: dir.path("acme"))
        try storage.saveCertificate(StoredCertificate(names: ["ari.example"], chainPEM: leaf.chainPEM, keyPEM: leaf.keyPEM))
        let directoryURL = "https://ca.test/dir"
        try storage.saveAccount(StoredAccount(keyPEM: try PrivateKey.generateP256().pem(), url: "https://ca.test/acct/1"),
                                ca: FileStorage.caKey(directoryURL: directoryURL))
        let start = Date().addingTimeInterval(10 * 86400), end = Date().addingTimeInterval(11 * 86400)
        let ca = ScriptedCA(window: (start, end), retryAfter: 7200)
        let issuer = try Issuer(configuration: IssuerConfiguration(directoryURL: directoryURL), storage: storage, solvers: [], transport: ca)
        let installed = Mutex(0)
        var schedule = ACMESettings(directory: directoryURL, storage: storage.root, certificates: [["ari.example"]])
        schedule.renewal.checkInterval = 10 * 3600
        let manager = ACMEManager(issuers: [issuer], schedule: schedule) { _ in installed.withLock { $0 += 1 } }
        manager.installStored()
        #expect(installed.withLock { $0 } == 1)
        #expect(manager.statuses[0].serial == "87654321")
        manager.start()
        defer { manager.stop() }
        let deadline = Date().addingTimeInterval(10)
        while manager.statuses[0].renewAt == nil && Date() < deadline { usleep(10_000) }
        let status = manager.statuses[0]
        let renewAt = try #require(status.renewAt)
        #expect(renewAt >= start.addingTimeInterval(-1) && renewAt <= end.addingTimeInterval(1))
        #expect(status.ariWindow != nil && status.failures == 0 && status.lastError == nil)
        // Retry-After (2 h) comes before the check interval (10 h) and the window (10 days).
        #expect(status.nextAttempt <= Date().addingTimeInterval(7200 + 5))
        #expect(status.nextAttempt >= Date().addingTimeInterval(7200 - 60))
        #expect(ca.paths.contains("/renewal-info/aYhba4dGQEHhs3uEe6CuLN4ByNQ.AIdlQyE"))
        #expect(installed.withLock { $0 } == 1)  // nothing new was issued
    }
}

extension ARITests {
    /// With a storage that keeps the CA's renewalInfo answer (a cluster's), two managers (two
    /// nodes) looking at the same certificate ask the CA once per check interval between them.
    @Test func aSharedAnswerIsAskedForOncePerInterval() throws {
        let dir = try TempDir()
        let leaf = try makeLeaf(dir, days: 90)
        let storage = SharingStorage(FileStorage(root: dir.path("acme")))
        try storage.saveCertificate(StoredCertificate(names: ["ari.example"], chainPEM: leaf.chainPEM, keyPEM: leaf.keyPEM))
        let directoryURL = "https://ca.test/dir"
        try storage.saveAccount(StoredAccount(keyPEM: try PrivateKey.generateP256().pem(), url: "https://ca.test/acct/1"),
                                ca: FileStorage.caKey(directoryURL: directoryURL))
        let ca = ScriptedCA(window: (Date().addingTimeInterval(10 * 86400), Date().addingTimeInterval(11 * 86400)), retryAfter: 7200)
        var schedule = ACMESettings(directory: directoryURL, storage: storage.inner.root, certificates: [["ari.example"]])
        schedule.renewal.checkInterval = 3600
        for _ in 0..<2 {
            let issuer = try Issuer(configuration: IssuerConfiguration(directoryURL: directoryURL), storage: storage, solvers: [], transport: ca)
            let manager = ACMEManager(issuers: [issuer], schedule: schedule) { _ in }
            manager.start()
            let deadline = Date().addingTimeInterval(10)
            while manager.statuses[0].renewAt == nil && Date() < deadline { usleep(10_000) }
            manager.stop()
            #expect(manager.statuses[0].renewAt != nil && manager.statuses[0].ariWindow != nil)
        }
        #expect(ca.paths.filter { $0.hasPrefix("/renewal-info/") }.count == 1)
    }
}

/// FileStorage plus a renewalInfo answer kept in memory, as a cluster's storage keeps it in etcd.
private final class SharingStorage: ACMEStorage, @unchecked Sendable {  // `kept` is guarded by its Mutex
    let inner: FileStorage
    private let kept = Mutex<[String: SharedRenewalInfo]>([:])
    init(_ inner: FileStorage) { self.inner = inner }
    func loadAccount(ca: String) throws -> StoredAccount? { try inner.loadAccount(ca: ca) }
    func saveAccount(_ account: StoredAccount, ca: String) throws { try inner.saveAccount(account, ca: ca) }
    func loadCertificate(name: String) throws -> StoredCertificate? { try inner.loadCertificate(name: name) }
    func saveCertificate(_ certificate: StoredCertificate) throws { try inner.saveCertificate(certificate) }
    func saveChallenge(token: String, keyAuthorization: String) throws {}
    func deleteChallenge(token: String) throws {}
    func loadChallenge(token: String) throws -> String? { nil }
    func withLock<T>(_ name: String, _ body: () throws -> T) throws -> T { try inner.withLock(name, body) }
    func loadRenewalInfo(name: String, serial: String) throws -> SharedRenewalInfo? { kept.withLock { $0[name + serial] } }
    func saveRenewalInfo(_ info: SharedRenewalInfo, name: String, serial: String) throws { kept.withLock { $0[name + serial] = info } }
}

/// A CA key with the RFC's subject key identifier, and a leaf it signed with serial 0x87654321.
func makeLeaf(_ dir: TempDir, days: Int, name: String = "ari.example",
              serial: String = "0x87654321") throws -> (certificate: X509Certificate, chainPEM: [UInt8], keyPEM: [UInt8]) {
    let openssl = "/usr/bin/openssl"
    func ok(_ r: (status: Int32, output: String)) throws { if r.status != 0 { throw PebbleError(r.output) } }
    try ok(run(openssl, ["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-subj", "/CN=ARI test CA",
                         "-addext", "subjectKeyIdentifier=69:88:5B:6B:87:46:40:41:E1:B3:7B:84:7B:A0:AE:2C:DE:01:C8:D4",
                         "-days", "2", "-keyout", dir.path("ca.key"), "-out", dir.path("ca.crt")]))
    try ok(run(openssl, ["req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-subj", "/CN=\(name)",
                         "-keyout", dir.path("leaf.key"), "-out", dir.path("leaf.csr")]))
    try "subjectAltName=DNS:\(name)\nauthorityKeyIdentifier=keyid\n".write(toFile: dir.path("ext.cnf"), atomically: true, encoding: .utf8)
    try ok(run(openssl, ["x509", "-req", "-in", dir.path("leaf.csr"), "-CA", dir.path("ca.crt"), "-CAkey", dir.path("ca.key"),
                         "-set_serial", serial, "-days", String(days), "-extfile", dir.path("ext.cnf"), "-out", dir.path("leaf.crt")]))
    let chain = [UInt8](try Data(contentsOf: dir.url("leaf.crt")))
    let key = [UInt8](try Data(contentsOf: dir.url("leaf.key")))
    return (try X509Certificate.parseChain(pem: chain)[0], chain, key)
}

/// Answers the directory and renewalInfo; anything else is a test failure (404).
private final class ScriptedCA: HTTPTransport, @unchecked Sendable {
    let window: (Date, Date)
    let retryAfter: Int
    private let seen = Mutex<[String]>([])
    var paths: [String] { seen.withLock { $0 } }

    init(window: (Date, Date), retryAfter: Int) { self.window = window; self.retryAfter = retryAfter }

    func request(method: String, url: String, headers: [HTTPField], body: [UInt8]) throws(ACMEError) -> HTTPResponse {
        let path = URLComponents(string: url)?.path ?? url
        seen.withLock { $0.append(path) }
        let iso = ISO8601DateFormatter()
        switch (method, path) {
        case ("GET", "/dir"):
            let dir = #"{"newNonce":"https://ca.test/nonce","newAccount":"https://ca.test/acct","newOrder":"https://ca.test/order","renewalInfo":"https://ca.test/renewal-info"}"#
            return HTTPResponse(status: 200, headers: [HTTPField(name: "Content-Type", value: "application/json")], body: Array(dir.utf8))
        case ("GET", let p) where p.hasPrefix("/renewal-info/"):
            let body = #"{"suggestedWindow":{"start":"\#(iso.string(from: window.0))","end":"\#(iso.string(from: window.1))"}}"#
            return HTTPResponse(status: 200, headers: [HTTPField(name: "Retry-After", value: String(retryAfter))], body: Array(body.utf8))
        default:
            return HTTPResponse(status: 404, headers: [], body: [])
        }
    }
}
