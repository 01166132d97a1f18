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
        let first = try #require(store.select(ClientHello(serverName: "d.test", offersECDSA: true, alpn: [])))
        #expect(bundle.isDeferred && !bundle.isPending && first.leaf.serialHex == pair.cert.serialHex)
        #expect(store.select(ClientHello(serverName: "d.test", offersECDSA: true, alpn: [])) === first)
        guard case .success(let built)? = bundle.build() else { Issue.record("build failed"); return }
        #expect(built.certified === first && built.names == bundle.names)

        // The index reads only the leaf; OpenSSL's chain check refuses it when it is built.
        let stranger = try SelfSigned.make(names: ["other-ca.test"], key: try PrivateKey.generateP256())
        let disordered = try #require(CertificateLoader.deferredBundle(chainPEM: pair.certPEM + stranger.pem(), keyPEM: pair.keyPEM,
                                                                        source: "x"))
        let refusing = CertificateStore(Snapshot([disordered], defaultName: nil), strictSNI: true)
        #expect(refusing.select(ClientHello(serverName: "d.test", offersECDSA: true, alpn: [])) == nil)
        guard case .failure(let error)? = disordered.build() else { Issue.record("built a disordered chain"); return }
        #expect(error.reason.contains("chain out of order") && error.source == "x")
        #expect(CertificateLoader.deferredBundle(chainPEM: pair.certPEM, keyPEM: pair.keyPEM, source: "e")?.build() != nil)
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
