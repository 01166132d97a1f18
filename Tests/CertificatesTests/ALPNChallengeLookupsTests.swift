import Dispatch
import Foundation
import Locking
import Testing
@testable import Certificates
@testable import TLS

/// A validator's handshake for a TLS-ALPN-01 answer this node does not hold: held while the
/// answer is looked up (a cluster's store, here a closure), then served; bounded per name,
/// overall, in time, and not repeated for a name that had nothing.
@Suite struct ALPNChallengeLookupsTests {
    /// Runs `body` as the held handshake's wait does: blocks until `lookups` resumes it; the seconds it took.
    @discardableResult
    static func waitHeld(_ lookups: ALPNChallengeLookups, _ name: String?) -> Double {
        let resumed = DispatchSemaphore(value: 0)
        let start = Date()
        lookups.wait(for: name ?? "") { resumed.signal() }
        #expect(resumed.wait(timeout: .now() + 10) == .success, "resumed")
        return Date().timeIntervalSince(start)
    }

    static func acme(_ name: String, mayWait: Bool = true) -> ClientHello {
        ClientHello(serverName: name, offersECDSA: true, offersACMETLS: true, mayWait: mayWait)
    }

    @Test func aValidatorIsHeldUntilTheStoredAnswerIsPresentedAndThenGetsIt() throws {
        let site = try HandshakeTests.cert("v.test")
        let table = ALPNChallengeTable()
        let asked = Locked<[String]>([])
        let lookups = ALPNChallengeLookups { name in
            asked.withLock { $0.append(name) }
            guard let entry = try? ALPNChallengeTable.entry(name: name, keyAuthorization: "token.thumbprint") else { return false }
            table.present(name: name, entry)
            return true
        }
        let onDemand = HandshakeTests.Holder(["v.test"])
        let store = CertificateStore(Snapshot([site], defaultName: nil), strictSNI: true, alpnChallenges: table, alpnLookups: lookups,
                                     onDemand: onDemand)
        let front = try TLSContext(front: store, options: TLSOptions(sessionTickets: 0))

        // Ordinary clients, and a held handshake looking again, never wait for an answer.
        if case .waitForChallenge = store.select(Self.acme("v.test", mayWait: false)) { Issue.record("held twice") }
        if case .waitForChallenge = store.select(ClientHello(serverName: "v.test", offersECDSA: true, mayWait: true)) {
            Issue.record("an ordinary client held")
        }
        let browser = try HandshakeTests.handshake(front, sni: "v.test", alpn: ["h2", "http/1.1"])
        #expect(browser.ok && browser.serial == site.serialHex && browser.heldForChallenge == nil)
        #expect(asked.withLock { $0 } == [])

        var heldFor: [String?] = []
        let validator = try HandshakeTests.handshake(front, sni: "v.test", alpn: ["acme-tls/1"]) { name in
            heldFor.append(name)
            Self.waitHeld(lookups, name)
        }
        let answer = try #require(table.entry(for: "v.test"))
        #expect(validator.ok && validator.alpn == "acme-tls/1" && validator.serial == answer.certificate.serialHex)
        #expect(validator.heldForChallenge == true && heldFor == ["v.test"])
        #expect(ALPNChallengeCertificate.acmeIdentifier(of: answer.certificate) == Digest.sha256(Array("token.thumbprint".utf8)))
        #expect(asked.withLock { $0 } == ["v.test"] && lookups.status == .init(held: 1, found: 1))
        // Held for the answer, the handshake is not held again for a certificate (on demand).
        #expect(onDemand.asked == [])
        // From now on the answer is here: served without a wait.
        let again = try HandshakeTests.handshake(front, sni: "v.test", alpn: ["acme-tls/1"]) { _ in Issue.record("held again") }
        #expect(again.ok && again.serial == answer.certificate.serialHex && again.heldForChallenge == nil)
    }

