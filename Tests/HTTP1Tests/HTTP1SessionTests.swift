import XCTest
@testable import HTTP1

// MARK: - A connection around the session

/// What the connection saw, in order. Consecutive body pieces are merged, so every way of cutting
/// the input into reads gives the same transcript.
enum Seen: Equatable {
    case head(String)                          // "METHOD target"
    case body(String)
    case end([HTTPField])
    case finished(status: Int, close: Bool)    // from `next` or from a response-side call
    case closeNow
    case invalid(Int)
    case tunnel
    case closed
}

/// Drives an HTTP1Session the way a connection does: unconsumed bytes stay pending (a transport's
/// buffer), each read is appended and fed to `next` until it needs more, must wait, tunnels or closes.
/// Heads are routed as they come (`route`, by default forwarded without a limit), and the test plays
/// the origin through the response-side wrappers, which note every request they finish.
final class SessionDriver {
    var session: HTTP1Session
    var pending: [UInt8] = []
    var out: [UInt8] = []
    var log: [Seen] = []
    var finished: [HTTP1Session.Request] = []
    /// How the last `pump` stopped (.needMore, .waitForResponse, .tunnel, .closed or .invalid).
    var stop: HTTP1Session.Event?
    var route: (SessionDriver, RequestHead) -> Void = { d, _ in d.forward() }

    init(maxHeaderBytes: Int = 16384, maxHeaders: Int = 100) {
        session = HTTP1Session(maxHeaderBytes: maxHeaderBytes, maxHeaders: maxHeaders)
    }

    var output: String { String(decoding: out, as: UTF8.self) }
    var pendingText: String { String(decoding: pending, as: UTF8.self) }

    func feed(_ text: String) { feed(text.bytes) }
    func feed(_ chunks: [[UInt8]]) { for c in chunks { feed(c) } }

    func feed(_ bytes: [UInt8]) {
        pending += bytes
        // After .invalid the connection answers (refuse) before it reads on.
        if case .invalid = stop { return }
        pump()
    }

    func pump(file: StaticString = #filePath, line: UInt = #line) {
        var calls = 0
        while true {
            calls += 1
            precondition(calls < 100_000, "the session makes no progress")
            let (consumed, event) = pending.withUnsafeBytes { session.next($0) }
            XCTAssert((0...pending.count).contains(consumed), "consumed \(consumed) of \(pending.count)", file: file, line: line)
            if case .body(let range) = event {
                // A range into the buffer given to `next`, within what was consumed.
                XCTAssert(!range.isEmpty && range.lowerBound >= 0 && range.upperBound <= consumed,
                          "body range \(range) outside the \(consumed) bytes consumed", file: file, line: line)
                let text = String(decoding: pending[range], as: UTF8.self)
                if case .body(let before) = log.last { log[log.count - 1] = .body(before + text) } else { log.append(.body(text)) }
            }
            let available = pending.count
            pending.removeFirst(consumed)
            switch event {
            case .needMore, .waitForResponse:
                stop = event
                return
            case .tunnel:
                XCTAssertEqual(consumed, 0, "a tunnel's bytes are not the session's", file: file, line: line)
                if log.last != .tunnel { log.append(.tunnel) }
                stop = event
                return
            case .closed:
                XCTAssertEqual(consumed, available, "closing drops all input", file: file, line: line)
                if log.last != .closed { log.append(.closed) }
                stop = event
                return
            case .invalid(let status, _):
                log.append(.invalid(status))
                stop = event
                return
            case .head(let head):
                log.append(.head("\(head.method) \(head.target)"))
                route(self, head)
            case .body:
                break
            case .end(let trailers):
                log.append(.end(trailers))
            case .finished(let request, let close):
                finished.append(request)
                log.append(.finished(status: request.status, close: close))
            }
        }
    }

    @discardableResult
    private func note(_ next: HTTP1Session.Next) -> HTTP1Session.Next {
        switch next {
        case .carryOn: break
        case .finished(let request, let close):
            finished.append(request)
            log.append(.finished(status: request.status, close: close))
        case .closeNow:
            log.append(.closeNow)
        }
        return next
    }

    // Routing

    func forward(bodyLimit: Int64 = 0) { session.forward(bodyLimit: bodyLimit, into: &out) }

    @discardableResult
    func respond(_ status: Int, _ body: String, extra: [HTTPField] = [], bodyLimit: Int64 = 0) -> HTTP1Session.Next {
        note(session.respond(status: status, body: body, extra: extra, bodyLimit: bodyLimit, into: &out))
    }

    @discardableResult
    func refuse(_ status: Int, _ reason: String) -> HTTP1Session.Next {
        let next = note(session.refuse(status: status, reason: reason, into: &out))
        stop = nil
        return next
    }

    // The origin

    func responseHead(_ status: Int, reason: String? = nil, fields: HTTPFields = [], length: Int64?, hasBody: Bool = true) {
        session.responseHead(status: status, reason: reason, fields: fields, bodyLength: length, hasBody: hasBody, into: &out)
    }

    func responseBody(_ text: String) {
        text.bytes.withUnsafeBytes { session.responseBody($0, into: &out) }
    }

    @discardableResult
    func responseEnd(trailers: [HTTPField] = []) -> HTTP1Session.Next {
        note(session.responseEnd(trailers: trailers, into: &out))
    }

    @discardableResult
    func responseFailed(_ status: Int, _ reason: String) -> HTTP1Session.Next {
        note(session.responseFailed(status: status, reason: reason, into: &out))
    }

    /// A complete 200 with a known length.
    @discardableResult
    func ok(_ body: String = "hello", fields: HTTPFields = []) -> HTTP1Session.Next {
        responseHead(200, fields: fields, length: Int64(body.utf8.count))
        responseBody(body)
        return responseEnd()
    }

    func takeOutput() -> String {
        defer { out = [] }
        return output
    }
}

// MARK: - Requests and expected responses

private func get(_ target: String, _ extra: String = "", version: String = "1.1") -> String {
    "GET \(target) HTTP/\(version)\r\nHost: example.com\r\n\(extra)\r\n"
}

private func post(_ target: String, _ body: String, _ extra: String = "", version: String = "1.1") -> String {
    "POST \(target) HTTP/\(version)\r\nHost: example.com\r\nContent-Length: \(body.utf8.count)\r\n\(extra)\r\n\(body)"
}

