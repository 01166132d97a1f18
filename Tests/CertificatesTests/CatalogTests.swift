import Testing
import TLS
@testable import Certificates

/// The catalog's incremental indexes must answer exactly as a snapshot built from scratch.
@Suite struct CatalogTests {
    static func cert(_ names: String..., rsa: Bool = false) throws -> CertificateBundle {
        try CertificateLoader.selfSigned(names: names, rsa: rsa)
    }

    @Test func replaceAndRemoveTouchOnlyTheirNames() throws {
        let catalog = CertificateCatalog()
        let a1 = try Self.cert("a.test"), aRSA = try Self.cert("a.test", rsa: true)
        let b = try Self.cert("b.test"), wild = try Self.cert("*.wild.test")
        catalog.apply(upserts: [("a", a1, "directory"), ("a-rsa", aRSA, "directory"), ("b", b, "api"), ("w", wild, "file")], removals: [])
        var snap = catalog.snapshot(defaultName: "b.test")
        #expect(snap.resolve("a.test", offersECDSA: true, strict: false).0?.serialHex == a1.serialHex)
        #expect(snap.resolve("a.test", offersECDSA: false, strict: false).0?.keyType == .rsa)
        #expect(snap.resolve("x.wild.test", offersECDSA: true, strict: false).1 == .wildcard)
        #expect(snap.resolve("nope.test", offersECDSA: true, strict: false).0?.names == ["b.test"])

        let a2 = try Self.cert("a.test")
        catalog.apply(upserts: [("a", a2, "directory")], removals: ["w"])
        let old = snap
        snap = catalog.snapshot(defaultName: "b.test")
        #expect(snap.resolve("a.test", offersECDSA: true, strict: false).0?.serialHex == a2.serialHex)
        #expect(snap.resolve("x.wild.test", offersECDSA: true, strict: false).1 == .fallback)
        // The previous snapshot is untouched: handshakes that hold it still see the old set.
        #expect(old.resolve("a.test", offersECDSA: true, strict: false).0?.serialHex == a1.serialHex)
        #expect(old.resolve("x.wild.test", offersECDSA: true, strict: false).1 == .wildcard)
        #expect(catalog.count == 3)
        #expect(catalog.countAfter(upserts: [], removals: ["a", "a-rsa", "b"]) == 0)
    }

    @Test func aNameSharedByTwoItemsFallsBackWhenTheNewerGoes() throws {
        let catalog = CertificateCatalog()
        let older = try Self.cert("s.test"), newer = try Self.cert("s.test")
        catalog.apply(upserts: [("old", older, "directory"), ("new", newer, "api")], removals: [])
        #expect(catalog.snapshot(defaultName: nil).resolve("s.test", offersECDSA: true, strict: true).0?.serialHex == newer.serialHex)
        catalog.apply(upserts: [], removals: ["new"])
        #expect(catalog.snapshot(defaultName: nil).resolve("s.test", offersECDSA: true, strict: true).0?.serialHex == older.serialHex)
    }

    /// The generated fallback answers clients without SNI only until anything else is loaded.
    @Test func theSelfSignedFallbackGivesWayToTheFirstRealCertificate() throws {
        let catalog = CertificateCatalog()
        let fallback = try Self.cert("localhost"), real = try Self.cert("real.test")
        catalog.apply(upserts: [("self-signed", fallback, CertificateCatalog.fallbackOrigin)], removals: [])
        #expect(catalog.snapshot(defaultName: nil).resolve(nil, offersECDSA: true, strict: false).0?.serialHex == fallback.serialHex)
        catalog.apply(upserts: [("cluster:real.test", real, "cluster")], removals: [])
        #expect(catalog.snapshot(defaultName: nil).resolve(nil, offersECDSA: true, strict: false).0?.serialHex == real.serialHex)
        #expect(catalog.snapshot(defaultName: nil).resolve("localhost", offersECDSA: true, strict: false).0?.serialHex == fallback.serialHex)
    }

    @Test func manyNamesAcrossShards() throws {
        var table = NameTable()
        let bundle = try Self.cert("x.test")
        table.set((0..<2000).map { ("n\($0).test", Snapshot.Entry(ecdsa: bundle, rsa: nil)) })
        #expect(table.count == 2000)
        let copy = table
        table.set([("n5.test", nil)])
        #expect(table["n5.test"] == nil && copy["n5.test"] != nil && table.count == 1999)
    }
}
