import XCTest
@testable import HTTP1

final class ResponseParserTests: XCTestCase {
    func testContentLengthResponse() throws {
        let raw = "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nServer: x\r\n\r\nhello"
        let parsed = try parseResponses(oneShot(raw))
        XCTAssertEqual(parsed.count, 1)
        XCTAssertEqual(parsed[0].head, ResponseHead(status: 200, reason: "OK", versionMinor: 1,
                                                    fields: [HTTPField(name: "Content-Length", value: "5"), HTTPField(name: "Server", value: "x")],
                                                    framing: .length(5), keepAlive: true, connection: ConnectionOptions(),
                                                    contentLength: 5))
        XCTAssertEqual(parsed[0].body, "hello".bytes)
        XCTAssertEqual(parsed[0].trailers, [])
        XCTAssertEqual(try parseResponses(byteByByte(raw)), parsed)
    }

    /// A reused field buffer (the last head's, handed back once written out) holds only the new head's
    /// fields, even when it is still shared, and an oversize one is not kept.
    func testReusedFieldBufferHoldsOnlyTheNextHead() throws {
        struct NoHead: Error {}
        func head(_ raw: String, parser: inout ResponseParser) throws -> ResponseHead {
            try raw.bytes.withUnsafeBytes { buf in
                guard case (_, .head(let h)) = try parser.parse(buf) else { throw NoHead() }   // fails the test
                return h
            }
        }
        var parser = ResponseParser()
        let first = try head("HTTP/1.1 200 OK\r\nContent-Length: 0\r\nX-First: 1\r\n\r\n", parser: &parser)
        _ = try parser.parse(UnsafeRawBufferPointer(start: nil, count: 0))   // the empty body ends it
        parser.reuse(first.fields)   // still shared with `first`: must be copied, not written over
        let second = try head("HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n", parser: &parser)
        XCTAssertEqual(Array(second.fields), [HTTPField(name: "Content-Length", value: "0")])
        XCTAssertEqual(Array(first.fields), [HTTPField(name: "Content-Length", value: "0"), HTTPField(name: "X-First", value: "1")])

        var big = HTTPFields()
        big.reserveCapacity(bytes: ResponseParser.keptSectionBytes * 2)
        big.append(name: "X-Big", value: "1")
        var again = ResponseParser()
        again.reuse(big)
        let third = try head("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", parser: &again)
        XCTAssertLessThanOrEqual(third.fields.capacity, ResponseParser.keptSectionBytes)
        XCTAssertEqual(Array(third.fields), [HTTPField(name: "Content-Length", value: "0")])
    }

    /// A forwarder's parser leaves out what is for this hop only, and keeps what the framing means.
    func testEndToEndHeadsLeaveConnectionSpecificFieldsOut() throws {
        struct NoHead: Error {}
        func head(_ raw: String, _ parser: inout ResponseParser) throws -> ResponseHead {
            try raw.bytes.withUnsafeBytes { buf in
                guard case (_, .head(let h)) = try parser.parse(buf) else { throw NoHead() }   // fails the test
                return h
            }
        }
        var parser = ResponseParser(endToEnd: true)
        let raw = "HTTP/1.1 200 OK\r\nServer: x\r\nConnection: keep-alive, X-Hop\r\nKeep-Alive: timeout=5\r\n"
            + "Content-Length: 3\r\nX-Hop: private\r\nVary: accept\r\nProxy-Connection: close\r\n\r\n"
        let h = try head(raw, &parser)
        XCTAssertEqual(Array(h.fields), [HTTPField(name: "Server", value: "x"), HTTPField(name: "Vary", value: "accept")])
        XCTAssertEqual(h.framing, .length(3))
        XCTAssertEqual(h.contentLength, 3)
        XCTAssertTrue(h.keepAlive)
        XCTAssertEqual(h.connection.others, ["x-hop"])
        // The same head through a plain parser keeps every field.
        var plain = ResponseParser()
        XCTAssertEqual(try head(raw, &plain).fields.count, 7)

        // HEAD: no body, but the length the origin declared is still known.
        var forHead = ResponseParser(endToEnd: true)
        forHead.expect(requestMethod: "HEAD")
        let headResponse = try head("HTTP/1.1 200 OK\r\nContent-Length: 42\r\nConnection: close\r\nClose: x\r\n\r\n", &forHead)
        XCTAssertEqual(headResponse.framing, BodyFraming.none)
        XCTAssertEqual(headResponse.contentLength, 42)
        XCTAssertEqual(Array(headResponse.fields), [], "Connection: close names a field called Close")

        // Fields left out still count towards the limit.
        var limited = ResponseParser(maxHeaders: 2, endToEnd: true)
        let many = "HTTP/1.1 200 OK\r\nConnection: keep-alive\r\nKeep-Alive: 1\r\nServer: x\r\n\r\n"
        XCTAssertThrowsError(try head(many, &limited))
    }