private func chunkedPost(_ target: String, _ chunkedBody: String, _ extra: String = "") -> String {
    "POST \(target) HTTP/1.1\r\nHost: example.com\r\nTransfer-Encoding: chunked\r\n\(extra)\r\n\(chunkedBody)"
}

/// A response made by the session itself (respond, refuse, responseFailed).
private func local(_ status: Int, _ phrase: String, _ body: String, close: Bool = false, bodyWritten: Bool = true) -> String {
    "HTTP/1.1 \(status) \(phrase)\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: \(body.utf8.count)\r\n"
        + (close ? "Connection: close\r\n" : "") + "\r\n" + (bodyWritten ? body : "")
}

/// The ways a transport can cut the same bytes into reads.
private func splits(_ raw: String) -> [(String, [[UInt8]])] {
    [("one read", oneShot(raw)), ("byte by byte", byteByByte(raw)), ("pieces of 3", pieces(raw, size: 3)),
     ("pieces of 7", pieces(raw, size: 7))]
}

private func field(_ name: String, _ value: String) -> HTTPField { HTTPField(name: name, value: value) }

// MARK: - Tests

final class HTTP1SessionTests: XCTestCase {

    // MARK: Forwarding and keep-alive

    func testGetForwardedAnsweredAndKeptAlive() {
        for (label, chunks) in splits(get("/a", "Accept: */*\r\n")) {
            let d = SessionDriver()
            d.feed(chunks)
            XCTAssertEqual(d.log, [.head("GET /a"), .end([])], label)
            XCTAssertEqual(d.stop, .waitForResponse, label)
            XCTAssertEqual(d.session.request?.forwarded, true, label)
            XCTAssertEqual(d.session.request?.head.fields, [field("Host", "example.com"), field("Accept", "*/*")], label)
            XCTAssertTrue(d.out.isEmpty, label)

            d.responseHead(200, fields: [field("Content-Type", "text/html"), field("X-Up", "1")], length: 5)
            XCTAssertEqual(d.output, "HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nX-Up: 1\r\nContent-Length: 5\r\n\r\n", label)
            d.responseBody("hel")
            d.responseBody("lo")
            guard case .finished(let r, close: false) = d.responseEnd() else { return XCTFail("\(label): \(d.log)") }
            XCTAssertEqual(d.output, "HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nX-Up: 1\r\nContent-Length: 5\r\n\r\nhello", label)
            XCTAssertEqual(r.status, 200, label)
            XCTAssertEqual(r.head.target, "/a", label)
            XCTAssertTrue(r.forwarded && r.responseStarted, label)
            XCTAssertNil(d.session.request, label)
            XCTAssertEqual(d.session.phase, .open, label)
            XCTAssertTrue(d.session.awaitingHead, label)

            // The connection stays open: the next request is read and served the same way.
            d.feed(get("/b"))
            XCTAssertEqual(d.log, [.head("GET /a"), .end([]), .finished(status: 200, close: false), .head("GET /b"), .end([])], label)
            d.out = []
            XCTAssertEqual(d.ok("bye"), .finished(d.finished.last!, close: false), label)
            XCTAssertEqual(d.output, "HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nbye", label)
            XCTAssertEqual(d.finished.map(\.head.target), ["/a", "/b"], label)
        }
    }

    func testPipelinedRequestsWaitForTheResponseBeforeThem() {
        let second = post("/b", "hello")
        let third = get("/c")
        for (label, chunks) in splits(get("/a") + second + third) {
            let d = SessionDriver()
            d.feed(chunks)
            // Only the first request is reported; the others stay unconsumed, byte for byte.
            XCTAssertEqual(d.log, [.head("GET /a"), .end([])], label)
            XCTAssertEqual(d.stop, .waitForResponse, label)
            XCTAssertEqual(d.pendingText, second + third, label)
            XCTAssertFalse(d.session.awaitingHead, label)

            // Not while the response is under way either.
            d.responseHead(200, length: 1)
            d.pump()
            XCTAssertEqual(d.stop, .waitForResponse, label)
            XCTAssertEqual(d.pendingText, second + third, label)
            d.responseBody("A")
            XCTAssertEqual(d.responseEnd(), .finished(d.finished.last!, close: false), label)

            d.pump()
            XCTAssertEqual(d.log.suffix(3), [.head("POST /b"), .body("hello"), .end([])], label)
            XCTAssertEqual(d.stop, .waitForResponse, label)
            XCTAssertEqual(d.pendingText, third, label)
            d.ok("B")

            d.pump()
            XCTAssertEqual(d.log.suffix(2), [.head("GET /c"), .end([])], label)
            XCTAssertEqual(d.pendingText, "", label)
            d.ok("C")
            d.pump()
            XCTAssertEqual(d.stop, .needMore, label)
            XCTAssertEqual(d.output, "HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nA" + "HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nB"
                                     + "HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nC", label)
            XCTAssertEqual(d.finished.map(\.head.target), ["/a", "/b", "/c"], label)
            XCTAssertEqual(d.finished.map(\.bytesIn), [0, 5, 0], label)
        }
    }

    /// An empty line after a body (old clients sent CRLF after a POST) does not stop the next request (RFC 9112 §2.2).
    func testEmptyLineBetweenPipelinedRequestsIsTolerated() {
        for (label, chunks) in splits(post("/a", "hello") + "\r\n" + get("/b")) {
            let d = SessionDriver()
            d.feed(chunks)
            XCTAssertEqual(d.log, [.head("POST /a"), .body("hello"), .end([])], label)
            d.ok()
            d.pump()
            XCTAssertEqual(d.log.suffix(2), [.head("GET /b"), .end([])], label)
        }
    }

    // MARK: Request bodies

    func testContentLengthBodyIsForwarded() {
        for (label, chunks) in splits(post("/up", "hello world") + get("/next")) {
            let d = SessionDriver()
            d.feed(chunks)
            XCTAssertEqual(d.log, [.head("POST /up"), .body("hello world"), .end([])], label)
            XCTAssertEqual(d.session.request?.bytesIn, 11, label)
            XCTAssertEqual(d.pendingText, get("/next"), label)
            d.ok()
            d.pump()
            XCTAssertEqual(d.log.suffix(2), [.head("GET /next"), .end([])], label)
        }
    }

