import Foundation
import Testing
@testable import ACME

@Suite struct ProblemTests {
    @Test func parsesSubproblems() throws {
        // RFC 8555 §6.7.1's example.
        let body = #"""
        {"type":"urn:ietf:params:acme:error:malformed","detail":"Some of the identifiers requested were rejected",
         "subproblems":[{"type":"urn:ietf:params:acme:error:malformed","detail":"Invalid underscore in DNS name \"_example.org\"",
                         "identifier":{"type":"dns","value":"_example.org"}},
                        {"type":"urn:ietf:params:acme:error:rejectedIdentifier","detail":"This CA will not issue for \"example.net\"",
                         "identifier":{"type":"dns","value":"example.net"}}]}
        """#
        let problem = try JSONDecoder().decode(Problem.self, from: Data(body.utf8))
        #expect(problem.is(Problem.malformed))
        #expect(problem.shortType == "malformed")
        #expect(problem.subproblems?.count == 2)
        #expect(problem.subproblems?[1].identifier == Identifier(dns: "example.net"))
        #expect(problem.description.contains("example.net: urn:ietf:params:acme:error:rejectedIdentifier"))
    }

    @Test func retryAfterForms() {
        let now = Date(timeIntervalSince1970: 1_445_412_480)  // Wed, 21 Oct 2015 07:28:00 GMT
        #expect(RetryAfter.seconds("120", now: now) == 120)
        #expect(RetryAfter.seconds("Wed, 21 Oct 2015 07:29:00 GMT", now: now) == 60)
        #expect(RetryAfter.seconds("Wed, 21 Oct 2015 07:27:00 GMT", now: now) == 0)
        #expect(RetryAfter.seconds("-5", now: now) == nil)
        #expect(RetryAfter.seconds("soon", now: now) == nil)
        #expect(RetryAfter.seconds(nil, now: now) == nil)
    }

    @Test func revocationReasonsByNameOrCode() {
        #expect(RevocationReason(name: "keyCompromise") == .keyCompromise && RevocationReason(name: "KEYCOMPROMISE") == .keyCompromise)
        #expect(RevocationReason(name: "4") == .superseded && RevocationReason(name: "superseded")?.rawValue == 4)
        // Codes a subscriber may not ask for (RFC 5280 §5.3.1: CA-side reasons, holds) are refused.
        #expect(RevocationReason(name: "cACompromise") == nil && RevocationReason(name: "6") == nil && RevocationReason(name: "") == nil)
    }
}
