import XCTest
@testable import HTTP1

/// One request as the parser reported it: head, de-chunked body, trailers (nil while incomplete).
struct ParsedRequest: Equatable {
    var head: RequestHead
    var body: [UInt8] = []
    var trailers: [HTTPField]?
}

/// One response: any interim (1xx) heads, then the final head, body and trailers.
struct ParsedResponse: Equatable {
    var interim: [ResponseHead] = []
    var head: ResponseHead?
    var body: [UInt8] = []
    var trailers: [HTTPField]?
}

extension String {
    var bytes: [UInt8] { Array(utf8) }
}

/// The ways a test can cut a byte stream into reads.
func oneShot(_ s: String) -> [[UInt8]] { [s.bytes] }
func byteByByte(_ s: String) -> [[UInt8]] { s.bytes.map { [$0] } }
func pieces(_ s: String, size: Int) -> [[UInt8]] {
    let b = s.bytes
    return stride(from: 0, to: b.count, by: size).map { Array(b[$0..<min($0 + size, b.count)]) }
}

/// Drives a parser the way a connection does: append each read, parse until needMore, drop what was consumed.
/// `step` runs one parse call and returns (consumed, whether to stop for more bytes).
private func drive(_ chunks: [[UInt8]], step: (UnsafeRawBufferPointer) throws -> (Int, Bool)) throws -> [UInt8] {
    var buffer: [UInt8] = []
    for chunk in chunks {
        buffer += chunk
        var calls = 0
        while true {
            calls += 1
            precondition(calls < 100_000, "parser makes no progress")
            let (consumed, wait) = try buffer.withUnsafeBytes { try step($0) }
            buffer.removeFirst(consumed)
            if wait { break }
        }
    }
    return buffer
}

func parseRequests(_ chunks: [[UInt8]], parser: inout RequestParser) throws -> [ParsedRequest] {
    var done: [ParsedRequest] = []
    var current: ParsedRequest?
    _ = try drive(chunks) { raw in
        let (consumed, event) = try parser.parse(raw)
        switch event {
        case .needMore: return (consumed, true)
        case .head(let head): current = ParsedRequest(head: head)
        case .body(let range): current!.body += raw[range]
        case .end(let trailers):
            current!.trailers = trailers
            done.append(current!)
            current = nil
        }
        return (consumed, false)
    }
    if let current { done.append(current) }
    return done
}

func parseRequests(_ chunks: [[UInt8]]) throws -> [ParsedRequest] {
    var parser = RequestParser()
    return try parseRequests(chunks, parser: &parser)
}

/// Parses responses to `methods`, in order, calling `expect(requestMethod:)` before each; `eof` calls
/// finishAtEOF after the last read.
func parseResponses(_ chunks: [[UInt8]], methods: [String] = ["GET"], eof: Bool = false) throws -> [ParsedResponse] {
    var parser = ResponseParser()
    var done: [ParsedResponse] = []
    var current: ParsedResponse?
    var methods = methods[...]
    func handle(_ event: ResponseEvent, _ raw: UnsafeRawBufferPointer?) {
        switch event {
        case .needMore: break
        case .head(let head):
            if current == nil { current = ParsedResponse() }
            if head.status < 200 && head.status != 101 { current!.interim.append(head) } else { current!.head = head }
        case .body(let range): current!.body += raw![range]
        case .end(let trailers):
            current!.trailers = trailers
            done.append(current!)
            current = nil
        }
    }
    _ = try drive(chunks) { raw in
        if current == nil, let method = methods.first {
            parser.expect(requestMethod: method)
            methods = methods.dropFirst()
            current = ParsedResponse()
        }
        let (consumed, event) = try parser.parse(raw)
        handle(event, raw)
        return (consumed, event == .needMore)
    }
    if eof, let event = try parser.finishAtEOF() { handle(event, nil) }
    if let current, current.head != nil || !current.interim.isEmpty { done.append(current) }
    return done
}

/// Asserts the request bytes are rejected with `status`, both in one read and byte by byte.
func assertRejected(_ raw: String, status: Int, parser: RequestParser = RequestParser(),
                    file: StaticString = #filePath, line: UInt = #line) {
    for (label, chunks) in [("one read", oneShot(raw)), ("byte by byte", byteByByte(raw))] {
        var p = parser
        do {
            let parsed = try parseRequests(chunks, parser: &p)
            XCTFail("\(label): accepted \(raw.debugDescription) as \(parsed)", file: file, line: line)
        } catch let error as HTTPParseError {
            XCTAssertEqual(error.status, status, "\(label): \(error)", file: file, line: line)
        } catch {
            XCTFail("\(label): unexpected \(error)", file: file, line: line)
        }
    }
}

/// Asserts the response bytes are rejected (always 502).
func assertResponseRejected(_ raw: String, method: String = "GET", file: StaticString = #filePath, line: UInt = #line) {
    do {
        let parsed = try parseResponses(oneShot(raw), methods: [method])
        XCTFail("accepted \(raw.debugDescription) as \(parsed)", file: file, line: line)
    } catch let error as HTTPParseError {
        XCTAssertEqual(error.status, 502, "\(error)", file: file, line: line)
    } catch {
        XCTFail("unexpected \(error)", file: file, line: line)
    }
}

/// A request with the given lines between the request line and the empty line.
func request(_ fields: String = "Host: example.com\r\n", line: String = "GET / HTTP/1.1", body: String = "") -> String {
    line + "\r\n" + fields + "\r\n" + body
}
