import Testing
import TLS
@testable import Certificates

/// SNI resolution: exact, then one-label wildcard, then the default; ECDSA unless the client can't.
@Suite struct SnapshotTests {
    static func cert(_ names: String..., rsa: Bool = false) throws -> CertificateBundle {
        try CertificateLoader.selfSigned(names: names, rsa: rsa)
    }

    @Test func exactNameWins() throws {
        let a = try Self.cert("a.test"), b = try Self.cert("b.test"), wild = try Self.cert("*.test")
        let snap = Snapshot([a, b, wild], defaultName: nil)
        let (got, match) = snap.resolve("b.test", offersECDSA: true, strict: false)
        #expect(got?.names == ["b.test"])
        #expect(match == .exact)
    }

    @Test func wildcardCoversExactlyOneLabel() throws {
        let wild = try Self.cert("*.wild.test"), def = try Self.cert("default.test")
        let snap = Snapshot([def, wild], defaultName: "default.test")
        #expect(snap.resolve("x.wild.test", offersECDSA: true, strict: false).1 == .wildcard)
        #expect(snap.resolve("a.b.wild.test", offersECDSA: true, strict: false).1 == .fallback)
        #expect(snap.resolve("wild.test", offersECDSA: true, strict: false).1 == .fallback)
        #expect(snap.resolve("a.b.wild.test", offersECDSA: true, strict: false).0?.names == ["default.test"])
    }

    @Test func noSNIGetsTheConfiguredDefault() throws {
        let a = try Self.cert("a.test"), def = try Self.cert("default.test")
        let snap = Snapshot([a, def], defaultName: "default.test")
        #expect(snap.resolve(nil, offersECDSA: true, strict: false).0?.names == ["default.test"])
        #expect(snap.defaultFound)
    }

    @Test func withoutADefaultTheFirstCertificateAnswers() throws {
        let a = try Self.cert("a.test"), b = try Self.cert("b.test")
        let snap = Snapshot([a, b], defaultName: "missing.test")
        #expect(!snap.defaultFound)
        #expect(snap.resolve("unknown.test", offersECDSA: true, strict: false).0?.names == ["a.test"])
    }

    @Test func strictRejectsUnknownNamesButNotMissingSNI() throws {
        let a = try Self.cert("a.test")
        let snap = Snapshot([a], defaultName: nil)
        #expect(snap.resolve("unknown.test", offersECDSA: true, strict: true).0 == nil)
        #expect(snap.resolve("unknown.test", offersECDSA: true, strict: true).1 == .rejected)
        #expect(snap.resolve(nil, offersECDSA: true, strict: true).0 != nil)
    }

    @Test func ecdsaForCapableClientsRSAForOthers() throws {
        let ec = try Self.cert("a.test"), rsa = try Self.cert("a.test", rsa: true)
        let snap = Snapshot([ec, rsa], defaultName: nil)
        #expect(snap.resolve("a.test", offersECDSA: true, strict: false).0?.keyType == .ecdsa)
        #expect(snap.resolve("a.test", offersECDSA: false, strict: false).0?.keyType == .rsa)
        // Only one key type: everyone gets it.
        let only = Snapshot([ec], defaultName: nil)
        #expect(only.resolve("a.test", offersECDSA: false, strict: false).0?.keyType == .ecdsa)
    }

    @Test func storeSwapsWholeSnapshots() throws {
        let a = try Self.cert("a.test"), b = try Self.cert("a.test")
        let store = CertificateStore(Snapshot([a], defaultName: nil), strictSNI: false)
        let hello = ClientHello(serverName: "a.test", offersECDSA: true)
        #expect(store.select(hello).certifiedKey === a.certified)
        store.replace(with: Snapshot([b], defaultName: nil), strictSNI: false)
        #expect(store.select(hello).certifiedKey === b.certified)
    }
}

/// Validation refuses what would fail handshakes, and says why.
@Suite struct LoaderTests {
    static func pair(_ names: String...) throws -> (cert: [UInt8], key: [UInt8]) {
        let key = try PrivateKey.generateP256()
        return (try SelfSigned.make(names: names, key: key).pem(), try key.pem())
    }

    @Test func mismatchedKeyIsRefused() throws {
        let a = try Self.pair("a.test"), b = try Self.pair("b.test")
        let certPEM = a.cert, keyPEM = b.key
        #expect(throws: CertificateError.self) {
            try CertificateLoader.bundle(chainPEM: certPEM, keyPEM: keyPEM, source: "t")
        }
    }

    @Test func certificateBlocksAreCountedInRawBytes() {
        let m = "-----BEGIN CERTIFICATE-----"
        #expect(CertificateLoader.occurrences(of: m, in: []) == 0)
        #expect(CertificateLoader.occurrences(of: m, in: Array((m + "x\n" + m + m).utf8)) == 3)
        #expect(CertificateLoader.occurrences(of: m, in: Array(m.dropLast().utf8)) == 0)
    }

    @Test func corruptPEMIsRefused() {
        let junk = Array("-----BEGIN CERTIFICATE-----\nnot base64\n-----END CERTIFICATE-----\n".utf8)
        do {
            _ = try CertificateLoader.bundle(chainPEM: junk, keyPEM: junk, source: "junk.pem")
            Issue.record("a corrupt PEM loaded")
        } catch {
            #expect(error.source == "junk.pem")
        }
    }

    @Test func matchingPairLoads() throws {
        let a = try Self.pair("a.test", "www.a.test")
        let bundle = try CertificateLoader.bundle(chainPEM: a.cert, keyPEM: a.key,
                                                  source: "a")
        #expect(bundle.names == ["a.test", "www.a.test"])
        #expect(bundle.keyType == .ecdsa)
    }
}