    func testChunkedBodyWithTrailersIsForwardedDechunked() {
        let body = "5\r\nhello\r\n1A;ext=1\r\nabcdefghijklmnopqrstuvwxyz\r\n0\r\nX-Sum: 42\r\nX-Other: ok\r\n\r\n"
        for (label, chunks) in splits(chunkedPost("/up", body) + get("/next")) {
            let d = SessionDriver()
            d.feed(chunks)
            XCTAssertEqual(d.log, [.head("POST /up"), .body("helloabcdefghijklmnopqrstuvwxyz"),
                                   .end([field("X-Sum", "42"), field("X-Other", "ok")])], label)
            XCTAssertEqual(d.session.request?.bytesIn, 31, label)
            XCTAssertEqual(d.pendingText, get("/next"), label)
        }
    }

    /// `.body` ranges index the very buffer given to `next` (the chunk-size line before the data included).
    func testBodyRangesIndexTheBufferGivenToNext() {
        var session = HTTP1Session(maxHeaderBytes: 1024, maxHeaders: 10)
        let head = chunkedPost("/", "")
        var buffer = (head + "5\r\nhello\r\n0\r\nX-T: 1\r\n\r\n").bytes
        var step = buffer.withUnsafeBytes { session.next($0) }
        XCTAssertEqual(step.consumed, head.utf8.count)
        guard case .head = step.event else { return XCTFail("\(step)") }
        session.forward(bodyLimit: 0, into: &buffer)   // nothing written: no Expect
        XCTAssertEqual(buffer.count, (head + "5\r\nhello\r\n0\r\nX-T: 1\r\n\r\n").utf8.count)
        buffer.removeFirst(step.consumed)
        step = buffer.withUnsafeBytes { session.next($0) }
        XCTAssertEqual(step.consumed, 8)
        XCTAssertEqual(step.event, .body(3..<8))
        XCTAssertEqual(Array(buffer[3..<8]), "hello".bytes)
        buffer.removeFirst(step.consumed)
        step = buffer.withUnsafeBytes { session.next($0) }
        XCTAssertEqual(step.consumed, buffer.count)
        XCTAssertEqual(step.event, .end(trailers: [field("X-T", "1")]))
        step = [UInt8]().withUnsafeBytes { session.next($0) }
        XCTAssertEqual(step.consumed, 0)
        XCTAssertEqual(step.event, .waitForResponse)
    }

    // MARK: Body limits

    func testBodyOverTheLimitIsRefusedWith413AndTheConnectionCloses() {
        let requests = [("Content-Length", post("/up", "0123456789")),
                        ("chunked", chunkedPost("/up", "3\r\n012\r\n7\r\n3456789\r\n0\r\n\r\n"))]
        for (kind, raw) in requests {
            for (label, chunks) in splits(raw + get("/never")) {
                let label = "\(kind), \(label)"
                let d = SessionDriver()
                d.route = { d, _ in d.forward(bodyLimit: 4) }
                d.feed(chunks)
                XCTAssertEqual(d.log.first, .head("POST /up"), label)
                XCTAssertEqual(d.log.last, .invalid(413), label)
                // At most the 4 bytes allowed went to the origin.
                if case .body(let forwarded) = d.log.dropFirst().first {
                    XCTAssertTrue("0123".hasPrefix(forwarded), "\(label): \(forwarded)")
                }
                guard case .invalid(413, let reason) = d.stop else { return XCTFail("\(label): \(String(describing: d.stop))") }
                guard case .finished(let r, close: true) = d.refuse(413, reason) else { return XCTFail("\(label): \(d.log)") }
                XCTAssertEqual(r.status, 413, label)
                XCTAssertEqual(r.head.target, "/up", label)
                XCTAssertEqual(d.output, local(413, "Content Too Large", "Content Too Large: \(reason)\n", close: true), label)
                XCTAssertEqual(d.session.phase, .closing, label)
                // Nothing more is read: the rest of the body and the pipelined request are dropped.
                d.pump()
                XCTAssertEqual(d.log.last, .closed, label)
                XCTAssertTrue(d.pending.isEmpty, label)
                XCTAssertFalse(d.log.contains(.head("GET /never")), label)
            }
        }
    }

    func testBodyAtTheLimitIsForwarded() {
        for (label, chunks) in splits(post("/up", "0123") + chunkedPost("/up2", "2\r\n01\r\n2\r\n23\r\n0\r\n\r\n")) {
            let d = SessionDriver()
            d.route = { d, _ in d.forward(bodyLimit: 4) }
            d.feed(chunks)
            XCTAssertEqual(d.log, [.head("POST /up"), .body("0123"), .end([])], label)
            d.ok()
            d.pump()
            XCTAssertEqual(d.log.suffix(3), [.head("POST /up2"), .body("0123"), .end([])], label)
        }
    }

    func testBodyOverTheLimitAfterTheResponseBeganCanOnlyClose() {
        let d = SessionDriver()
        d.route = { d, _ in d.forward(bodyLimit: 4) }
        d.feed(String(post("/up", "0123456789").dropLast(8)))
        XCTAssertEqual(d.log, [.head("POST /up"), .body("01")])
        d.responseHead(200, length: 2)
        d.responseBody("ok")
        let written = d.output
        d.feed("23456789")
        XCTAssertEqual(d.log.last, .invalid(413))
        XCTAssertEqual(d.refuse(413, "too large"), .closeNow)
        XCTAssertEqual(d.output, written, "no second response after the first began")
    }

    // MARK: Expect: 100-continue

    func testContinueIsSentWhenTheBodyWillBeRead() {
        for raw in [post("/up", "hello", "Expect: 100-continue\r\n"),
                    chunkedPost("/up", "5\r\nhello\r\n0\r\n\r\n", "Expect: 100-Continue\r\n")] {
            let d = SessionDriver()
            let headEnd = raw.range(of: "\r\n\r\n")!.upperBound
            d.feed(String(raw[..<headEnd]))
            XCTAssertEqual(d.log, [.head("POST /up")])
            // The client waits for it before sending the body.
            XCTAssertEqual(d.output, "HTTP/1.1 100 Continue\r\n\r\n")
            d.feed(String(raw[headEnd...]))
            XCTAssertEqual(d.log, [.head("POST /up"), .body("hello"), .end([])])
            d.ok()
            XCTAssertEqual(d.output, "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello")
            XCTAssertEqual(d.finished.last?.bytesOut, Int64(d.out.count))
        }
    }

