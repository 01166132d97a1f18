import XCTest
@testable import HTTP1

final class RequestParserTests: XCTestCase {
    func testSimpleGet() throws {
        let raw = "GET /index.html?q=1 HTTP/1.1\r\nHost: Example.COM:8080\r\nUser-Agent:  curl/8.0 \t\r\nAccept: */*\r\n\r\n"
        var parser = RequestParser()
        let (consumed, event) = try raw.bytes.withUnsafeBytes { try parser.parse($0) }
        XCTAssertEqual(consumed, raw.utf8.count)
        guard case .head(let head) = event else { return XCTFail("\(event)") }
        XCTAssertEqual(head, RequestHead(
            method: "GET", target: "/index.html?q=1", versionMinor: 1,
            fields: [HTTPField(name: "Host", value: "Example.COM:8080"),
                     HTTPField(name: "User-Agent", value: "curl/8.0"),
                     HTTPField(name: "Accept", value: "*/*")],
            host: "example.com:8080", framing: .none, keepAlive: true, expectContinue: false,
            upgrade: nil, connection: ConnectionOptions()))
        // A body-less request ends on the next call without consuming anything.
        let next = try [UInt8]().withUnsafeBytes { try parser.parse($0) }
        XCTAssertEqual(next.consumed, 0)
        XCTAssertEqual(next.event, .end(trailers: []))
    }

    func testPartialHeadAsksForMoreWithoutConsuming() throws {
        var parser = RequestParser()
        let (consumed, event) = try "GET / HTTP/1.1\r\nHost: a\r\n".bytes.withUnsafeBytes { try parser.parse($0) }
        XCTAssertEqual(consumed, 0)
        XCTAssertEqual(event, .needMore)
        let done = try "GET / HTTP/1.1\r\nHost: a\r\n\r\n".bytes.withUnsafeBytes { try parser.parse($0) }
        XCTAssertEqual(done.consumed, 27)
    }

    func testKeepAliveAndPipelining() throws {
        let raw = request(line: "GET /a HTTP/1.1")
            + request("Host: example.com\r\nContent-Length: 5\r\n", line: "POST /b HTTP/1.1", body: "hello")
            + request("Host: example.com\r\nTransfer-Encoding: chunked\r\n", line: "PUT /c HTTP/1.1", body: "3\r\nabc\r\n0\r\n\r\n")
            + request("Host: example.com\r\nConnection: close\r\n", line: "GET /d HTTP/1.1")
        let parsed = try parseRequests(oneShot(raw))
        XCTAssertEqual(parsed.map(\.head.target), ["/a", "/b", "/c", "/d"])
        XCTAssertEqual(parsed.map(\.head.method), ["GET", "POST", "PUT", "GET"])
        XCTAssertEqual(parsed.map(\.body), [[], "hello".bytes, "abc".bytes, []])
        XCTAssertEqual(parsed.map(\.head.keepAlive), [true, true, true, false])
        XCTAssertEqual(parsed.map(\.head.framing), [.none, .length(5), .chunked, .none])
        XCTAssertEqual(parsed.last?.head.connection, ConnectionOptions(close: true))
        XCTAssertTrue(parsed.allSatisfy { $0.trailers == [] })
    }

    func testChunkedWithTrailersByteByByteEqualsOneShot() throws {
        let raw = request("Host: example.com\r\nTransfer-Encoding: chunked\r\nTrailer: X-Sum\r\n", line: "POST /up HTTP/1.1",
                          body: "5;name=value;q=\"a \\\" b\"\r\nhello\r\n1A\r\nabcdefghijklmnopqrstuvwxyz\r\n0\r\nX-Sum: 42\r\nX-Other:\tok \r\n\r\n")
            + request(line: "GET /next HTTP/1.1")
        let whole = try parseRequests(oneShot(raw))
        XCTAssertEqual(whole.count, 2)
        XCTAssertEqual(whole[0].body, "helloabcdefghijklmnopqrstuvwxyz".bytes)
        XCTAssertEqual(whole[0].trailers, [HTTPField(name: "X-Sum", value: "42"), HTTPField(name: "X-Other", value: "ok")])
        XCTAssertEqual(try parseRequests(byteByByte(raw)), whole)
        for size in [2, 3, 7, 16] {
            XCTAssertEqual(try parseRequests(pieces(raw, size: size)), whole, "pieces of \(size)")
        }
    }

