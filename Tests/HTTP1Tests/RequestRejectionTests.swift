import XCTest
@testable import HTTP1

/// Each rule of the request-smuggling defence, one test each. Every case is fed both in one read and
/// byte by byte, and must be rejected with the status the proxy will answer.
final class RequestRejectionTests: XCTestCase {
    // MARK: Framing (RFC 9112 §6, RFC 9110 §8.6)

    func testContentLengthWithTransferEncoding() {
        assertRejected(request("Host: a\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n", line: "POST / HTTP/1.1"), status: 400)
        assertRejected(request("Host: a\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n", line: "POST / HTTP/1.1"), status: 400)
    }

    func testRepeatedContentLengthEvenWhenEqual() {
        assertRejected(request("Host: a\r\nContent-Length: 3\r\nContent-Length: 3\r\n", line: "POST / HTTP/1.1", body: "abc"), status: 400)
    }

    func testContentLengthList() {
        assertRejected(request("Host: a\r\nContent-Length: 3, 3\r\n", line: "POST / HTTP/1.1", body: "abc"), status: 400)
    }

    func testNonDigitContentLength() {
        for value in ["abc", "3a", "0x3", "3 3", "3.0", ""] {
            assertRejected(request("Host: a\r\nContent-Length: \(value)\r\n", line: "POST / HTTP/1.1"), status: 400)
        }
    }

    func testSignedContentLength() {
        assertRejected(request("Host: a\r\nContent-Length: +3\r\n", line: "POST / HTTP/1.1", body: "abc"), status: 400)
        assertRejected(request("Host: a\r\nContent-Length: -3\r\n", line: "POST / HTTP/1.1"), status: 400)
    }

    func testOverflowingContentLength() {
        assertRejected(request("Host: a\r\nContent-Length: 9223372036854775808\r\n", line: "POST / HTTP/1.1"), status: 400)
        assertRejected(request("Host: a\r\nContent-Length: 99999999999999999999999\r\n", line: "POST / HTTP/1.1"), status: 400)
    }

    func testContentLengthBeyondMaxBodyIs413() {
        assertRejected(request("Host: a\r\nContent-Length: 6\r\n", line: "POST / HTTP/1.1", body: "123456"),
                       status: 413, parser: RequestParser(maxBodyBytes: 5))
    }

    func testChunkedBodyBeyondMaxBodyIs413() {
        assertRejected(request("Host: a\r\nTransfer-Encoding: chunked\r\n", line: "POST / HTTP/1.1", body: "3\r\nabc\r\n3\r\ndef\r\n0\r\n\r\n"),
                       status: 413, parser: RequestParser(maxBodyBytes: 5))
    }

    func testUnknownTransferCodingIs501() {
        for value in ["gzip", "identity", "foo, chunked", "gzip, chunked", "x;a=b, chunked"] {
            assertRejected(request("Host: a\r\nTransfer-Encoding: \(value)\r\n", line: "POST / HTTP/1.1"), status: 501)
        }
    }

    func testChunkedNotLastTransferCoding() {
        assertRejected(request("Host: a\r\nTransfer-Encoding: chunked, gzip\r\n", line: "POST / HTTP/1.1"), status: 400)
        assertRejected(request("Host: a\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: gzip\r\n", line: "POST / HTTP/1.1"), status: 400)
    }

    func testRepeatedChunked() {
        assertRejected(request("Host: a\r\nTransfer-Encoding: chunked, chunked\r\n", line: "POST / HTTP/1.1"), status: 400)
        assertRejected(request("Host: a\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n", line: "POST / HTTP/1.1"), status: 400)
    }

    func testMalformedTransferEncodingList() {
        for value in ["", "chunked,", ", chunked", "chunked;x=1", "\"chunked\"", "chun ked"] {
            assertRejected(request("Host: a\r\nTransfer-Encoding: \(value)\r\n", line: "POST / HTTP/1.1"), status: 400)
        }
    }

    func testTransferEncodingInHTTP10() {
        assertRejected("POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", status: 400)
    }

    // MARK: Chunked coding (RFC 9112 §7.1)

    private func chunked(_ body: String) -> String {
        request("Host: a\r\nTransfer-Encoding: chunked\r\n", line: "POST / HTTP/1.1", body: body)
    }

    func testNonHexChunkSize() {
        assertRejected(chunked("zz\r\nabc\r\n0\r\n\r\n"), status: 400)
        assertRejected(chunked("0x3\r\nabc\r\n0\r\n\r\n"), status: 400)
        assertRejected(chunked("-3\r\nabc\r\n0\r\n\r\n"), status: 400)
    }