    @Test func withoutLookupsOrForNamesNoAnswerCanBeMadeForNothingWaits() throws {
        let site = try HandshakeTests.cert("v.test")
        let plain = CertificateStore(Snapshot([site], defaultName: nil), strictSNI: false)
        let front = try TLSContext(front: plain, options: TLSOptions(sessionTickets: 0))
        let validator = try HandshakeTests.handshake(front, sni: "v.test", alpn: ["acme-tls/1"]) { _ in Issue.record("held") }
        #expect(validator.ok && validator.serial == site.serialHex && validator.alpn == nil)

        let lookups = ALPNChallengeLookups { _ in Issue.record("looked up"); return false }
        let store = CertificateStore(Snapshot([site], defaultName: nil), strictSNI: false, alpnLookups: lookups)
        for name in ["*.v.test", "under_score.test", "x" + String(repeating: ".x", count: 130)] {
            if case .waitForChallenge = store.select(Self.acme(name)) { Issue.record("held for \(name)") }
        }
    }

    @Test func aNameWithNothingStoredIsNotLookedUpAgainForAWhile() throws {
        let site = try HandshakeTests.cert("v.test")
        let calls = Locked(0)
        let lookups = ALPNChallengeLookups(negativeTTL: 0.3) { _ in calls.withLock { $0 += 1 }; return false }
        let store = CertificateStore(Snapshot([site], defaultName: nil), strictSNI: false, alpnLookups: lookups)
        let front = try TLSContext(front: store, options: TLSOptions(sessionTickets: 0))
        var held = 0
        let first = try HandshakeTests.handshake(front, sni: "gone.test", alpn: ["acme-tls/1"]) { name in
            held += 1
            Self.waitHeld(lookups, name)
        }
        // Nothing stored: the handshake goes on with the ordinary certificate, as without lookups.
        #expect(first.ok && first.serial == site.serialHex && first.alpn == nil && first.heldForChallenge == true && held == 1)
        let second = try HandshakeTests.handshake(front, sni: "gone.test", alpn: ["acme-tls/1"]) { _ in held += 1 }
        #expect(second.ok && second.serial == site.serialHex && held == 1 && calls.withLock { $0 } == 1)
        // Another name is looked up meanwhile; the first one again once the negative answer expired.
        if case .waitForChallenge = store.select(Self.acme("other.test")) {} else { Issue.record("other.test not held") }
        Thread.sleep(forTimeInterval: 0.4)
        if case .waitForChallenge = store.select(Self.acme("gone.test")) {} else { Issue.record("gone.test not held after the TTL") }
        #expect(lookups.status == .init(held: 1, found: 0, missed: 1))
    }

    @Test func oneLookupPerNameAFewOverallAndNoWaitBeyondTheBound() throws {
        let gate = DispatchSemaphore(value: 0)
        let calls = Locked<[String]>([])
        let lookups = ALPNChallengeLookups(maxWait: 0.3, maxLookups: 2) { name in
            calls.withLock { $0.append(name) }
            gate.wait()  // etcd that does not answer
            return false
        }
        defer { for _ in 0..<2 { gate.signal() } }
        let resumed = Locked<[String]>([])
        let start = Date()
        for name in ["a.test", "a.test", "b.test"] {
            #expect(lookups.shouldWait(for: name))
            lookups.wait(for: name) { resumed.withLock { $0.append(name) } }
        }
        // Two names in flight: a third is not held (it takes the ordinary certificate at once), a
        // handshake for one in flight joins its lookup.
        #expect(!lookups.shouldWait(for: "c.test") && lookups.shouldWait(for: "a.test"))
        let late = DispatchSemaphore(value: 0)
        lookups.wait(for: "c.test") { late.signal() }
        #expect(late.wait(timeout: .now() + 0.1) == .success)
        while resumed.withLock({ $0.count }) < 3 && Date().timeIntervalSince(start) < 5 { usleep(5_000) }
        let waited = Date().timeIntervalSince(start)
        #expect(resumed.withLock { $0.sorted() } == ["a.test", "a.test", "b.test"])
        #expect(waited >= 0.3 && waited < 2, "released after maxWait, not when the lookup ends: \(waited)")
        #expect(calls.withLock { $0.sorted() } == ["a.test", "b.test"])
        #expect(lookups.status.held == 3 && lookups.status.busy == 1)
    }
}
