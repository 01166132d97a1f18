import Testing
@testable import Config

/// Upstream servers may be host names (resolved off the loops), listeners may not.
@Suite struct UpstreamServerConfigTests {
    @Test func namesAndResolveInterval() throws {
        let u = try #require(try parse("upstreams: { app: { servers: [\"App.Internal:9000\", \"127.0.0.1:1\"], resolve_interval: 5s } }")
            .upstreams["app"])
        #expect(u.servers == [SocketAddressSpec(host: "App.Internal", port: 9000), SocketAddressSpec(host: "127.0.0.1", port: 1)])
        #expect(u.resolveInterval == 5)
        #expect(try parse("upstreams: { app: { servers: [\"a.example:1\"] } }").upstreams["app"]?.resolveInterval == 30)
        expectError("upstreams: { app: { servers: [\"bad_name.example:80\"] } }", line: 1, column: 31,
                    "expected an IP address, a host name or \"localhost\" before the port, got \"bad_name.example\" in \"bad_name.example:80\"")
        expectError("listen: { https: [\"example.com:443\"] }", line: 1, column: 19,
                    "expected an IP address or \"localhost\" before the port, got \"example.com\" in \"example.com:443\"")
    }
}
