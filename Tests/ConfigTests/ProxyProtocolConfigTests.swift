import Testing
@testable import Config

/// `listen.proxy_protocol` and `upstreams.NAME.proxy_protocol`, and the address blocks they use.
@Suite struct ProxyProtocolConfigTests {
    @Test func listenersAndTrustedSources() throws {
        let listen = try parse("""
            listen:
              https: ["127.0.0.1:8443", "127.0.0.1:9443"]
              http: ["127.0.0.1:8080"]
              proxy_protocol:
                from: ["10.0.0.0/8", "192.0.2.7", "2001:db8::/32"]
                listeners: ["127.0.0.1:8443", "127.0.0.1:8080"]
            """).listen
        let p = try #require(listen.proxyProtocol)
        #expect(p.from.map(\.description) == ["10.0.0.0/8", "192.0.2.7/32", "2001:db8::/32"])
        #expect(listen.proxyProtocolSources(for: SocketAddressSpec(host: "127.0.0.1", port: 8443)) == p.from)
        #expect(listen.proxyProtocolSources(for: SocketAddressSpec(host: "127.0.0.1", port: 8080)) == p.from)
        #expect(listen.proxyProtocolSources(for: SocketAddressSpec(host: "127.0.0.1", port: 9443)) == nil)
        // Without `listeners`, every listener expects the header.
        let all = try parse("listen: { https: [\"127.0.0.1:8443\"], proxy_protocol: { from: [127.0.0.1] } }").listen
        #expect(all.proxyProtocolSources(for: SocketAddressSpec(host: "127.0.0.1", port: 8443))?.count == 1)
        #expect(try parse("workers: 1").listen.proxyProtocol == nil)
    }

    @Test func mistakes() {
        expectError("listen: { proxy_protocol: { listeners: [\":8443\"] } }", line: 1, column: 27,
                    "listen.proxy_protocol needs `from`: the load balancers' addresses or blocks (e.g. [\"10.0.0.0/8\"]); "
                        + "a header from anyone else would let any client claim any address")
        expectError("listen: { proxy_protocol: { from: [10.0.0.0/33] } }", line: 1, column: 36,
                    "expected an IP address or block like \"10.0.0.0/8\" or \"2001:db8::/32\", got \"10.0.0.0/33\"")
        expectError("listen: { proxy_protocol: { from: [] } }", line: 1, column: 35,
                    "listen.proxy_protocol.from needs at least one address or block")
        expectError("listen: { https: [\":8443\"], proxy_protocol: { from: [10.0.0.1], listeners: [\":9443\"] } }", line: 1, column: 77,
                    "\":9443\" is not one of listen.https or listen.http")
        expectError("upstreams: { app: { servers: [\"127.0.0.1:1\"], proxy_protocol: v3 } }", line: 1, column: 63,
                    "expected one of \"v1\" or \"v2\", got \"v3\"")
    }

    @Test func upstreamVersion() throws {
        let settings = try parse("upstreams: { a: { servers: [\"127.0.0.1:1\"], proxy_protocol: v2 }, b: { servers: [\"127.0.0.1:2\"] } }")
        #expect(settings.upstreams["a"]?.proxyProtocol == 2 && settings.upstreams["b"]?.proxyProtocol == nil)
    }

    @Test func blocks() throws {
        let ten = try #require(CIDR("10.0.0.0/8"))
        #expect(ten.contains([10, 200, 1, 1]) && !ten.contains([11, 0, 0, 1]))
        // IPv4 clients of a dual-stack listener arrive IPv4-mapped.
        #expect(ten.contains([0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xFF, 0xFF, 10, 1, 2, 3]))
        let host = try #require(CIDR("192.0.2.7"))
        #expect(host.prefix == 32 && host.contains([192, 0, 2, 7]) && !host.contains([192, 0, 2, 8]))
        let v6 = try #require(CIDR("2001:db8::/32"))
        #expect(v6.contains([0x20, 0x01, 0x0d, 0xb8] + [UInt8](repeating: 7, count: 12)) && !v6.contains([10, 0, 0, 1]))
        #expect(CIDR("10.1.2.3/12")?.description == "10.0.0.0/12" && CIDR("0.0.0.0/0")?.contains([1, 2, 3, 4]) == true)
        for bad in ["10.0.0.0/", "10.0.0.0/-1", "10.0.0.0/8/8", "example.com", "10.0.0.0/ 8", "::/129", ""] {
            #expect(CIDR(bad) == nil, "\(bad)")
        }
    }
}