    func testContentLengthBodySplitAcrossCalls() throws {
        let raw = request("Host: example.com\r\nContent-Length: 11\r\n", line: "POST / HTTP/1.1", body: "hello world")
        var parser = RequestParser()
        var buffer = Array(raw.bytes.prefix(raw.utf8.count - 8))  // head + "hel"
        let head = try buffer.withUnsafeBytes { try parser.parse($0) }
        XCTAssertEqual(head.event, .head(try XCTUnwrap(parseRequests(oneShot(raw)).first?.head)))
        buffer.removeFirst(head.consumed)
        let first = try buffer.withUnsafeBytes { try parser.parse($0) }
        XCTAssertEqual(first.consumed, 3)
        XCTAssertEqual(first.event, .body(0..<3))
        buffer = Array("lo world".utf8) + Array("GET".utf8)  // the next request's start must not be taken as body
        let second = try buffer.withUnsafeBytes { try parser.parse($0) }
        XCTAssertEqual(second.consumed, 8)
        XCTAssertEqual(second.event, .body(0..<8))
        let end = try buffer.withUnsafeBytes { try parser.parse(UnsafeRawBufferPointer(rebasing: $0[8...])) }
        XCTAssertEqual(end.consumed, 0)
        XCTAssertEqual(end.event, .end(trailers: []))
    }

    func testContentLengthZeroKeepsLengthFraming() throws {
        let parsed = try parseRequests(oneShot(request("Host: a\r\nContent-Length: 0\r\n", line: "POST / HTTP/1.1")))
        XCTAssertEqual(parsed.first?.head.framing, .length(0))
        XCTAssertEqual(parsed.first?.trailers, [])
    }

    func testHTTP10KeepAliveSemantics() throws {
        let plain = try parseRequests(oneShot("GET / HTTP/1.0\r\n\r\n"))
        XCTAssertEqual(plain.first?.head.versionMinor, 0)
        XCTAssertEqual(plain.first?.head.keepAlive, false)
        XCTAssertNil(plain.first?.head.host)
        let kept = try parseRequests(oneShot("GET / HTTP/1.0\r\nConnection: Keep-Alive\r\nHost: a\r\n\r\n"))
        XCTAssertEqual(kept.first?.head.keepAlive, true)
        XCTAssertEqual(kept.first?.head.host, "a")
        let both = try parseRequests(oneShot("GET / HTTP/1.0\r\nConnection: keep-alive, close\r\n\r\n"))
        XCTAssertEqual(both.first?.head.keepAlive, false)
        let closed = try parseRequests(oneShot(request("Host: a\r\nConnection: CLOSE\r\n")))
        XCTAssertEqual(closed.first?.head.keepAlive, false)
    }

    func testExpectContinue() throws {
        let parsed = try parseRequests(oneShot(request("Host: a\r\nExpect: 100-Continue\r\nContent-Length: 3\r\n", line: "PUT /x HTTP/1.1", body: "abc")))
        XCTAssertEqual(parsed.first?.head.expectContinue, true)
        XCTAssertEqual(parsed.first?.body, "abc".bytes)
        let other = try parseRequests(oneShot(request("Host: a\r\nExpect: something-else\r\n")))
        XCTAssertEqual(other.first?.head.expectContinue, false)
    }

    func testUpgradeWebSocket() throws {
        let fields = "Host: a\r\nConnection: keep-alive, Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\n"
        let parsed = try parseRequests(oneShot(request(fields, line: "GET /chat HTTP/1.1")))
        XCTAssertEqual(parsed.first?.head.upgrade, "websocket")
        XCTAssertEqual(parsed.first?.head.connection, ConnectionOptions(keepAlive: true, upgrade: true))
        // Upgrade without Connection: upgrade is not an upgrade request (RFC 9110 §7.8).
        let unlisted = try parseRequests(oneShot(request("Host: a\r\nUpgrade: websocket\r\n")))
        XCTAssertNil(unlisted.first?.head.upgrade)
        // ... nor is one in HTTP/1.0.
        let old = try parseRequests(oneShot("GET / HTTP/1.0\r\nConnection: upgrade\r\nUpgrade: websocket\r\n\r\n"))
        XCTAssertNil(old.first?.head.upgrade)
    }

