// Fuzzes the server side of an HTTP/1.1 connection (HTTP1Session) driven as the front drives it:
// each request answered here or forwarded and answered by a make-believe origin, with or without
// a known length. Invariants: the session reads the same requests as the request parser; bodies of
// forwarded requests arrive whole; what it writes parses as one response per request with the
// status and body given (none for HEAD, 204, 304), nothing after a response that closes; the same
// bytes give the same transcript whole and in pieces.
// Input: 4 parameter bytes (two split points, answers, response framing), then the byte stream.
import FuzzSupport
import HTTP1

struct Answer: Equatable {
    var method: String
    var status: Int
    var body: [UInt8]
}

struct Transcript: Equatable {
    var heads: [RequestHead] = []
    var bodies: [[UInt8]] = []        // of forwarded requests
    var answers: [Answer] = []
    var out: [UInt8] = []
    var closed = false
    var invalid: Int?
    /// The last answer is a refusal, whose text is the session's own.
    var refused = false
}

let limits = (headerBytes: 2048, headers: 30)

func run(_ chunks: [ArraySlice<UInt8>], answers: UInt8, framing: UInt8) -> Transcript {
    var session = HTTP1Session(maxHeaderBytes: limits.headerBytes, maxHeaders: limits.headers, maxBodyBytes: 0)
    var t = Transcript()
    var buffer: [UInt8] = []
    var forwarded: RequestHead?
    var body: [UInt8] = []
    var calls = 0
    let total = chunks.reduce(0) { $0 + $1.count }

    func finished(_ next: HTTP1Session.Next) {
        switch next {
        case .carryOn: break
        case .finished(_, let close): if close { t.closed = true }
        case .closeNow: t.closed = true
        }
    }
    /// The origin's answer to the forwarded request: its length known or not, by `framing`.
    func originAnswers(_ head: RequestHead) {
        let n = t.answers.count
        let status = [200, 204, 404, 304][Int(framing >> UInt8(2 * (n % 4))) & 3]
        let bytes = Array("answer \(n)".utf8)
        let hasBody = status != 204 && status != 304 && head.method != "HEAD"
        // The length an origin declares: known or not; a HEAD response may declare the GET's.
        let known = (framing >> UInt8(n % 8)) & 1 == 0 && status != 204 && status != 304
        session.responseHead(status: status, reason: nil, fields: [HTTPField(name: "X-N", value: String(n))],
                             bodyLength: known ? Int64(bytes.count) : nil, hasBody: hasBody, into: &t.out)
        if hasBody { bytes.withUnsafeBytes { session.responseBody($0, into: &t.out) } }
        t.answers.append(Answer(method: head.method, status: status, body: hasBody ? bytes : []))
        finished(session.responseEnd(trailers: [], into: &t.out))
    }

    reading: for chunk in chunks {
        buffer += chunk
        while !t.closed {
            calls += 1
            require(calls <= 4 * total + 4 * chunks.count + 8, "no progress")
            let (consumed, event) = buffer.withUnsafeBytes { session.next($0) }
            require(consumed >= 0 && consumed <= buffer.count, "consumed \(consumed) of \(buffer.count)")
            switch event {
            case .needMore:
                buffer.removeFirst(consumed)
                continue reading
            case .waitForResponse:
                require(forwarded != nil, "waiting without a forwarded request")
                t.bodies.append(body)
                body = []
                originAnswers(forwarded!)
                forwarded = nil
            case .head(let head):
                t.heads.append(head)
                // CONNECT is refused here (a 2xx would make the connection a tunnel).
                if (answers >> UInt8(t.heads.count % 8)) & 1 == 0 || head.method == "CONNECT" {
                    let text = "local \(t.heads.count)"
                    let status = head.method == "CONNECT" ? 405 : head.method == "HEAD" ? 200 : 201
                    t.answers.append(Answer(method: head.method, status: status, body: head.method == "HEAD" ? [] : Array(text.utf8)))
                    finished(session.respond(status: status, body: text, into: &t.out))
                } else {
                    session.forward(bodyLimit: 0, into: &t.out)
                    forwarded = head
                }
            case .body(let range):
                require(!range.isEmpty && range.upperBound <= consumed, "body range \(range) outside \(consumed)")
                require(forwarded != nil, "body of a request not forwarded")
                body += buffer[range]
            case .end:
                require(forwarded != nil, "end of a request not forwarded")
            case .finished(_, let close):
                if close { t.closed = true }
            case .tunnel:
                t.closed = true
            case .invalid(let status, let reason):
                t.invalid = status
                let before = t.out.count
                finished(session.refuse(status: status, reason: reason, into: &t.out))
                // A refusal answers the forwarded request, or a head that could not be read.
                if t.out.count > before {
                    t.answers.append(Answer(method: forwarded?.method ?? "GET", status: status, body: []))
                    t.refused = true
                }
                t.closed = true
            case .closed:
                t.closed = true
            }
            buffer.removeFirst(consumed)
        }
        break
    }
    return t
}

