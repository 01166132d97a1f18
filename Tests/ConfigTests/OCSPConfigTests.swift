import Testing
@testable import Config

@Suite struct OCSPConfigTests {
    @Test func onByDefaultWithACacheNextToTheConfiguration() throws {
        let tls = try parse("").tls
        #expect(tls.ocspStapling)
        #expect(tls.ocspCache == "/etc/edgeproxy/ocsp-cache")
    }

    @Test func keys() throws {
        let tls = try parse("""
            tls:
              ocsp_stapling: false
              ocsp_cache: /var/cache/edgeproxy/ocsp
            """).tls
        #expect(!tls.ocspStapling)
        #expect(tls.ocspCache == "/var/cache/edgeproxy/ocsp")
    }

    @Test func stapleMustBeABoolean() {
        do {
            _ = try parse("tls:\n  ocsp_stapling: sometimes\n")
            Issue.record("accepted a non-boolean ocsp_stapling")
        } catch {
            #expect(error.line == 2)
        }
    }
}