    func testNoContinueWithoutABodyOrWhenAnsweredHere() {
        for raw in [get("/", "Expect: 100-continue\r\n"), post("/", "", "Expect: 100-continue\r\n")] {
            let d = SessionDriver()
            d.feed(raw)
            XCTAssertEqual(d.log.first, .head(raw.hasPrefix("GET") ? "GET /" : "POST /"))
            XCTAssertEqual(d.output, "", raw)
        }
        // Answered locally: the final response goes out instead of 100.
        let d = SessionDriver()
        d.route = { d, _ in d.respond(404, "no\n") }
        d.feed(String(post("/", "hello", "Expect: 100-continue\r\n").dropLast(5)))
        XCTAssertEqual(d.output, local(404, "Not Found", "no\n"))
    }

    /// RFC 9110 §10.1.1: a server MUST ignore a 100-continue expectation in an HTTP/1.0 request
    /// (and §15.2: it MUST NOT send a 1xx response to an HTTP/1.0 client).
    func testNoContinueForAnHTTP10Client() {
        let d = SessionDriver()
        d.feed(String(post("/up", "hello", "Connection: keep-alive\r\nExpect: 100-continue\r\n", version: "1.0").dropLast(5)))
        XCTAssertEqual(d.log, [.head("POST /up")])
        XCTAssertEqual(d.output, "")
        d.feed("hello")
        XCTAssertEqual(d.log, [.head("POST /up"), .body("hello"), .end([])])
    }

    // MARK: Local responses

    func testLocalResponseToAGet() {
        for (label, chunks) in splits(get("/nowhere") + get("/next")) {
            let d = SessionDriver()
            var routed: [HTTP1Session.Next] = []
            d.route = { d, head in
                if head.target == "/nowhere" { routed.append(d.respond(404, "no route\n")) } else { d.forward() }
            }
            d.feed(chunks)
            // Answered at once, finished when the request's end is parsed; no .end for a request answered here.
            XCTAssertEqual(routed, [.carryOn], label)
            XCTAssertEqual(d.log, [.head("GET /nowhere"), .finished(status: 404, close: false), .head("GET /next"), .end([])], label)
            XCTAssertEqual(d.output, local(404, "Not Found", "no route\n"), label)
            XCTAssertEqual(d.finished.first?.forwarded, false, label)
            XCTAssertEqual(d.finished.first?.bytesOut, Int64(d.out.count), label)
        }
    }

    func testLocalResponseToAPostDropsItsBody() {
        let raws = [post("/form", "field=value&other=1"), chunkedPost("/form", "4\r\nabcd\r\n3\r\nefg\r\n0\r\nX-T: 1\r\n\r\n")]
        for raw in raws {
            for (label, chunks) in splits(raw + get("/next")) {
                let d = SessionDriver()
                d.route = { d, head in
                    if head.method == "POST" { d.respond(403, "forbidden\n", extra: [field("X-Why", "policy")]) } else { d.forward() }
                }
                d.feed(chunks)
                // No .body nor .end: the body was read and dropped, then the request finished.
                XCTAssertEqual(d.log, [.head("POST /form"), .finished(status: 403, close: false), .head("GET /next"), .end([])], label)
                XCTAssertEqual(d.output, "HTTP/1.1 403 Forbidden\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: 10\r\n"
                                         + "X-Why: policy\r\n\r\nforbidden\n", label)
                XCTAssertEqual(d.finished.first?.bytesIn, raw.hasSuffix("value&other=1") ? 19 : 7, label)
            }
        }
    }

    func testLocalResponseToAPostIsFinishedOnlyWhenItsBodyEnds() {
        let d = SessionDriver()
        d.route = { d, _ in d.respond(404, "no\n") }
        d.feed(String(post("/", "0123456789").dropLast(6)))
        XCTAssertEqual(d.log, [.head("POST /")])
        XCTAssertEqual(d.stop, .needMore)
        XCTAssertNotNil(d.session.request)
        d.feed("456789")
        XCTAssertEqual(d.log, [.head("POST /"), .finished(status: 404, close: false)])
        XCTAssertEqual(d.finished.first?.bytesIn, 10)
    }

    func testLocalResponsesWithoutContentHaveNoBodyOrLength() {
        for status in [204, 304] {
            let d = SessionDriver()
            d.route = { d, _ in d.respond(status, "ignored\n", extra: [field("X-A", "1")]) }
            d.feed(get("/a"))
            XCTAssertEqual(d.log, [.head("GET /a"), .finished(status: status, close: false)])
            XCTAssertEqual(d.output, "HTTP/1.1 \(status) \(HTTP1Writer.reasonPhrase(status))\r\nX-A: 1\r\n\r\n")
        }
    }

    func testLocalResponseToHeadHasTheLengthButNoBody() {
        let d = SessionDriver()
        d.route = { d, _ in d.respond(404, "no route\n") }
        d.feed("HEAD /x HTTP/1.1\r\nHost: example.com\r\n\r\n")
        XCTAssertEqual(d.output, local(404, "Not Found", "no route\n", bodyWritten: false))
        XCTAssertEqual(d.log, [.head("HEAD /x"), .finished(status: 404, close: false)])
        XCTAssertEqual(d.finished.first?.bytesOut, Int64(d.out.count))
    }

    func testLocalResponseBodyLimitCountsTheDroppedBytes() {
        for (label, chunks) in splits(post("/", "0123456789")) {
            let d = SessionDriver()
            d.route = { d, _ in d.respond(404, "no\n", bodyLimit: 4) }
            d.feed(chunks)
            XCTAssertEqual(d.log, [.head("POST /"), .invalid(413)], label)
            // The response went out already: only closing is left.
            XCTAssertEqual(d.refuse(413, "too large"), .closeNow, label)
            XCTAssertEqual(d.output, local(404, "Not Found", "no\n"), label)
        }
        // Within the limit the request finishes normally.
        let d = SessionDriver()
        d.route = { d, _ in d.respond(404, "no\n", bodyLimit: 4) }
        d.feed(post("/", "0123"))
        XCTAssertEqual(d.log, [.head("POST /"), .finished(status: 404, close: false)])
    }

    // MARK: Response framing

