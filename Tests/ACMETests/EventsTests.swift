import Config
import Foundation
import Synchronization
import Testing
import TLS
@testable import ACME

/// Certificate events: the signature, the JSON consumers get, the bounded queue and its backoff,
/// and deliveries through the command target on the events' own thread.
@Suite struct EventsTests {
    @Test func signatureIsHMACSHA256OfTheBodyInHex() throws {
        // RFC 4231, test case 2.
        #expect(try WebhookSignature.value(secret: "Jefe", body: Array("what do ya want for nothing?".utf8))
                == "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843")
    }

    @Test func jsonHasEveryKeyWithNullsAndRFC3339Times() throws {
        let event = CertificateEvent(id: "abc", event: .failed, names: ["a.example", "www.a.example"], node: "n1",
                                     error: "ACME problem: no", problem: Problem(type: Problem.unauthorized, detail: "wrong answer"),
                                     attempt: 2, time: Date(timeIntervalSince1970: 1_700_000_000))
        let object = try #require(try JSONSerialization.jsonObject(with: Data(event.json())) as? [String: Any])
        #expect(Set(object.keys) == ["id", "event", "name", "names", "serial", "not_after", "issuer", "node", "error", "problem", "attempt", "time"])
        #expect(object["event"] as? String == "failed" && object["name"] as? String == "a.example")
        #expect(object["names"] as? [String] == ["a.example", "www.a.example"])
        #expect(object["serial"] is NSNull && object["not_after"] is NSNull && object["issuer"] is NSNull)
        #expect(object["time"] as? String == "2023-11-14T22:13:20Z" && object["attempt"] as? Int == 2)
        #expect((object["problem"] as? [String: Any])?["detail"] as? String == "wrong answer")
        // Decodes back to the same event (the wire is the type).
        let decoder = JSONDecoder()
        decoder.dateDecodingStrategy = .iso8601
        #expect(try decoder.decode(CertificateEvent.self, from: Data(event.json())) == event)
    }

    @Test func queueDropsTheOldestPastItsBound() {
        var queue = EventQueue(capacity: 3)
        let now = Date()
        var dropped: [String] = []
        for name in ["a", "b", "c", "d", "e"] {
            if let d = queue.push(delivery(name, due: now)) { dropped.append(d.event.name) }
        }
        #expect(dropped == ["a", "b"] && queue.items.map(\.event.name) == ["c", "d", "e"])
        // A retry keeps its age: it is the oldest again when the queue overflows next.
        let (taken, _) = queue.take(now: now)
        let retried = EventQueue.retry(taken!, now: now, settings: ACMEEventSettings(), random: 0)!
        #expect(queue.push(retried) == nil)
        #expect(queue.push(delivery("f", due: now))?.event.name == taken!.event.name)
    }

    @Test func takeWaitsForTheSoonestDue() {
        var queue = EventQueue(capacity: 10)
        let now = Date()
        _ = queue.push(delivery("later", due: now.addingTimeInterval(5)))
        _ = queue.push(delivery("sooner", due: now.addingTimeInterval(2)))
        let (none, next) = queue.take(now: now)
        #expect(none == nil && next == now.addingTimeInterval(2))
        #expect(queue.take(now: now.addingTimeInterval(3)).delivery?.event.name == "sooner")
    }

    @Test func retriesBackOffExponentiallyUpToTheCapThenGiveUp() {
        var settings = ACMEEventSettings()
        settings.retries = 4; settings.backoffBase = 2; settings.backoffCap = 5
        let now = Date()
        var d = delivery("a", due: now)
        var waits: [Double] = []
        while let next = EventQueue.retry(d, now: now, settings: settings, random: 0.999) {
            waits.append((next.due.timeIntervalSince(now) * 100).rounded() / 100)
            d = next
        }
        #expect(waits == [2, 4, 5, 5] && d.attempt == 4)
        // Equal jitter: never less than half the ceiling.
        #expect(EventQueue.retry(delivery("b", due: now), now: now, settings: settings, random: 0)!.due == now.addingTimeInterval(1))
    }

    @Test func commandGetsTheEventOnStdinWithKindAndName() throws {
        let dir = try TempDir()
        let script = dir.path("hook")
        try "#!/bin/sh\ncat > \"\(dir.path("event"))-$1-$2\"\n".write(toFile: script, atomically: true, encoding: .utf8)
        chmod(script, 0o755)
        var settings = ACMEEventSettings()
        settings.command = script
        let events = CertificateEvents(settings: settings, storage: FileStorage(root: dir.path("acme")), node: "n1")
        events.start()
        defer { events.stop() }
        let certificate = try SelfSigned.make(names: ["hook.example"], key: PrivateKey.generateP256())
        events.emit(.renewed, names: ["hook.example"], certificate: certificate)
        try waitFor { events.status.delivered == 1 }
        let body = try #require(FileManager.default.contents(atPath: dir.path("event") + "-renewed-hook.example"))
        let decoder = JSONDecoder()
        decoder.dateDecodingStrategy = .iso8601
        let event = try decoder.decode(CertificateEvent.self, from: body)
        #expect(event.event == .renewed && event.name == "hook.example" && event.serial == certificate.serialHex && event.node == "n1")
        #expect(event.issuer == certificate.issuer && event.notAfter.map { abs($0.timeIntervalSince(certificate.notAfter)) < 1 } == true)
        #expect(events.status == CertificateEvents.Status(delivered: 1))
    }

    @Test func failingCommandIsRetriedThenCountedAsFailed() throws {
        var settings = ACMEEventSettings()
        settings.command = "/bin/false"
        settings.retries = 2; settings.backoffBase = 0.05; settings.backoffCap = 0.1
        let dir = try TempDir()
        let events = CertificateEvents(settings: settings, storage: FileStorage(root: dir.path("acme")), node: "n1")
        events.start()
        defer { events.stop() }
        events.emit(.failed, names: ["x.example"], certificate: nil, error: ACMEError(.timedOut, "slow CA"), attempt: 1)
        try waitFor { events.status.failed == 1 }
        let status = events.status
        #expect(status.retries == 2 && status.delivered == 0 && status.queued == 0)
        #expect(status.lastError?.contains("/bin/false failed x.example exited with status 1") == true, "\(status)")
    }

    @Test func anEventClaimedElsewhereIsNotDelivered() throws {
        var settings = ACMEEventSettings()
        settings.command = "/bin/true"
        let storage = ClaimOnce()
        let events = CertificateEvents(settings: settings, storage: storage, node: "n1")
        events.start()
        defer { events.stop() }
        let certificate = try SelfSigned.make(names: ["c.example"], key: PrivateKey.generateP256())
        // The same fact twice (two nodes would see it alike): one delivery. Another fact: its own.
        events.emit(.obtained, names: ["c.example"], certificate: certificate)
        events.emit(.obtained, names: ["c.example"], certificate: certificate)
        events.emit(.revoked, names: ["c.example"], certificate: certificate)
        try waitFor { events.status.delivered + events.status.claimedElsewhere == 3 }
        #expect(events.status.delivered == 2 && events.status.claimedElsewhere == 1)
        #expect(storage.claims.withLock { $0.count } == 2)
    }

    @Test func expiringSoonOncePerSerialWithinTheThreshold() throws {
        var settings = ACMEEventSettings()
        settings.command = "/bin/true"
        let dir = try TempDir()
        let events = CertificateEvents(settings: settings, storage: FileStorage(root: dir.path("acme")), node: "n1")
        let certificate = try SelfSigned.make(names: ["e.example"], key: PrivateKey.generateP256())
        let lifetime = certificate.notAfter.timeIntervalSince(certificate.notBefore)
        // Default: a sixth of the lifetime, at most 7 days.
        #expect(events.expiringWithin(certificate) == min(7 * 86400, lifetime / 6))
        events.look(at: certificate, names: ["e.example"], now: certificate.notBefore)
        #expect(events.status.queued == 0)
        let late = certificate.notAfter.addingTimeInterval(-60)
        events.look(at: certificate, names: ["e.example"], now: late)
        events.look(at: certificate, names: ["e.example"], now: late)
        #expect(events.status.queued == 1)
    }

    private func delivery(_ name: String, due: Date) -> EventQueue.Delivery {
        EventQueue.Delivery(event: CertificateEvent(id: name, event: .obtained, names: [name], node: "n"), target: 0, due: due)
    }

    private func waitFor(_ timeout: Double = 10, _ condition: () -> Bool) throws {
        let deadline = Date().addingTimeInterval(timeout)
        while !condition() {
            guard Date() < deadline else { throw SupportError("condition not met within \(timeout) s") }
            Thread.sleep(forTimeInterval: 0.02)
        }
    }
}

/// A shared storage's claim: the first claim of an id wins.
private final class ClaimOnce: ACMEStorage {
    let claims = Mutex<Set<String>>([])
    func claimEvent(id: String, keepFor: Double) throws -> Bool { claims.withLock { $0.insert(id).inserted } }
    func loadAccount(ca: String) throws -> StoredAccount? { nil }
    func saveAccount(_ account: StoredAccount, ca: String) throws {}
    func loadCertificate(name: String) throws -> StoredCertificate? { nil }
    func saveCertificate(_ certificate: StoredCertificate) throws {}
    func saveChallenge(token: String, keyAuthorization: String) throws {}
    func deleteChallenge(token: String) throws {}
    func loadChallenge(token: String) throws -> String? { nil }
    func withLock<T>(_ name: String, _ body: () throws -> T) throws -> T { try body() }
}