    func testEmptyChunkSize() {
        assertRejected(chunked("\r\nabc\r\n0\r\n\r\n"), status: 400)
        assertRejected(chunked(";ext\r\nabc\r\n0\r\n\r\n"), status: 400)
    }

    func testOverflowingChunkSize() {
        assertRejected(chunked("4000000000000001\r\nabc"), status: 400)
        assertRejected(chunked("FFFFFFFFFFFFFFFFFFFF\r\nabc"), status: 400)
    }

    func testChunkSizeAtLimitIsAccepted() throws {
        let parsed = try parseRequests(oneShot(chunked("0004000000000000\r\nabc")))
        XCTAssertEqual(parsed.first?.body, "abc".bytes)
        XCTAssertNil(parsed.first?.trailers)
    }

    func testChunkSizeWithSpaces() {
        assertRejected(chunked(" 3\r\nabc\r\n0\r\n\r\n"), status: 400)
        assertRejected(chunked("3 \r\nabc\r\n0\r\n\r\n"), status: 400)
        assertRejected(chunked("3\t\r\nabc\r\n0\r\n\r\n"), status: 400)
        assertRejected(chunked("3 ;a=b\r\nabc\r\n0\r\n\r\n"), status: 400)
    }

    func testInvalidChunkExtension() {
        for ext in [";", ";=b", ";a=", ";a=\"open", ";a=b c", ";a b", ";a=\"x\"y", ";a=\"\u{1}\"", ";a;", ";a=b;", "x"] {
            assertRejected(chunked("3\(ext)\r\nabc\r\n0\r\n\r\n"), status: 400)
        }
    }

    func testValidChunkExtensionsAreIgnored() throws {
        for ext in [";a", ";a=b", ";a=\"b c\"", ";a=\"q\\\"uote\"", ";a=1;b;c=\"\"", ";a=\"\"", ";A-B.c=x"] {
            let parsed = try parseRequests(oneShot(chunked("3\(ext)\r\nabc\r\n0\(ext)\r\n\r\n")))
            XCTAssertEqual(parsed.first?.body, "abc".bytes, ext)
            XCTAssertEqual(parsed.first?.trailers, [], ext)
        }
    }

    func testChunkDataNotFollowedByCRLF() {
        assertRejected(chunked("3\r\nabcd\r\n0\r\n\r\n"), status: 400)
        assertRejected(chunked("3\r\nabc\n0\r\n\r\n"), status: 400)
        assertRejected(chunked("3\r\nabc\r0\r\n\r\n"), status: 400)
        assertRejected(chunked("3\r\nabc0\r\n\r\n"), status: 400)
    }

    func testBareLFInChunkLine() {
        assertRejected(chunked("3\nabc\r\n0\r\n\r\n"), status: 400)
        assertRejected(chunked("3\r\nabc\r\n0\n\r\n"), status: 400)
    }

    func testBareCRInChunkLine() {
        assertRejected(chunked("3\rabc\r\n0\r\n\r\n"), status: 400)
    }

    func testOversizeChunkLine() {
        assertRejected(chunked("3;a=" + String(repeating: "x", count: 5000) + "\r\nabc\r\n0\r\n\r\n"), status: 400)
    }

    func testBareLFInTrailers() {
        assertRejected(chunked("0\r\nX-A: 1\n\r\n"), status: 400)
        assertRejected(chunked("0\r\n\n"), status: 400)
    }

    // MARK: Lines and fields (RFC 9112 §2.2, §5; RFC 9110 §5)

    func testObsFold() {
        assertRejected(request("Host: a\r\nX-A: one\r\n two\r\n"), status: 400)
        assertRejected(request("Host: a\r\nX-A: one\r\n\ttwo\r\n"), status: 400)
        // Whitespace between the request line and the first field (RFC 9112 §2.2).
        assertRejected(request(" Host: a\r\n"), status: 400)
    }

    func testBareCRInHead() {
        assertRejected("GET / HTTP/1.1\rHost: a\r\n\r\n", status: 400)
        assertRejected(request("Host: a\r\nX-A: b\rc\r\n"), status: 400)
        assertRejected("GET / HTTP/1.1\r\nHost: a\r\r\n\r\n", status: 400)
    }