/// The request parser's reading of the same bytes, up to its first error.
func parserHeads(_ bytes: ArraySlice<UInt8>) -> [RequestHead] {
    var parser = RequestParser(maxHeaderBytes: limits.headerBytes, maxHeaders: limits.headers)
    var heads: [RequestHead] = []
    var rest = Array(bytes)
    while true {
        let step = rest.withUnsafeBytes { raw in Result { () throws(HTTPParseError) in try parser.parse(raw) } }
        guard case .success(let (consumed, event)) = step, event != .needMore else { return heads }
        if case .head(let head) = event { heads.append(head) }
        rest.removeFirst(consumed)
    }
}

let continueLine = Array("HTTP/1.1 100 Continue\r\n\r\n".utf8)

/// The session's output read back as a client reads it.
func responses(_ out: [UInt8], methods: [String], eof: Bool) -> [Answer]? {
    var parser = ResponseParser(maxHeaderBytes: 1 << 20, maxHeaders: 1000)
    var answers: [Answer] = []
    var rest = out
    var current: Answer?
    var methods = methods[...]
    func step() -> Bool? {
        if current == nil {
            // Past the last answer only a 100 Continue may be left: it went out for a request whose
            // body never arrived in full, so nothing final follows it.
            guard let method = methods.popFirst() else { return rest.isEmpty || rest == continueLine ? nil : false }
            parser.expect(requestMethod: method)
            current = Answer(method: method, status: 0, body: [])
        }
        let result = rest.withUnsafeBytes { raw in Result { () throws(HTTPParseError) in try parser.parse(raw) } }
        guard case .success(let (consumed, event)) = result else { return false }
        switch event {
        case .needMore: return nil
        case .head(let head): if head.status >= 200 { current!.status = head.status }
        case .body(let range): current!.body += rest[range]
        case .end:
            answers.append(current!)
            current = nil
        }
        rest.removeFirst(consumed)
        return true
    }
    while let more = step() { if !more { return nil } }
    if eof, case .success(.end?) = Result(catching: { () throws(HTTPParseError) in try parser.finishAtEOF() }) {
        answers.append(current!)
    }
    return answers
}

func test(_ data: [UInt8]) {
    var input = FuzzInput(data)
    let (a, b, answers, framing) = (input.byte(), input.byte(), input.byte(), input.byte())
    let stream = input.rest
    let whole = run([stream], answers: answers, framing: framing)
    let pieces = run(split(stream, at: a, b), answers: answers, framing: framing)
    require(whole == pieces, "whole \(whole) but in pieces \(pieces)")

    let parsed = parserHeads(stream)
    require(Array(parsed.prefix(whole.heads.count)) == whole.heads, "session read \(whole.heads), the parser \(parsed)")
    require(whole.invalid != nil || whole.closed || whole.heads.count == parsed.count, "session read \(whole.heads), the parser \(parsed)")

    let expected = whole.answers
    guard var got = responses(whole.out, methods: expected.map(\.method), eof: whole.closed) else {
        return require(false, "output does not parse: \(String(decoding: whole.out, as: UTF8.self).debugDescription)")
    }
    if whole.refused, !got.isEmpty { got[got.count - 1].body = [] }
    require(got == expected, "answered \(expected), the client reads \(got) from \(String(decoding: whole.out, as: UTF8.self).debugDescription)")
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>?, _ size: Int) -> Int32 {
    test(FuzzInput(data, size).bytes)
    return 0
}

@main enum Main { static func main() { fuzzMain(fuzz) } }
