import EventLoop
import Testing
@testable import Front

@Suite struct CombinedLogTests {
    func line(client: String = "127.0.0.1:5000", path: String = "/p?q=1", proto: String = "HTTP/1.1",
              referer: String? = nil, agent: String? = nil) -> String {
        let e = AccessLog.Entry(client: client, sni: "a.test", host: "a.test", method: "GET", path: path, status: 404,
                                bytesIn: 10, bytesOut: 1234, upstream: nil, durationMS: 1, upstreamMS: nil, proto: proto,
                                referer: referer, userAgent: agent)
        var out: [UInt8] = []
        e.appendCombinedLine(to: &out, time: Array("06/Dec/2026:01:02:03 +0000".utf8))
        return String(decoding: out, as: UTF8.self)
    }

    @Test func nginxCombinedLine() {
        #expect(line(referer: "https://r.test/", agent: "curl/8") ==
                "127.0.0.1 - - [06/Dec/2026:01:02:03 +0000] \"GET /p?q=1 HTTP/1.1\" 404 1234 \"https://r.test/\" \"curl/8\"\n")
    }

    /// An HTTP/2 request's line ends in "HTTP/2.0", as nginx writes it (the JSON format's `protocol` says "HTTP/2").
    @Test func http2AsNginxWritesIt() {
        #expect(line(proto: "HTTP/2").contains("\"GET /p?q=1 HTTP/2.0\" 404 1234 "))
    }

    /// No port in the address, "-" for what is missing, the "(plain)" note left out of the protocol.
    @Test func addressesAndAbsentFields() {
        #expect(line(client: "[2001:db8::1]:443", proto: "HTTP/1.1 (plain)").hasPrefix("2001:db8::1 - - ["))
        #expect(line(proto: "HTTP/1.1 (plain)").contains("\"GET /p?q=1 HTTP/1.1\" 404 1234 \"-\" \"-\"\n"))
    }

    /// As nginx escapes variables: quotes, backslashes, control and non-ASCII bytes as \xHH, so a
    /// field can never end early or add a line.
    @Test func escaping() {
        let l = line(path: "/a\"b\\c\nd", agent: "é\u{7f}")
        #expect(l.contains("\"GET /a\\x22b\\x5Cc\\x0Ad HTTP/1.1\""))
        #expect(l.hasSuffix("\"\\xC3\\xA9\\x7F\"\n"))
        #expect(l.filter { $0 == "\n" }.count == 1)
    }
}

@Suite struct InheritedSocketMatchTests {
    func address(_ host: String, _ port: UInt16) throws -> SocketAddress { try SocketAddress.resolve(host: host, port: port) }

    /// Each inherited socket goes to the configured address it is bound to (several may share one:
    /// every loop's socket of the process handing over); the rest are reported.
    @Test func matchesByFamilyAddressAndPort() throws {
        let configured = [try address("127.0.0.1", 8443), try address("::1", 8443), try address("*", 8080)]
        let passed = [InheritedSocket(fd: 3, address: try address("127.0.0.1", 8443), name: "a"),
                      InheritedSocket(fd: 4, address: try address("127.0.0.1", 8443), name: "b"),
                      InheritedSocket(fd: 5, address: try address("::1", 8443), name: "c"),
                      InheritedSocket(fd: 6, address: try address("0.0.0.0", 8080), name: "d"),
                      InheritedSocket(fd: 7, address: try address("127.0.0.1", 8444), name: "e")]
        let (byAddress, unmatched) = Server.match(configured, passed)
        #expect(byAddress == [[3, 4], [5], [6]])
        #expect(unmatched.map(\.name) == ["e"])
    }
}
