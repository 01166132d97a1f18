import Testing
@testable import Config

/// `response_headers` on a route: fields set on its every response.
@Suite struct ResponseHeadersConfigTests {
    @Test func headersAreReadInOrder() throws {
        let settings = try parse("""
            routes:
              - respond: { status: 200 }
                response_headers: { X-Content-Type-Options: nosniff, Strict-Transport-Security: "max-age=31536000" }
            """)
        #expect(settings.routes[0].responseHeaders == [HeaderSetting(name: "X-Content-Type-Options", value: "nosniff"),
                                                       HeaderSetting(name: "Strict-Transport-Security", value: "max-age=31536000")])
        #expect(try parse("routes: [ { respond: { status: 200 } } ]").routes[0].responseHeaders.isEmpty)
    }

    @Test func aNameMustBeAToken() {
        expectError("routes:\n  - respond: {}\n    response_headers: { \"X Bad\": v }\n", line: 3, column: 25,
                    "expected a header name like X-Content-Type-Options, got \"X Bad\"")
    }

    @Test func aValueCannotHoldALineBreak() {
        expectError("routes:\n  - respond: {}\n    response_headers: { X-A: \"v\\r\\nX-B: w\" }\n", line: 3, column: 30,
                    "expected a header value without control characters, got \"v\\r\\nX-B: w\"")
    }

    @Test func framingFieldsAreTheProxys() {
        expectError("routes:\n  - respond: {}\n    response_headers: { Content-Length: \"5\" }\n", line: 3, column: 25,
                    "\"Content-Length\" is written by the proxy itself and cannot be set here")
    }

    @Test func aNameTwiceIsAnError() {
        expectError("routes:\n  - respond: {}\n    response_headers: { X-A: v, x-a: w }\n", line: 3, column: 33,
                    "header \"x-a\" is given twice (names are case-insensitive)")
    }
}
