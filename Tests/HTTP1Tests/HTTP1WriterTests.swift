import XCTest
@testable import HTTP1

final class HTTP1WriterTests: XCTestCase {
    func testRequestHeadBytes() {
        var out: [UInt8] = []
        HTTP1Writer.appendRequestHead(method: "GET", target: "/a?b", fields: [HTTPField(name: "Host", value: "x")], into: &out)
        XCTAssertEqual(String(decoding: out, as: UTF8.self), "GET /a?b HTTP/1.1\r\nHost: x\r\n\r\n")
    }

    func testResponseHeadBytes() {
        var out: [UInt8] = []
        HTTP1Writer.appendResponseHead(status: 404, reason: nil, fields: [], into: &out)
        HTTP1Writer.appendResponseHead(status: 299, reason: nil, fields: [], into: &out)
        HTTP1Writer.appendResponseHead(status: 200, reason: "Fine", fields: [HTTPField(name: "A", value: "b")], into: &out)
        XCTAssertEqual(String(decoding: out, as: UTF8.self),
                       "HTTP/1.1 404 Not Found\r\n\r\nHTTP/1.1 299 \r\n\r\nHTTP/1.1 200 Fine\r\nA: b\r\n\r\n")
    }

    func testChunkBytes() {
        var out: [UInt8] = []
        let data = [UInt8](repeating: 0x61, count: 255)
        data.withUnsafeBytes { HTTP1Writer.appendChunk($0, into: &out) }
        XCTAssertEqual(Array(out.prefix(4)), "ff\r\n".bytes)
        XCTAssertEqual(out.count, 4 + 255 + 2)
        // An empty chunk would be the last chunk: nothing is written.
        var empty: [UInt8] = []
        [UInt8]().withUnsafeBytes { HTTP1Writer.appendChunk($0, into: &empty) }
        XCTAssertEqual(empty, [])
        var last: [UInt8] = []
        HTTP1Writer.appendLastChunk(trailers: [HTTPField(name: "X-T", value: "1")], into: &last)
        XCTAssertEqual(String(decoding: last, as: UTF8.self), "0\r\nX-T: 1\r\n\r\n")
    }

    func testReasonPhrases() {
        XCTAssertEqual(HTTP1Writer.reasonPhrase(200), "OK")
        XCTAssertEqual(HTTP1Writer.reasonPhrase(413), "Content Too Large")
        XCTAssertEqual(HTTP1Writer.reasonPhrase(431), "Request Header Fields Too Large")
        XCTAssertEqual(HTTP1Writer.reasonPhrase(505), "HTTP Version Not Supported")
        XCTAssertEqual(HTTP1Writer.reasonPhrase(599), "")
    }

    func testRequestRoundTrip() throws {
        let fields = [HTTPField(name: "Host", value: "Example.com"), HTTPField(name: "Transfer-Encoding", value: "chunked"),
                      HTTPField(name: "X-Note", value: "a\tb c")]
        var out: [UInt8] = []
        HTTP1Writer.appendRequestHead(method: "POST", target: "/upload?x=1", fields: fields, into: &out)
        let payload = (0..<5000).map { UInt8(truncatingIfNeeded: $0) }
        for part in stride(from: 0, to: payload.count, by: 1234) {
            payload[part..<min(part + 1234, payload.count)].withUnsafeBytes { HTTP1Writer.appendChunk($0, into: &out) }
        }
        HTTP1Writer.appendLastChunk(trailers: [HTTPField(name: "Digest", value: "abc")], into: &out)
        HTTP1Writer.appendRequestHead(method: "GET", target: "/", fields: [HTTPField(name: "Host", value: "e")], into: &out)

        var parser = RequestParser()
        let parsed = try parseRequests(out.map { [$0] }, parser: &parser)
        XCTAssertEqual(parsed.count, 2)
        XCTAssertEqual(parsed[0].head.method, "POST")
        XCTAssertEqual(parsed[0].head.target, "/upload?x=1")
        XCTAssertEqual(Array(parsed[0].head.fields), fields)
        XCTAssertEqual(parsed[0].head.host, "example.com")
        XCTAssertEqual(parsed[0].head.framing, .chunked)
        XCTAssertEqual(parsed[0].body, payload)
        XCTAssertEqual(parsed[0].trailers, [HTTPField(name: "Digest", value: "abc")])
        XCTAssertEqual(parsed[1].head.target, "/")
    }

    func testResponseRoundTrip() throws {
        var out: [UInt8] = []
        HTTP1Writer.appendResponseHead(status: 100, reason: nil, fields: [], into: &out)
        HTTP1Writer.appendResponseHead(status: 200, reason: nil, fields: [HTTPField(name: "Content-Length", value: "3")], into: &out)
        out += "abc".bytes
        HTTP1Writer.appendResponseHead(status: 201, reason: "Made", fields: [HTTPField(name: "Transfer-Encoding", value: "chunked")], into: &out)
        "xyz".bytes.withUnsafeBytes { HTTP1Writer.appendChunk($0, into: &out) }
        HTTP1Writer.appendLastChunk(trailers: [], into: &out)

        let parsed = try parseResponses([out], methods: ["PUT", "POST"])
        XCTAssertEqual(parsed.count, 2)
        XCTAssertEqual(parsed[0].interim.map(\.reason), ["Continue"])
        XCTAssertEqual(parsed[0].head?.reason, "OK")
        XCTAssertEqual(parsed[0].body, "abc".bytes)
        XCTAssertEqual(parsed[1].head?.reason, "Made")
        XCTAssertEqual(parsed[1].body, "xyz".bytes)
        XCTAssertEqual(parsed[1].trailers, [])
    }
}
