import DNS
import Testing
import TestSupport
@testable import ACME

/// The DNS-01 solver without a name server: the TXT value, zone membership, and how an
/// unreachable primary is reported. Against BIND: Tests/Integration/test_acme_dns.py.
@Suite struct DNS01SolverTests {
    @Test func txtValueIsBase64URLOfSHA256() {
        // SHA-256("abc") (FIPS 180-2) is ba7816bf…15ad; base64url without padding.
        #expect(DNS01Solver.txtValue(keyAuthorization: "abc") == "ungWv48Bz-pBQUDeXa4iI7ADYaOWF3qctBD_YfIAFa0")
        // RFC 8555 §8.4's token with RFC 7638 §3.1's thumbprint as the key authorization.
        let keyAuthorization = "evaGxfADs6pSRb2LAv9IZf17Dt3juxGJ-PCt92wr-oA.NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"
        let value = DNS01Solver.txtValue(keyAuthorization: keyAuthorization)
        #expect(value == "ZTRx1Ckl1-tM05o5zaizTTA0yUy5AGereMgSNWC6Ll8")
        #expect(value.count == 43 && !value.contains("="))
    }

    @Test func challengeNameDropsTheWildcard() {
        #expect(DNSUpdate.challengeName(for: "wild.example.test") == "_acme-challenge.wild.example.test")
        #expect(DNSUpdate.challengeName(for: "*.wild.example.test") == "_acme-challenge.wild.example.test")
    }

    @Test func zoneMembership() {
        #expect(DNS01Solver.name("_acme-challenge.a.example.test", isIn: "example.test"))
        #expect(DNS01Solver.name("Example.Test", isIn: "example.test"))
        #expect(!DNS01Solver.name("_acme-challenge.badexample.test", isIn: "example.test"))
        #expect(!DNS01Solver.name("example.test", isIn: "a.example.test"))
    }

    @Test func anUnreachablePrimaryIsADNSErrorNamingIt() throws {
        let port = try freePorts(1)[0]
        var configuration = DNS01Configuration(server: "127.0.0.1", port: port,
                                               key: try TSIGKey(name: "acme", base64Secret: "c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0LTMyYg=="))
        configuration.zone = "example.test"
        configuration.queryTimeout = 0.3
        let solver = DNS01Solver(configuration: configuration)
        let error = #expect(throws: ACMEError.self) {
            try solver.present(domain: "www.example.test", token: "t", keyAuthorization: "t.k")
        }
        #expect(error?.code == .dns)
        #expect(error?.reason.contains("127.0.0.1:\(port)") == true, "\(String(describing: error))")
    }
}