    func testBareLFAsLineEnd() {
        assertRejected("GET / HTTP/1.1\nHost: a\r\n\r\n", status: 400)
        assertRejected("GET / HTTP/1.1\r\nHost: a\n\r\n", status: 400)
        assertRejected("GET / HTTP/1.1\r\nHost: a\r\n\n", status: 400)
        assertRejected("GET / HTTP/1.1\r\nHost: a\n\n", status: 400)
    }

    func testBareLFBeforeRequestLine() {
        assertRejected("\n" + request(), status: 400)
        assertRejected("\r\n\n" + request(), status: 400)
    }

    func testTooManyLeadingEmptyLines() {
        assertRejected(String(repeating: "\r\n", count: 5) + request(), status: 400)
    }

    func testNULInRequestLine() {
        assertRejected("GET /a\u{0}b HTTP/1.1\r\nHost: a\r\n\r\n", status: 400)
        assertRejected("GET\u{0} / HTTP/1.1\r\nHost: a\r\n\r\n", status: 400)
    }

    func testControlCharactersInFieldValue() {
        for c in ["\u{0}", "\u{1}", "\u{b}", "\u{c}", "\u{1b}", "\u{7f}"] {
            assertRejected(request("Host: a\r\nX-A: b\(c)c\r\n"), status: 400)
        }
    }

    func testControlCharactersInFieldName() {
        assertRejected(request("Host: a\r\nX-\u{0}A: b\r\n"), status: 400)
        assertRejected(request("Host: a\r\nX-\u{7f}A: b\r\n"), status: 400)
        assertRejected(request("Host: a\r\nX-\tA: b\r\n"), status: 400)
    }

    func testNonUTF8FieldValue() {
        var raw = request("Host: a\r\nX-A: caf\r\n").bytes
        raw.insert(0xE9, at: raw.firstIndex(of: 0x66)! + 1)  // Latin-1 "é"
        var parser = RequestParser()
        XCTAssertThrowsError(try parseRequests([raw], parser: &parser)) { XCTAssertEqual(($0 as? HTTPParseError)?.status, 400) }
    }

    func testEmptyFieldName() {
        assertRejected(request("Host: a\r\n: b\r\n"), status: 400)
    }

    func testNonTcharFieldName() {
        for name in ["X(A)", "X\"A", "X/A", "X@A", "X[A]", "X{A}", "X,A", "Caf\u{e9}"] {
            assertRejected(request("Host: a\r\n\(name): b\r\n"), status: 400)
        }
    }

    func testWhitespaceBeforeColon() {
        assertRejected(request("Host: a\r\nContent-Length : 3\r\n", line: "POST / HTTP/1.1", body: "abc"), status: 400)
        assertRejected(request("Host\t: a\r\n"), status: 400)
        assertRejected(request("Host: a\r\nX A: b\r\n"), status: 400)
    }

    func testFieldLineWithoutColon() {
        assertRejected(request("Host: a\r\nX-A\r\n"), status: 400)
    }

    // MARK: Request line (RFC 9112 §3)

    func testInvalidMethod() {
        for line in ["G@T / HTTP/1.1", " / HTTP/1.1", "GET  / HTTP/1.1", "G(T) / HTTP/1.1", "GET\t/ HTTP/1.1"] {
            assertRejected(request(line: line), status: 400)
        }
    }

    func testTargetWithSpacesOrControls() {
        for line in ["GET /a b HTTP/1.1", "GET / a HTTP/1.1", "GET /a\tb HTTP/1.1", "GET /a\u{7f} HTTP/1.1",
                     "GET /caf\u{e9} HTTP/1.1", "GET / HTTP/1.1 ", "GET /  HTTP/1.1", "GET /#frag HTTP/1.1"] {
            assertRejected(request(line: line), status: 400)
        }
    }

    func testTargetNotStartingWithSlash() {
        for target in ["a/b", "?q", "ftp://example.com/", "http:/example.com/", "example.com:443", "*"] {
            assertRejected(request(line: "GET \(target) HTTP/1.1"), status: 400)
        }
    }

    func testAbsoluteFormNeedsAnAuthority() {
        for target in ["http:///a", "http://", "https://?q", "http://u@a/", "http://a b/", "http://a:/", "http://a:x/", "http://[::1/"] {
            assertRejected(request("Host: a\r\n", line: "GET \(target) HTTP/1.1"), status: 400)
        }
    }