    func testChunkedResponseWithTrailers() throws {
        let raw = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n4\r\nWiki\r\n5;x=y\r\npedia\r\n0\r\nExpires: never\r\n\r\n"
        let parsed = try parseResponses(oneShot(raw))
        XCTAssertEqual(parsed.first?.head?.framing, .chunked)
        XCTAssertEqual(parsed.first?.body, "Wikipedia".bytes)
        XCTAssertEqual(parsed.first?.trailers, [HTTPField(name: "Expires", value: "never")])
        XCTAssertEqual(try parseResponses(byteByByte(raw)), parsed)
    }

    func testUntilCloseWithFinishAtEOF() throws {
        let raw = "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\nall of this until close"
        let parsed = try parseResponses(pieces(raw, size: 10), eof: true)
        XCTAssertEqual(parsed.first?.head?.framing, .untilClose)
        XCTAssertEqual(parsed.first?.head?.keepAlive, false)
        XCTAssertEqual(parsed.first?.body, "all of this until close".bytes)
        XCTAssertEqual(parsed.first?.trailers, [])
    }

    func testFinishAtEOFWhenIdleIsNil() throws {
        var parser = ResponseParser()
        XCTAssertNil(try parser.finishAtEOF())
        // ... and after a complete response.
        let raw = "HTTP/1.1 204 No Content\r\n\r\n".bytes
        let head = try raw.withUnsafeBytes { try parser.parse($0) }
        XCTAssertEqual(head.consumed, raw.count)
        let end = try [UInt8]().withUnsafeBytes { try parser.parse($0) }
        XCTAssertEqual(end.event, .end(trailers: []))
        XCTAssertNil(try parser.finishAtEOF())
    }

    func testFinishAtEOFMidBodyThrows502() throws {
        var parser = ResponseParser()
        parser.expect(requestMethod: "GET")
        let raw = "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nhello".bytes
        var consumed = try raw.withUnsafeBytes { try parser.parse($0) }.consumed
        consumed += try raw.withUnsafeBytes { try parser.parse(UnsafeRawBufferPointer(rebasing: $0[consumed...])) }.consumed
        XCTAssertEqual(consumed, raw.count)
        XCTAssertThrowsError(try parser.finishAtEOF()) { XCTAssertEqual(($0 as? HTTPParseError)?.status, 502) }
    }

    func testFinishAtEOFMidChunkedThrows() throws {
        XCTAssertThrowsError(try parseResponses(oneShot("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhel"), eof: true)) {
            XCTAssertEqual(($0 as? HTTPParseError)?.status, 502)
        }
    }

    func testFinishAtEOFMidHeadThrows() throws {
        XCTAssertThrowsError(try parseResponses(oneShot("HTTP/1.1 200 OK\r\nContent-Le"), eof: true)) {
            XCTAssertEqual(($0 as? HTTPParseError)?.status, 502)
        }
        // An interim response without its final one is truncated too.
        XCTAssertThrowsError(try parseResponses(oneShot("HTTP/1.1 100 Continue\r\n\r\n"), eof: true))
    }

