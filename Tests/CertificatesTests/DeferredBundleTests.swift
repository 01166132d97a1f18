import Testing
@testable import Certificates
@testable import TLS

/// A bundle served from its start-up index is built by OpenSSL once, on first use, with every
/// check an update gets; one OpenSSL refuses then never serves.
@Suite struct DeferredBundleTests {
    @Test func aDeferredBundleIsBuiltOnceWithOpenSSLsChecks() throws {
        let pair = try CertificateIndexTests.p256(["d.test"])
        let bundle = try #require(CertificateLoader.deferredBundle(chainPEM: pair.certPEM, keyPEM: pair.keyPEM, source: "d"))
        #expect(bundle.isDeferred && bundle.isPending && bundle.names == ["d.test"] && bundle.serialHex == pair.cert.serialHex)
        let store = CertificateStore(Snapshot([bundle], defaultName: nil), strictSNI: true)
        let first = try #require(store.select(ClientHello(serverName: "d.test", offersECDSA: true)).certifiedKey)
        #expect(bundle.isDeferred && !bundle.isPending && first.leaf.serialHex == pair.cert.serialHex)
        #expect(store.select(ClientHello(serverName: "d.test", offersECDSA: true)).certifiedKey === first)
        guard case .success(let built)? = bundle.build() else { Issue.record("build failed"); return }
        #expect(built.certified === first && built.names == bundle.names)

        // A chain whose next certificate is not named as the leaf's issuer is OpenSSL's to judge at
        // once (a common mistake: it must not hold names until the background check). A chain
        // whose names match but whose issuer did not sign it is refused when built (end to end
        // in test_startup_index.py).
        let stranger = try SelfSigned.make(names: ["other-ca.test"], key: try PrivateKey.generateP256())
        #expect(CertificateLoader.deferredBundle(chainPEM: pair.certPEM + (try stranger.pem()), keyPEM: pair.keyPEM, source: "x") == nil)
        guard case .success? = CertificateLoader.deferredBundle(chainPEM: pair.certPEM, keyPEM: pair.keyPEM, source: "e")?.build() else {
            Issue.record("a good deferred bundle did not build"); return
        }
        #expect(try CertificateLoader.selfSigned(names: ["e.test"]).build() == nil)  // built when it arrived
    }

    @Test func whatTheIndexCannotVouchForIsLoadedByOpenSSLAtOnce() throws {
        let pair = try CertificateIndexTests.p256(["a.test"])
        let other = try CertificateIndexTests.p256(["a.test"])
        let expired = try CertificateIndexTests.p256(["old.test"], lifetime: -60)
        for (chain, key, reason) in [(pair.certPEM, other.keyPEM, "does not belong"), (expired.certPEM, expired.keyPEM, "expired")] {
            #expect(CertificateLoader.deferredBundle(chainPEM: chain, keyPEM: key, source: "t") == nil)
            let error = #expect(throws: CertificateError.self) { try CertificateLoader.bundle(chainPEM: chain, keyPEM: key, source: "t") }
            #expect(error?.reason.contains(reason) == true)
        }
    }
}