    func testAuthorityFormOnlyForConnect() {
        assertRejected(request("Host: a:443\r\n", line: "GET a:443 HTTP/1.1"), status: 400)
        assertRejected(request("Host: a:443\r\n", line: "CONNECT / HTTP/1.1"), status: 400)
        assertRejected(request("Host: a:443\r\n", line: "CONNECT a HTTP/1.1"), status: 400)
        assertRejected(request("Host: a:443\r\n", line: "CONNECT http://a:443/ HTTP/1.1"), status: 400)
    }

    func testAbsoluteFormDisagreeingWithHost() {
        assertRejected(request("Host: b.example\r\n", line: "GET http://a.example/ HTTP/1.1"), status: 400)
        assertRejected(request("Host: a.example:8080\r\n", line: "GET http://a.example/ HTTP/1.1"), status: 400)
    }

    // MARK: Host (RFC 9112 §3.2)

    func testMissingHostInHTTP11() {
        assertRejected("GET / HTTP/1.1\r\n\r\n", status: 400)
        assertRejected("GET http://a.example/ HTTP/1.1\r\n\r\n", status: 400)
    }

    func testMoreThanOneHost() {
        assertRejected(request("Host: a\r\nHost: a\r\n"), status: 400)
        assertRejected(request("Host: a\r\nhost: b\r\n"), status: 400)
    }

    func testEmptyHost() {
        assertRejected(request("Host:\r\n"), status: 400)
        assertRejected(request("Host:   \r\n"), status: 400)
    }

    func testInvalidHost() {
        for host in ["a b", "user@a", "a/b", "a?b", "a#b", "a:", "a:b", ":80", "a:123456", "[::1", "a\\b", "a%2"] {
            assertRejected(request("Host: \(host)\r\n"), status: 400)
        }
    }

    // MARK: Version (RFC 9112 §2.3, RFC 9110 §15.6.6)

    func testUnsupportedVersionIs505() {
        for version in ["HTTP/2.0", "HTTP/1.2", "HTTP/0.9", "HTTP/3.0"] {
            assertRejected(request(line: "GET / \(version)"), status: 505)
        }
    }

    func testMalformedVersionIs400() {
        for version in ["http/1.1", "HTTP/1.1x", "HTTP/11", "HTTP/1", "HTTP/1.10", "HTTPS/1.1", "HTTP/ 1.1", ""] {
            assertRejected(request(line: "GET / \(version)"), status: 400)
        }
        assertRejected("GET /\r\nHost: a\r\n\r\n", status: 400)
    }

    // MARK: Limits (RFC 6585 §5)

    func testOversizeRequestLineIs400() {
        let line = "GET /" + String(repeating: "a", count: 200) + " HTTP/1.1"
        assertRejected(request(line: line), status: 400, parser: RequestParser(maxHeaderBytes: 100))
    }

    func testOversizeHeadIs431() {
        let fields = "Host: a\r\nX-Big: " + String(repeating: "b", count: 200) + "\r\n"
        assertRejected(request(fields), status: 431, parser: RequestParser(maxHeaderBytes: 100))
        // Exactly one byte over.
        let raw = request()
        assertRejected(raw, status: 431, parser: RequestParser(maxHeaderBytes: raw.utf8.count - 1))
    }

    func testTooManyFieldsIs431() {
        let fields = "Host: a\r\n" + (1...4).map { "X-\($0): v\r\n" }.joined()
        assertRejected(request(fields), status: 431, parser: RequestParser(maxHeaders: 4))
        XCTAssertNoThrow(try { var p = RequestParser(maxHeaders: 5); _ = try parseRequests(oneShot(request(fields)), parser: &p) }())
    }

    func testOversizeTrailerSectionIs431() {
        let body = "0\r\nX-Big: " + String(repeating: "b", count: 200) + "\r\n\r\n"
        assertRejected(request("Host: a\r\nTransfer-Encoding: chunked\r\n", line: "POST / HTTP/1.1", body: body),
                       status: 431, parser: RequestParser(maxHeaderBytes: 150))
    }

    func testTooManyTrailersIs431() {
        let body = "0\r\n" + (1...4).map { "X-\($0): v\r\n" }.joined() + "\r\n"
        assertRejected(request("Host: a\r\nTransfer-Encoding: chunked\r\n", line: "POST / HTTP/1.1", body: body),
                       status: 431, parser: RequestParser(maxHeaders: 3))
    }

    func testInvalidConnectionOption() {
        assertRejected(request("Host: a\r\nConnection: close\"\r\n"), status: 400)
    }
}