    func testFinishAtEOFAfterCompleteLengthBodyEnds() throws {
        var parser = ResponseParser()
        let raw = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nhi".bytes
        let head = try raw.withUnsafeBytes { try parser.parse($0) }
        _ = try raw.withUnsafeBytes { try parser.parse(UnsafeRawBufferPointer(rebasing: $0[head.consumed...])) }
        XCTAssertEqual(try parser.finishAtEOF(), .end(trailers: []))
    }

    func testHeadResponseHasNoBody() throws {
        let raw = "HTTP/1.1 200 OK\r\nContent-Length: 1234\r\n\r\n" + "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nhi"
        let parsed = try parseResponses(oneShot(raw), methods: ["HEAD", "GET"])
        XCTAssertEqual(parsed.count, 2)
        XCTAssertEqual(parsed[0].head?.framing, BodyFraming.none)
        XCTAssertEqual(parsed[0].head?.keepAlive, true)
        XCTAssertEqual(parsed[0].body, [])
        XCTAssertEqual(parsed[1].body, "hi".bytes)
    }

    func testNoContentAndNotModifiedHaveNoBody() throws {
        let raw = "HTTP/1.1 204 No Content\r\nContent-Length: 7\r\n\r\n"
            + "HTTP/1.1 304 Not Modified\r\nTransfer-Encoding: chunked\r\n\r\n"
            + "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
        let parsed = try parseResponses(oneShot(raw), methods: ["GET", "GET", "GET"])
        XCTAssertEqual(parsed.map(\.head?.status), [204, 304, 200])
        XCTAssertEqual(parsed.map(\.head?.framing), [BodyFraming.none, BodyFraming.none, .length(2)])
        XCTAssertEqual(parsed.map(\.body), [[], [], "ok".bytes])
    }

    func testInterimThenFinal() throws {
        let raw = "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </a.css>; rel=preload\r\n\r\n"
            + "HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nabc"
        for chunks in [oneShot(raw), byteByByte(raw)] {
            let parsed = try parseResponses(chunks, methods: ["POST"])
            XCTAssertEqual(parsed.count, 1)
            XCTAssertEqual(parsed[0].interim.map(\.status), [100, 103])
            XCTAssertEqual(parsed[0].interim.map(\.framing), [BodyFraming.none, BodyFraming.none])
            XCTAssertEqual(parsed[0].head?.status, 200)
            XCTAssertEqual(parsed[0].body, "abc".bytes)
        }
    }

    func testInterimKeepsTheRequestMethod() throws {
        let raw = "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\n"
        let parsed = try parseResponses(oneShot(raw), methods: ["HEAD"])
        XCTAssertEqual(parsed.first?.head?.framing, BodyFraming.none)
        XCTAssertEqual(parsed.first?.trailers, [])
    }

    func testSwitchingProtocolsStartsATunnel() throws {
        var parser = ResponseParser()
        parser.expect(requestMethod: "GET")
        let raw = "HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n\u{81}\u{5}hello".bytes
        let head = try raw.withUnsafeBytes { try parser.parse($0) }
        guard case .head(let h) = head.event else { return XCTFail("\(head.event)") }
        XCTAssertEqual(h.status, 101)
        XCTAssertEqual(h.framing, .untilClose)
        XCTAssertEqual(h.connection, ConnectionOptions(upgrade: true))
        // Whatever follows is tunnel data, handed out as-is (never parsed as HTTP).
        let rest = try raw.withUnsafeBytes { try parser.parse(UnsafeRawBufferPointer(rebasing: $0[head.consumed...])) }
        XCTAssertEqual(rest.consumed, raw.count - head.consumed)
        XCTAssertEqual(rest.event, .body(0..<(raw.count - head.consumed)))
        XCTAssertEqual(try parser.finishAtEOF(), .end(trailers: []))
    }

    func testConnectSuccessStartsATunnel() throws {
        let parsed = try parseResponses(oneShot("HTTP/1.1 200 Connection Established\r\n\r\nTLS bytes"), methods: ["CONNECT"], eof: true)
        XCTAssertEqual(parsed.first?.head?.framing, .untilClose)
        XCTAssertEqual(parsed.first?.body, "TLS bytes".bytes)
        let refused = try parseResponses(oneShot("HTTP/1.1 407 Auth\r\nContent-Length: 0\r\n\r\n"), methods: ["CONNECT"])
        XCTAssertEqual(refused.first?.head?.framing, .length(0))
    }

