import Testing
@testable import Config

/// `upstreams.NAME.tls`: TLS towards the origin servers.
@Suite struct UpstreamTLSConfigTests {
    let readable = "/etc/ssl/certs/ca-certificates.crt"

    @Test func defaultsAndEveryKey() throws {
        #expect(try parse("upstreams: { a: { servers: [\"127.0.0.1:1\"] } }").upstreams["a"]?.tls == nil)
        #expect(try parse("upstreams: { a: { servers: [\"127.0.0.1:1\"], tls: false } }").upstreams["a"]?.tls == nil)
        let plain = try #require(try parse("upstreams: { a: { servers: [\"127.0.0.1:1\"], tls: true } }").upstreams["a"]?.tls)
        #expect(plain == UpstreamTLS() && plain.verify && plain.sessionReuse && plain.caFile == nil && plain.serverName == nil)
        #expect(try parse("upstreams: { a: { servers: [\"127.0.0.1:1\"], tls: {} } }").upstreams["a"]?.tls == UpstreamTLS())
        let full = try #require(try parse("""
            upstreams:
              a:
                servers: ["10.0.0.1:443"]
                tls:
                  ca: \(readable)
                  server_name: Origin.Example.com
                  verify: false
                  client_certificate: \(readable)
                  client_key: \(readable)
                  session_reuse: false
            """).upstreams["a"]?.tls)
        #expect(full.caFile == readable && full.serverName == "origin.example.com" && !full.verify && !full.sessionReuse)
        #expect(full.clientCertificate == readable && full.clientKey == readable)
    }

    @Test func relativePathsResolveAgainstTheConfigDirectory() {
        // Not readable there, but the message shows where it was looked for.
        expectError("upstreams: { a: { servers: [\"127.0.0.1:1\"], tls: { ca: origin-ca.pem } } }", line: 1, column: 56,
                    "tls.ca of upstream \"a\": cannot read \"/etc/edgeproxy/origin-ca.pem\" (the PEM roots the servers' certificates must lead to)")
    }

    @Test func mistakes() {
        expectError("upstreams: { a: { servers: [\"127.0.0.1:1\"], tls: maybe } }", line: 1, column: 50,
                    "expected true or false, got \"maybe\"")
        expectError("upstreams: { a: { servers: [\"127.0.0.1:1\"], tls: { sni: x } } }", line: 1, column: 52,
                    "unknown key \"sni\" in tls of upstream \"a\" (expected one of: ca, server_name, verify, client_certificate, client_key, session_reuse)")
        expectError("upstreams: { a: { servers: [\"127.0.0.1:1\"], tls: { server_name: \"bad name\" } } }", line: 1, column: 65,
                    "expected a host name like \"example.com\", got \"bad name\"")
        expectError("upstreams: { a: { servers: [\"127.0.0.1:1\"], tls: { verify: sometimes } } }", line: 1, column: 60,
                    "expected true or false, got \"sometimes\"")
        expectError("upstreams: { a: { servers: [\"127.0.0.1:1\"], tls: { client_key: \(readable) } } }", line: 1, column: 64,
                    "tls of upstream \"a\": give both client_certificate and client_key, or neither")
        expectError("upstreams: { a: { servers: [\"127.0.0.1:1\"], tls: { client_certificate: /nonexistent/c.pem, client_key: \(readable) } } }",
                    line: 1, column: 72,
                    "tls.client_certificate of upstream \"a\": cannot read \"/nonexistent/c.pem\" (a PEM certificate shown to servers that ask for one)")
    }
}
