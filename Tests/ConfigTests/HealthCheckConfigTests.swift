import Testing
@testable import Config

/// `upstreams.NAME.health_check`: defaults, every key, and the mistakes an operator can make.
@Suite struct HealthCheckConfigTests {
    static func upstream(_ check: String) throws -> Upstream? {
        try parse("upstreams:\n  app:\n    servers: [\"127.0.0.1:9000\"]\n" + check).upstreams["app"]
    }

    @Test func absentMeansOff() throws {
        #expect(try Self.upstream("")?.healthCheck == nil)
    }

    @Test func pathAloneTakesTheDefaults() throws {
        let check = try #require(try Self.upstream("    health_check: { path: /healthz }\n")?.healthCheck)
        var expected = HealthCheck(path: "/healthz")
        expected.method = "GET"; expected.host = nil; expected.expect = 200...399
        expected.interval = 5; expected.timeout = 2; expected.rise = 2; expected.fall = 3; expected.jitter = 0
        #expect(check == expected)
    }

    @Test func everyKey() throws {
        let check = try #require(try Self.upstream("""
                health_check:
                  path: "/status?full=1"
                  method: HEAD
                  host: app.example:8080
                  expect: 204
                  interval: 200ms
                  timeout: 1s
                  rise: 1
                  fall: 4
                  jitter: 50%

            """)?.healthCheck)
        #expect(check.path == "/status?full=1" && check.method == "HEAD" && check.host == "app.example:8080")
        #expect(check.expect == 204...204 && check.expectText == "204")
        #expect(check.interval == 0.2 && check.timeout == 1 && check.rise == 1 && check.fall == 4)
        #expect(check.jitter == 0.1)  // half of the interval, given before or after it
        #expect(try Self.upstream("    health_check: { jitter: 300ms, path: /, expect: 200-299 }\n")?.healthCheck?.jitter == 0.3)
        #expect(try Self.upstream("    health_check: { path: /, expect: 200-299 }\n")?.healthCheck?.expectText == "200-299")
    }

    @Test func mistakes() {
        let head = "upstreams:\n  app:\n    servers: [\"127.0.0.1:9000\"]\n"
        expectError(head + "    health_check: { interval: 1s }\n", line: 4, column: 5,
                    #"health_check of upstream "app" needs path (the request target to check, like "/healthz")"#)
        expectError(head + "    health_check:\n", line: 4, column: 5,
                    #"health_check of upstream "app" needs path (the request target to check, like "/healthz")"#)
        expectError(head + "    health_check: { path: healthz }\n", line: 4, column: 27,
                    #"expected a request target starting with "/", like "/healthz" (URI characters only: percent-encode spaces and the like), got "healthz""#)
        expectError(head + "    health_check: { path: \"/a b\" }\n", line: 4, column: 27,
                    #"expected a request target starting with "/", like "/healthz" (URI characters only: percent-encode spaces and the like), got "/a b""#)
        expectError(head + "    health_check: { path: /, method: POST }\n", line: 4, column: 38,
                    #"expected one of "GET", "HEAD" or "OPTIONS", got "POST""#)
        expectError(head + "    health_check: { path: /, expect: 399-200 }\n", line: 4, column: 38,
                    #"expected a status like "200" or a range like "200-399" (100 to 599), got "399-200""#)
        expectError(head + "    health_check: { path: /, expect: 2xx }\n", line: 4, column: 38,
                    #"expected a status like "200" or a range like "200-399" (100 to 599), got "2xx""#)
        expectError(head + "    health_check: { path: /, rise: 0 }\n", line: 4, column: 36,
                    #"expected an integer of at least 1, got "0""#)
        expectError(head + "    health_check: { path: /, interval: 0s }\n", line: 4, column: 40,
                    #"expected a duration greater than zero, got "0s""#)
        expectError(head + "    health_check: { path: /, jitter: 150% }\n", line: 4, column: 38,
                    #"expected a duration like "500ms" or a share of the interval like "10%" (at most 100%), got "150%""#)
        expectError(head + "    health_check: { path: /, host: \"a b\" }\n", line: 4, column: 36,
                    #"expected a Host header value like "example.com" or "example.com:8080", got "a b""#)
        expectError(head + "    health_check: { path: /, port: 80 }\n", line: 4, column: 30,
                    #"unknown key "port" in health_check of upstream "app" (expected one of: path, method, host, expect, interval, timeout, rise, fall, jitter)"#)
    }
}
