import ACME
import Config
import Dispatch
import Foundation
import HTTP1
import Synchronization
import Testing
import TLS

/// The manager is a bounded work queue: one slow certificate holds one worker, not the others.
@Suite struct ManagerQueueTests {
    /// Two stored certificates; the CA holds the renewalInfo answer for the first until the
    /// second's has been answered. With one worker that never happens (the gate times out); with
    /// two, the second certificate is attended while the first waits.
    @Test func aSlowCertificateDoesNotHoldTheOthers() throws {
        let dir = try TempDir()
        let storage = FileStorage(root: dir.path("acme"))
        let directoryURL = "https://ca.test/dir"
        try storage.saveAccount(StoredAccount(keyPEM: try PrivateKey.generateP256().pem(), url: "https://ca.test/acct/1"),
                                ca: FileStorage.caKey(directoryURL: directoryURL))
        let (slowDir, fastDir) = (try TempDir(), try TempDir())
        let slow = try makeLeaf(slowDir, days: 90, name: "slow.example", serial: "0x1001")
        let fast = try makeLeaf(fastDir, days: 90, name: "fast.example", serial: "0x1002")
        for (name, leaf) in [("slow.example", slow), ("fast.example", fast)] {
            try storage.saveCertificate(StoredCertificate(names: [name], chainPEM: leaf.chainPEM, keyPEM: leaf.keyPEM))
        }
        let ca = GatedCA(slowID: try #require(RenewalInfo.certificateID(slow.certificate)))
        let issuers = try (0..<2).map { _ in
            try Issuer(configuration: IssuerConfiguration(directoryURL: directoryURL), storage: storage, solvers: [], transport: ca)
        }
        var schedule = ACMESettings(directory: directoryURL, storage: storage.root, certificates: [["slow.example"], ["fast.example"]])
        schedule.renewal.checkInterval = 3600
        let manager = ACMEManager(issuers: issuers, schedule: schedule) { _ in }
        manager.installStored()
        manager.start()
        defer { manager.stop(); ca.release() }
        let deadline = Date().addingTimeInterval(20)
        while manager.statuses.contains(where: { $0.renewAt == nil }) && Date() < deadline { usleep(10_000) }
        #expect(manager.statuses.map(\.names) == [["slow.example"], ["fast.example"]])
        #expect(manager.statuses.allSatisfy { $0.renewAt != nil && $0.failures == 0 })
        #expect(ca.slowWasReleasedByTheOther)

        // Names added at run time are attended too.
        let added = try makeLeaf(try TempDir(), days: 90, name: "added.example", serial: "0x1003")
        try storage.saveCertificate(StoredCertificate(names: ["added.example"], chainPEM: added.chainPEM, keyPEM: added.keyPEM))
        manager.add(["added.example"])
        while manager.statuses.first(where: { $0.names == ["added.example"] })?.renewAt == nil && Date() < deadline { usleep(10_000) }
        #expect(manager.statuses.first { $0.names == ["added.example"] }?.serial == "1003")
    }
}

/// Answers the directory and renewalInfo. The answer for `slowID` waits (up to 5 s) for another
/// certificate's request, and that one waits (up to 5 s) until the slow one is waiting: only two
/// requests in flight at once release each other.
private final class GatedCA: HTTPTransport, @unchecked Sendable {
    let slowID: String
    private let slowWaiting = DispatchSemaphore(value: 0)
    private let gate = DispatchSemaphore(value: 0)
    private let released = Mutex(false)
    var slowWasReleasedByTheOther: Bool { released.withLock { $0 } }

    init(slowID: String) { self.slowID = slowID }
    func release() { gate.signal() }

    func request(method: String, url: String, headers: [HTTPField], body: [UInt8]) throws(ACMEError) -> HTTPResponse {
        let path = URLComponents(string: url)?.path ?? url
        if path == "/dir" {
            let dir = #"{"newNonce":"https://ca.test/nonce","newAccount":"https://ca.test/acct","newOrder":"https://ca.test/order","renewalInfo":"https://ca.test/renewal-info"}"#
            return HTTPResponse(status: 200, headers: [HTTPField(name: "Content-Type", value: "application/json")], body: Array(dir.utf8))
        }
        guard path.hasPrefix("/renewal-info/") else { return HTTPResponse(status: 404, headers: [], body: []) }
        if path.hasSuffix(slowID) {
            slowWaiting.signal()
            if gate.wait(timeout: .now() + 5) == .success { released.withLock { $0 = true } }
        } else if !slowWasReleasedByTheOther, slowWaiting.wait(timeout: .now() + 5) == .success {
            gate.signal()
        }
        let iso = ISO8601DateFormatter()
        let start = Date().addingTimeInterval(10 * 86400), end = Date().addingTimeInterval(11 * 86400)
        let body = #"{"suggestedWindow":{"start":"\#(iso.string(from: start))","end":"\#(iso.string(from: end))"}}"#
        return HTTPResponse(status: 200, headers: [], body: Array(body.utf8))
    }
}