    func testAbsoluteFormIsConvertedToOriginForm() throws {
        let cases: [(String, String, String)] = [
            ("http://Example.com:8080/p/a?q=1", "/p/a?q=1", "example.com:8080"),
            ("HTTPS://example.com", "/", "example.com"),
            ("http://example.com?x=1", "/?x=1", "example.com"),
            ("http://[::1]:8443/", "/", "[::1]:8443"),
        ]
        for (target, origin, host) in cases {
            let head = try XCTUnwrap(parseRequests(oneShot(request("Host: \(host)\r\n", line: "GET \(target) HTTP/1.1"))).first?.head)
            XCTAssertEqual(head.target, origin, target)
            XCTAssertEqual(head.host, host, target)
        }
        // HTTP/1.0 needs no Host; the authority supplies it.
        let old = try XCTUnwrap(parseRequests(oneShot("GET http://a.example/x HTTP/1.0\r\n\r\n")).first?.head)
        XCTAssertEqual(old.host, "a.example")
        XCTAssertEqual(old.target, "/x")
    }

    func testAsteriskFormForOptions() throws {
        let head = try XCTUnwrap(parseRequests(oneShot(request(line: "OPTIONS * HTTP/1.1"))).first?.head)
        XCTAssertEqual(head.target, "*")
    }

    func testAuthorityFormForConnect() throws {
        let head = try XCTUnwrap(parseRequests(oneShot(request("Host: example.com:443\r\n", line: "CONNECT example.com:443 HTTP/1.1"))).first?.head)
        XCTAssertEqual(head.target, "example.com:443")
        XCTAssertEqual(head.host, "example.com:443")
    }

    func testFieldValuesKeepInnerWhitespaceAndHTAB() throws {
        let head = try XCTUnwrap(parseRequests(oneShot(request("Host: a\r\nX-A: \t one \t two\t\r\nX-Empty:\r\nX-UTF8: caf\u{e9}\r\n"))).first?.head)
        XCTAssertEqual(head.fields.dropFirst().map(\.value), ["one \t two", "", "caf\u{e9}"])
    }

    func testLeadingEmptyLinesAreIgnored() throws {
        // RFC 9112 §2.2: at least one CRLF before a request line is to be ignored.
        let parsed = try parseRequests(oneShot("\r\n\r\n" + request()))
        XCTAssertEqual(parsed.count, 1)
        XCTAssertEqual(try parseRequests(byteByByte("\r\n" + request() + "\r\n" + request())).count, 2)
    }

    func testMethodsAreCaseSensitiveTokens() throws {
        let head = try XCTUnwrap(parseRequests(oneShot(request(line: "get / HTTP/1.1"))).first?.head)
        XCTAssertEqual(head.method, "get")
    }

    func testMaxBodyBytesBoundaryIsAccepted() throws {
        var parser = RequestParser(maxBodyBytes: 5)
        let parsed = try parseRequests(oneShot(request("Host: a\r\nContent-Length: 5\r\n", line: "POST / HTTP/1.1", body: "12345")
                                               + request("Host: a\r\nTransfer-Encoding: chunked\r\n", line: "POST / HTTP/1.1", body: "2\r\n12\r\n3\r\n345\r\n0\r\n\r\n")),
                                       parser: &parser)
        XCTAssertEqual(parsed.map(\.body), ["12345".bytes, "12345".bytes])
    }

    func testHeadExactlyAtLimitIsAccepted() throws {
        let raw = request()
        var parser = RequestParser(maxHeaderBytes: raw.utf8.count)
        XCTAssertEqual(try parseRequests(byteByByte(raw), parser: &parser).count, 1)
    }

    func testErrorsAreSticky() throws {
        var parser = RequestParser()
        XCTAssertThrowsError(try "GET / HTTP/1.1\nHost: a\r\n\r\n".bytes.withUnsafeBytes { try parser.parse($0) })
        XCTAssertThrowsError(try request().bytes.withUnsafeBytes { try parser.parse($0) }) { error in
            XCTAssertEqual((error as? HTTPParseError)?.status, 400)
        }
    }

    func testFieldNameHelpers() {
        XCTAssertTrue(HTTPField.nameEquals("Content-Length", "content-LENGTH"))
        XCTAssertFalse(HTTPField.nameEquals("Content-Length", "Content-Lengtx"))
        XCTAssertFalse(HTTPField.nameEquals("Host", "Hosts"))
        XCTAssertEqual([HTTPField(name: "X-A", value: "1")].firstValue(named: "x-a"), "1")
    }
}