    func testUnknownLengthIsChunkedForHTTP11Clients() {
        let d = SessionDriver()
        d.feed(get("/stream"))
        d.responseHead(200, fields: [field("Content-Type", "text/plain")], length: nil)
        XCTAssertEqual(d.takeOutput(), "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nTransfer-Encoding: chunked\r\n\r\n")
        d.responseBody("hello")
        XCTAssertEqual(d.takeOutput(), "5\r\nhello\r\n")
        d.responseBody(String(repeating: "x", count: 26))
        XCTAssertEqual(d.takeOutput(), "1a\r\n" + String(repeating: "x", count: 26) + "\r\n")
        d.responseBody("")   // an empty piece must not end the body
        XCTAssertEqual(d.takeOutput(), "")
        guard case .finished(_, close: false) = d.responseEnd(trailers: [field("X-Checksum", "abc")]) else { return XCTFail("\(d.log)") }
        XCTAssertEqual(d.takeOutput(), "0\r\nX-Checksum: abc\r\n\r\n")
    }

    func testChunkedResponseEndWithoutTrailers() {
        let d = SessionDriver()
        d.feed(get("/"))
        d.responseHead(200, length: nil)
        d.responseBody("abc")
        d.responseEnd()
        XCTAssertEqual(d.output, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n")
    }

    func testUnknownLengthForAnHTTP10ClientIsDelimitedByClosing() {
        for extra in ["", "Connection: keep-alive\r\n"] {
            let d = SessionDriver()
            d.feed(get("/stream", extra, version: "1.0") + get("/never", "Connection: keep-alive\r\n", version: "1.0"))
            XCTAssertEqual(d.log, [.head("GET /stream"), .end([])])
            d.responseHead(200, fields: [field("Content-Type", "text/plain")], length: nil)
            d.responseBody("hello")
            guard case .finished(let r, close: true) = d.responseEnd(trailers: [field("X-Dropped", "1")]) else {
                return XCTFail("\(d.log)")
            }
            // No chunking (and so no trailers) for HTTP/1.0: the end of the body is the end of the connection.
            XCTAssertEqual(d.output, "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nConnection: close\r\n\r\nhello", extra)
            XCTAssertEqual(r.status, 200)
            d.pump()
            XCTAssertEqual(d.log.last, .closed)
            XCTAssertFalse(d.log.contains(.head("GET /never")))
        }
    }

    func testHTTP10KeepAliveIsKeptWithAKnownLength() {
        let d = SessionDriver()
        d.feed(get("/a", "Connection: keep-alive\r\n", version: "1.0") + get("/b", version: "1.0"))
        XCTAssertEqual(d.log, [.head("GET /a"), .end([])])
        XCTAssertEqual(d.ok("hi"), .finished(d.finished.last!, close: false))
        XCTAssertEqual(d.takeOutput(), "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nhi")
        d.pump()
        XCTAssertEqual(d.log.suffix(2), [.head("GET /b"), .end([])])
        // Without keep-alive, an HTTP/1.0 request is the connection's last.
        guard case .finished(_, close: true) = d.ok("hi") else { return XCTFail("\(d.log)") }
        XCTAssertEqual(d.output, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nhi")
        d.pump()
        XCTAssertEqual(d.stop, .closed)
    }

    func testHTTP10LocalResponseClosesUnlessKeepAlive() {
        let d = SessionDriver()
        d.route = { d, _ in d.respond(404, "no\n") }
        d.feed(get("/a", "Connection: keep-alive\r\n", version: "1.0"))
        XCTAssertEqual(d.takeOutput(), local(404, "Not Found", "no\n"))
        d.feed(get("/b", version: "1.0"))
        XCTAssertEqual(d.output, local(404, "Not Found", "no\n", close: true))
        XCTAssertEqual(d.log, [.head("GET /a"), .finished(status: 404, close: false), .head("GET /b"),
                               .finished(status: 404, close: true), .closed])
    }

    func testResponseToHeadKeepsTheContentLengthWithoutABody() {
        let d = SessionDriver()
        d.feed("HEAD /file HTTP/1.1\r\nHost: example.com\r\n\r\n" + get("/next"))
        XCTAssertEqual(d.log, [.head("HEAD /file"), .end([])])
        d.responseHead(200, fields: [field("ETag", "\"x\"")], length: 1234, hasBody: false)
        guard case .finished(_, close: false) = d.responseEnd() else { return XCTFail("\(d.log)") }
        XCTAssertEqual(d.output, "HTTP/1.1 200 OK\r\nETag: \"x\"\r\nContent-Length: 1234\r\n\r\n")
        d.pump()
        XCTAssertEqual(d.log.suffix(2), [.head("GET /next"), .end([])])
    }

    func testResponsesWithoutContentHaveNoFraming() {
        for (status, phrase) in [(204, "No Content"), (304, "Not Modified")] {
            let d = SessionDriver()
            d.feed(get("/") + get("/next"))
            d.responseHead(status, fields: [field("ETag", "\"x\"")], length: nil, hasBody: false)
            guard case .finished(let r, close: false) = d.responseEnd() else { return XCTFail("\(status): \(d.log)") }
            XCTAssertEqual(d.output, "HTTP/1.1 \(status) \(phrase)\r\nETag: \"x\"\r\n\r\n")
            XCTAssertEqual(r.status, status)
            d.pump()
            XCTAssertEqual(d.log.suffix(2), [.head("GET /next"), .end([])])
        }
    }

    func testEmptyBodyOfKnownLength() {
        let d = SessionDriver()
        d.feed(get("/"))
        d.responseHead(200, length: 0)
        d.responseEnd()
        XCTAssertEqual(d.output, "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
    }

    func testInterimResponsesPrecedeTheFinalOne() {
        let d = SessionDriver()
        d.feed(get("/"))
        d.responseHead(103, fields: [field("Link", "</s.css>; rel=preload")], length: nil, hasBody: false)
        XCTAssertEqual(d.session.request?.status, 0, "an interim response is not the final status")
        XCTAssertEqual(d.session.request?.responseStarted, false)
        d.responseHead(200, reason: "Fine", length: 2)
        d.responseBody("ok")
        d.responseEnd()
        XCTAssertEqual(d.output, "HTTP/1.1 103 Early Hints\r\nLink: </s.css>; rel=preload\r\n\r\n"
                                 + "HTTP/1.1 200 Fine\r\nContent-Length: 2\r\n\r\nok")
        XCTAssertEqual(d.finished.last?.status, 200)
        XCTAssertEqual(d.finished.last?.bytesOut, Int64(d.out.count))
    }

    /// RFC 9110 §15.2: a server MUST NOT send a 1xx response to an HTTP/1.0 client.
    func testNoInterimResponseForAnHTTP10Client() {
        let d = SessionDriver()
        d.feed(get("/", version: "1.0"))
        d.responseHead(103, fields: [field("Link", "</s.css>; rel=preload")], length: nil, hasBody: false)
        XCTAssertEqual(d.output, "")
        d.responseHead(200, length: 2)
        d.responseBody("ok")
        d.responseEnd()
        XCTAssertEqual(d.output, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok")
    }

    // MARK: Connection: close

    func testConnectionCloseRequestIsTheLast() {
        for (label, chunks) in splits(get("/a", "Connection: close\r\n") + get("/never")) {
            let d = SessionDriver()
            d.feed(chunks)
            XCTAssertEqual(d.log, [.head("GET /a"), .end([])], label)
            XCTAssertEqual(d.stop, .waitForResponse, label)
            d.responseHead(200, length: 2)
            d.responseBody("ok")
            guard case .finished(_, close: true) = d.responseEnd() else { return XCTFail("\(label): \(d.log)") }
            XCTAssertEqual(d.output, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok", label)
            XCTAssertEqual(d.session.phase, .closing, label)
            d.pump()
            XCTAssertEqual(d.log.last, .closed, label)
            XCTAssertTrue(d.pending.isEmpty, label)
        }
    }

    func testConnectionCloseOnAChunkedResponse() {
        let d = SessionDriver()
        d.feed(get("/a", "Connection: close\r\n"))
        d.responseHead(200, length: nil)
        d.responseBody("ok")
        guard case .finished(_, close: true) = d.responseEnd() else { return XCTFail("\(d.log)") }
        XCTAssertEqual(d.output, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n2\r\nok\r\n0\r\n\r\n")
    }

    // MARK: The origin answering early

    func testOriginAnsweringBeforeTheBodyEndedDropsTheRestThenCloses() {
        let d = SessionDriver()
        d.feed(String(post("/up", "0123456789").dropLast(5)))
        XCTAssertEqual(d.log, [.head("POST /up"), .body("01234")])
        d.responseHead(413, length: 4)
        d.responseBody("big\n")
        XCTAssertEqual(d.responseEnd(), .carryOn, "the request body is not over")
        XCTAssertEqual(d.output, "HTTP/1.1 413 Content Too Large\r\nContent-Length: 4\r\n\r\nbig\n")
        // The rest of the body is read and dropped (no .body, no .end); then the connection closes.
        d.feed("56789" + get("/never"))
        XCTAssertEqual(d.log, [.head("POST /up"), .body("01234"), .finished(status: 413, close: true), .closed])
        XCTAssertEqual(d.finished.first?.bytesIn, 10)
        XCTAssertTrue(d.pending.isEmpty)
    }

    // MARK: Failures

    func testFailureBeforeAnyResponseIsAnsweredAndKeepsTheConnection() {
        for (label, chunks) in splits(get("/a") + get("/b")) {
            let d = SessionDriver()
            d.feed(chunks)
            guard case .finished(let r, close: false) = d.responseFailed(502, "connection refused") else {
                return XCTFail("\(label): \(d.log)")
            }
            XCTAssertEqual(d.output, local(502, "Bad Gateway", "Bad Gateway: connection refused\n"), label)
            XCTAssertEqual(r.status, 502, label)
            XCTAssertTrue(r.forwarded, label)
            d.pump()
            XCTAssertEqual(d.log.suffix(2), [.head("GET /b"), .end([])], label)
        }
    }

    func testFailureAtOnceBeforeTheEndOfABodylessRequestWasParsed() {
        let d = SessionDriver()
        d.route = { d, _ in d.forward(); d.responseFailed(503, "no server available") }
        d.feed(get("/a") + get("/b"))
        XCTAssertEqual(d.log, [.head("GET /a"), .finished(status: 503, close: false), .head("GET /b"),
                               .finished(status: 503, close: false)])
        XCTAssertEqual(d.output, local(503, "Service Unavailable", "Service Unavailable: no server available\n")
                                 + local(503, "Service Unavailable", "Service Unavailable: no server available\n"))
    }

    func testFailureAtOnceBeforeTheEndOfAnEmptyBodyKeepsTheConnection() {
        let d = SessionDriver()
        d.route = { d, _ in d.forward(); d.responseFailed(503, "no server available") }
        d.feed(post("/a", "") + get("/b"))
        XCTAssertEqual(d.log, [.head("POST /a"), .finished(status: 503, close: false), .head("GET /b"),
                               .finished(status: 503, close: false)])
    }

    func testFailureDuringTheRequestBodyClosesAfterIt() {
        let d = SessionDriver()
        d.feed(String(post("/up", "0123456789").dropLast(5)))
        XCTAssertEqual(d.responseFailed(502, "reset"), .carryOn)
        XCTAssertEqual(d.output, local(502, "Bad Gateway", "Bad Gateway: reset\n", close: true))
        d.feed("56789" + get("/never"))
        XCTAssertEqual(d.log, [.head("POST /up"), .body("01234"), .finished(status: 502, close: true), .closed])
    }

    func testFailureAfterTheResponseBeganClosesNow() {
        let d = SessionDriver()
        d.feed(get("/"))
        d.responseHead(200, length: 10)
        d.responseBody("01234")
        let written = d.output
        XCTAssertEqual(d.responseFailed(502, "upstream reset"), .closeNow)
        XCTAssertEqual(d.output, written)
    }

    // MARK: Upgrade

    func testUpgradeBecomesATunnel() {
        let upgrade = get("/chat", "Connection: Upgrade\r\nUpgrade: websocket\r\n")
        let early = "\u{1}\u{2}frame"
        for (label, chunks) in splits(upgrade + early) {
            let d = SessionDriver()
            d.feed(chunks)
            XCTAssertEqual(d.log, [.head("GET /chat"), .end([])], label)
            XCTAssertEqual(d.pendingText, early, label)
            d.responseHead(101, fields: [field("Connection", "upgrade"), field("Upgrade", "websocket")], length: nil, hasBody: false)
            d.session.tunnelEstablished()
            XCTAssertEqual(d.session.phase, .tunnel, label)
            XCTAssertEqual(d.takeOutput(), "HTTP/1.1 101 Switching Protocols\r\nConnection: upgrade\r\nUpgrade: websocket\r\n\r\n", label)
            // Every byte from here on belongs to the tunnel: nothing consumed.
            d.pump()
            XCTAssertEqual(d.log.last, .tunnel, label)
            XCTAssertEqual(d.pendingText, early, label)
            d.feed("more")
            XCTAssertEqual(d.pendingText, early + "more", label)
            // The origin's bytes go out raw.
            d.responseBody("server bytes")
            XCTAssertEqual(d.takeOutput(), "server bytes", label)
            XCTAssertFalse(d.session.peerClosed(), label)
            XCTAssertFalse(d.session.drain(), label)
            guard case .finished(let r, close: true) = d.responseEnd(trailers: [field("X-T", "1")]) else {
                return XCTFail("\(label): \(d.log)")
            }
            XCTAssertEqual(d.output, "", label)
            XCTAssertEqual(r.status, 101, label)
            XCTAssertEqual(r.bytesOut, Int64("HTTP/1.1 101 Switching Protocols\r\nConnection: upgrade\r\nUpgrade: websocket\r\n\r\n".utf8.count + 12), label)
            XCTAssertEqual(d.session.phase, .closing, label)
        }
    }

    func testFailureInATunnelClosesNow() {
        let d = SessionDriver()
        d.feed(get("/chat", "Connection: Upgrade\r\nUpgrade: websocket\r\n"))
        d.responseHead(101, fields: [field("Connection", "upgrade"), field("Upgrade", "websocket")], length: nil, hasBody: false)
        d.session.tunnelEstablished()
        XCTAssertEqual(d.responseFailed(502, "gone"), .closeNow)
        XCTAssertEqual(d.refuse(400, "bad"), .closeNow)
    }

    func testUpgradeRefusedByTheOriginIsAnOrdinaryResponse() {
        let d = SessionDriver()
        d.feed(get("/chat", "Connection: Upgrade\r\nUpgrade: websocket\r\n") + get("/next"))
        d.ok("plain")
        XCTAssertEqual(d.session.phase, .open)
        d.pump()
        XCTAssertEqual(d.log.suffix(2), [.head("GET /next"), .end([])])
    }

    // MARK: Malformed input

    func testMalformedRequestsAreRefusedAndNeverReported() {
        let cases: [(String, String, Int, String, Int)] = [
            ("Content-Length with Transfer-Encoding",
             "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\nabc", 400, "Bad Request", 16384),
            ("repeated Content-Length", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabc", 400, "Bad Request", 16384),
            ("bad request line", "GET / HTTP/1.1 extra\r\nHost: a\r\n\r\n", 400, "Bad Request", 16384),
            ("missing Host", "GET / HTTP/1.1\r\n\r\n", 400, "Bad Request", 16384),
            ("Transfer-Encoding in HTTP/1.0", "POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400, "Bad Request", 16384),
            ("unknown transfer coding", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip\r\n\r\n", 501, "Not Implemented", 16384),
            ("oversize fields", "GET / HTTP/1.1\r\nHost: a\r\nX-Big: " + String(repeating: "b", count: 200) + "\r\n\r\n",
             431, "Request Header Fields Too Large", 100),
            ("oversize request line", "GET /" + String(repeating: "a", count: 200) + " HTTP/1.1\r\nHost: a\r\n\r\n", 400, "Bad Request", 100),
        ]
        for (name, raw, status, phrase, limit) in cases {
            for (label, chunks) in splits(raw + get("/never")) {
                let label = "\(name), \(label)"
                let d = SessionDriver(maxHeaderBytes: limit)
                d.feed(chunks)
                XCTAssertEqual(d.log, [.invalid(status)], label)
                guard case .invalid(_, let reason) = d.stop else { return XCTFail(label) }
                guard case .finished(let r, close: true) = d.refuse(status, reason) else { return XCTFail("\(label): \(d.log)") }
                XCTAssertEqual(r.head, .placeholder, label)
                XCTAssertEqual(r.status, status, label)
                XCTAssertEqual(d.output, local(status, phrase, "\(phrase): \(reason)\n", close: true), label)
                XCTAssertEqual(r.bytesOut, Int64(d.out.count), label)
                d.pump()
                XCTAssertEqual(d.log.last, .closed, label)
                XCTAssertTrue(d.pending.isEmpty, label)
            }
        }
    }

    func testTooManyFieldsAre431() {
        let d = SessionDriver(maxHeaders: 3)
        d.feed("GET / HTTP/1.1\r\nHost: a\r\nA: 1\r\nB: 2\r\nC: 3\r\n\r\n")
        XCTAssertEqual(d.log, [.invalid(431)])
    }

    func testMalformedPipelinedRequestIsReadOnlyAfterTheResponseBeforeIt() {
        let d = SessionDriver()
        d.feed(get("/a") + "GET / HTTP/1.1 extra\r\n\r\n")
        XCTAssertEqual(d.log, [.head("GET /a"), .end([])])
        XCTAssertEqual(d.stop, .waitForResponse)
        d.ok()
        d.pump()
        XCTAssertEqual(d.log.last, .invalid(400))
        d.refuse(400, "bad")
        XCTAssertTrue(d.output.hasSuffix(local(400, "Bad Request", "Bad Request: bad\n", close: true)))
        XCTAssertEqual(d.log.suffix(2), [.invalid(400), .finished(status: 400, close: true)])
    }

    func testMalformedChunkedBodyMidway() {
        let d = SessionDriver()
        d.feed(chunkedPost("/up", "3\r\nabc\r\nzz\r\n"))
        XCTAssertEqual(d.log, [.head("POST /up"), .body("abc"), .invalid(400)])
        guard case .finished(let r, close: true) = d.refuse(400, "bad chunk") else { return XCTFail("\(d.log)") }
        XCTAssertEqual(r.head.target, "/up")
        XCTAssertEqual(d.output, local(400, "Bad Request", "Bad Request: bad chunk\n", close: true))
        d.pump()
        XCTAssertEqual(d.log.last, .closed)
    }

    // MARK: Half-close

    func testPeerClosedWhileTheResponseIsComing() {
        let d = SessionDriver()
        d.feed(get("/a") + get("/b"))
        XCTAssertTrue(d.session.peerClosed())
        d.responseHead(200, length: 2)
        d.responseBody("ok")
        // Keep-alive, but the client is gone: the response is the connection's last.
        guard case .finished(_, close: true) = d.responseEnd() else { return XCTFail("\(d.log)") }
        XCTAssertEqual(d.session.phase, .closing)
        XCTAssertEqual(d.output, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
    }

    func testPeerClosedOtherwiseMeansCloseNow() {
        // Idle.
        var d = SessionDriver()
        XCTAssertFalse(d.session.peerClosed())
        // Part of a head.
        d.feed("GET / HTTP/1.1\r\nHo")
        XCTAssertFalse(d.session.peerClosed())
        // In the middle of a forwarded body.
        d = SessionDriver()
        d.feed(String(post("/up", "0123456789").dropLast(3)))
        XCTAssertFalse(d.session.peerClosed())
        // The body was forwarded but the response is already complete (being discarded).
        d = SessionDriver()
        d.route = { d, _ in d.respond(404, "no\n") }
        d.feed(String(post("/up", "0123456789").dropLast(3)))
        XCTAssertFalse(d.session.peerClosed())
        // After a complete exchange.
        d = SessionDriver()
        d.feed(get("/"))
        d.ok()
        XCTAssertFalse(d.session.peerClosed())
    }

    // MARK: Graceful drain

    func testDrainWhenIdleClosesNow() {
        let d = SessionDriver()
        XCTAssertTrue(d.session.drain())
        d.feed(get("/a"))
        d.feed(get("/b"))
        XCTAssertEqual(d.stop, .waitForResponse)
        // A head that still arrives is the connection's last.
        guard case .finished(_, close: true) = d.ok() else { return XCTFail("\(d.log)") }
        XCTAssertEqual(d.output, "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nConnection: close\r\n\r\nhello")
        d.pump()
        XCTAssertEqual(d.log, [.head("GET /a"), .end([]), .finished(status: 200, close: true), .closed])
    }

    func testDrainWhileBusyMakesTheCurrentResponseTheLast() {
        let d = SessionDriver()
        d.feed(get("/a") + get("/never"))
        XCTAssertFalse(d.session.drain())
        d.responseHead(200, length: nil)
        d.responseBody("ok")
        guard case .finished(_, close: true) = d.responseEnd() else { return XCTFail("\(d.log)") }
        XCTAssertEqual(d.output, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n2\r\nok\r\n0\r\n\r\n")
        d.pump()
        XCTAssertEqual(d.log, [.head("GET /a"), .end([]), .finished(status: 200, close: true), .closed])
    }

    func testDrainAfterTheResponseHeadStillClosesAfterIt() {
        let d = SessionDriver()
        d.feed(get("/a") + get("/never"))
        d.responseHead(200, length: 2)
        XCTAssertFalse(d.session.drain())
        d.responseBody("ok")
        guard case .finished(_, close: true) = d.responseEnd() else { return XCTFail("\(d.log)") }
        XCTAssertEqual(d.output, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
    }

    func testDrainDuringALocalResponseBody() {
        let d = SessionDriver()
        d.route = { d, _ in d.respond(404, "no\n") }
        d.feed(String(post("/", "0123456789").dropLast(4)))
        XCTAssertFalse(d.session.drain())
        d.feed("6789" + get("/never"))
        XCTAssertEqual(d.log, [.head("POST /"), .finished(status: 404, close: true), .closed])
    }

    // MARK: Timeouts

    func testHeadTimeoutAnswers408() {
        let d = SessionDriver()
        d.feed("GET /slow HTTP/1.1\r\nHost: exa")
        XCTAssertEqual(d.stop, .needMore)
        XCTAssertEqual(d.pendingText, "GET /slow HTTP/1.1\r\nHost: exa", "a partial head stays unconsumed")
        XCTAssertTrue(d.session.awaitingHead)
        guard case .finished(let r, close: true) = d.session.timedOut(partialHead: true, into: &d.out) else {
            return XCTFail("expected a 408")
        }
        XCTAssertEqual(r.status, 408)
        XCTAssertEqual(r.head, .placeholder)
        XCTAssertEqual(d.output, local(408, "Request Timeout", "Request Timeout: the request head did not arrive in time\n", close: true))
        d.feed("mple.com\r\n\r\n")
        XCTAssertEqual(d.log, [.closed])
        XCTAssertTrue(d.pending.isEmpty)
    }

    func testOtherTimeoutsCloseNow() {
        // Idle between requests.
        var d = SessionDriver()
        XCTAssertEqual(d.session.timedOut(partialHead: false, into: &d.out), .closeNow)
        XCTAssertEqual(d.output, "")
        // While a request is being served (slow body or slow origin).
        d = SessionDriver()
        d.feed(String(post("/", "0123456789").dropLast(3)))
        XCTAssertEqual(d.session.timedOut(partialHead: true, into: &d.out), .closeNow)
        XCTAssertEqual(d.session.timedOut(partialHead: false, into: &d.out), .closeNow)
        XCTAssertEqual(d.output, "")
    }

    // MARK: Accounting

    func testRequestAccounting() {
        let d = SessionDriver()
        d.feed(chunkedPost("/up", "5\r\nhello\r\n5\r\nworld\r\n0\r\n\r\n", "Expect: 100-continue\r\n"))
        XCTAssertEqual(d.session.request?.bytesIn, 10)
        d.responseHead(201, fields: [field("Location", "/up/1")], length: nil)
        d.responseBody("created")
        d.responseBody("!")
        guard case .finished(let r, close: false) = d.responseEnd(trailers: [field("X-Sum", "8")]) else {
            return XCTFail("\(d.log)")
        }
        XCTAssertEqual(d.output, "HTTP/1.1 100 Continue\r\n\r\n"
                                 + "HTTP/1.1 201 Created\r\nLocation: /up/1\r\nTransfer-Encoding: chunked\r\n\r\n"
                                 + "7\r\ncreated\r\n1\r\n!\r\n0\r\nX-Sum: 8\r\n\r\n")
        XCTAssertEqual(r.status, 201)
        XCTAssertEqual(r.bytesIn, 10)
        // Everything written for the response: interim head, head, chunk framing, body and trailers.
        XCTAssertEqual(r.bytesOut, Int64(d.out.count))
        XCTAssertTrue(r.forwarded)
        XCTAssertTrue(r.responseStarted)
    }

    func testAccountingOfAKnownLengthResponse() {
        let d = SessionDriver()
        d.feed(post("/up", "abc"))
        d.ok("0123456789")
        XCTAssertEqual(d.finished.first?.bytesIn, 3)
        XCTAssertEqual(d.finished.first?.bytesOut, Int64(d.out.count))
        XCTAssertEqual(d.finished.first?.status, 200)
    }
}