    func testHTTP10ResponseKeepAlive() throws {
        let closed = try parseResponses(oneShot("HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n"))
        XCTAssertEqual(closed.first?.head?.keepAlive, false)
        XCTAssertEqual(closed.first?.head?.versionMinor, 0)
        let kept = try parseResponses(oneShot("HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 0\r\n\r\n"))
        XCTAssertEqual(kept.first?.head?.keepAlive, true)
        let close11 = try parseResponses(oneShot("HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 0\r\n\r\n"))
        XCTAssertEqual(close11.first?.head?.keepAlive, false)
    }

    func testStatusLineReasonVariants() throws {
        XCTAssertEqual(try parseResponses(oneShot("HTTP/1.1 200 \r\nContent-Length: 0\r\n\r\n")).first?.head?.reason, "")
        XCTAssertEqual(try parseResponses(oneShot("HTTP/1.1 200\r\nContent-Length: 0\r\n\r\n")).first?.head?.reason, "")
        XCTAssertEqual(try parseResponses(oneShot("HTTP/1.1 404 Not  Found\t\r\nContent-Length: 0\r\n\r\n")).first?.head?.reason, "Not  Found\t")
    }

    func testResponseViolationsAre502() {
        assertResponseRejected("HTTP/1.1 200 OK\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n")
        assertResponseRejected("HTTP/1.1 200 OK\r\nContent-Length: 3\r\nContent-Length: 3\r\n\r\nabc")
        assertResponseRejected("HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n")
        assertResponseRejected("HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n")
        assertResponseRejected("HTTP/1.0 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n")
        assertResponseRejected("HTTP/1.1 200 OK\r\nX: a\r\n b\r\n\r\n")
        assertResponseRejected("HTTP/1.1 200 OK\nContent-Length: 0\r\n\r\n")
        assertResponseRejected("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3 \r\nabc\r\n0\r\n\r\n")
        assertResponseRejected("HTTP/2.0 200 OK\r\n\r\n")
        assertResponseRejected("HTTP/1.1 20 OK\r\n\r\n")
        assertResponseRejected("HTTP/1.1 600 Nope\r\n\r\n")
        assertResponseRejected("HTTP/1.1 099 Nope\r\n\r\n")
        assertResponseRejected("HTTP/1.1 2000 OK\r\n\r\n")
        assertResponseRejected("HTTP/1.1  200 OK\r\n\r\n")
        assertResponseRejected("HTTP/1.1 200 O\u{0}K\r\n\r\n")
        assertResponseRejected("\r\nHTTP/1.1 200 OK\r\n\r\n")
        // 204 ignores framing fields, but a malformed one is still refused rather than forwarded.
        assertResponseRejected("HTTP/1.1 204 No Content\r\nContent-Length: x\r\n\r\n")
    }

    func testOversizeResponseHeadIs502() {
        var parser = ResponseParser(maxHeaderBytes: 64)
        let raw = ("HTTP/1.1 200 OK\r\nX-Big: " + String(repeating: "b", count: 100) + "\r\n\r\n").bytes
        XCTAssertThrowsError(try raw.withUnsafeBytes { try parser.parse($0) }) { XCTAssertEqual(($0 as? HTTPParseError)?.status, 502) }
        var few = ResponseParser(maxHeaders: 1)
        let two = "HTTP/1.1 200 OK\r\nA: 1\r\nB: 2\r\n\r\n".bytes
        XCTAssertThrowsError(try two.withUnsafeBytes { try few.parse($0) }) { XCTAssertEqual(($0 as? HTTPParseError)?.status, 502) }
    }

    func testPipelinedResponsesWithoutExpectDefaultToGet() throws {
        let raw = "HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\naHTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nb"
        let parsed = try parseResponses(oneShot(raw), methods: [])
        XCTAssertEqual(parsed.map(\.body), ["a".bytes, "b".bytes])
    }
}
