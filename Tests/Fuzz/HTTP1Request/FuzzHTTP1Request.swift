// Fuzzes the HTTP/1.1 request parser (head scanner, field rules, chunked body decoder) with the
// invariants a proxy relies on: the same bytes mean the same requests whether they arrive whole or
// in pieces; no call consumes more than it was given or holds more than the limits unconsumed; and a
// request the parser accepts, written out again, parses back to the same request.
// Input: 3 parameter bytes (two split points, limit flags), then the byte stream.
import FuzzSupport
import HTTP1

struct Parsed: Equatable {
    var head: RequestHead
    var body: [UInt8] = []
    var trailers: [HTTPField]?  // nil while the request is incomplete
}

struct Outcome: Equatable {
    var requests: [Parsed] = []
    var error: HTTPParseError?
}

struct Limits {
    var headerBytes = 16384, headers = 100, body = Int64.max
}

/// Feeds `chunks` the way a connection does: append each read, parse until needMore, drop what
/// was consumed.
func parse(_ chunks: [ArraySlice<UInt8>], _ limits: Limits) -> Outcome {
    var parser = RequestParser(maxHeaderBytes: limits.headerBytes, maxHeaders: limits.headers, maxBodyBytes: limits.body)
    var outcome = Outcome()
    var buffer: [UInt8] = []
    var calls = 0
    let total = chunks.reduce(0) { $0 + $1.count }
    for chunk in chunks {
        buffer += chunk
        reading: while true {
            calls += 1
            require(calls <= 2 * total + 2 * chunks.count + 2, "no progress")
            let step: (consumed: Int, event: RequestEvent)
            switch parseOnce(&parser, buffer) {
            case .success(let s): step = s
            case .failure(let error):
                // The parser keeps failing the same way after a throw.
                let again = parseOnce(&parser, buffer)
                require(again.failure == error, "a failed parser answered \(again) after \(error)")
                outcome.error = error
                return outcome
            }
            require(step.consumed >= 0 && step.consumed <= buffer.count, "consumed \(step.consumed) of \(buffer.count)")
            switch step.event {
            case .needMore:
                buffer.removeFirst(step.consumed)
                // What waits for more is bounded by the head and chunk-line limits, whatever arrives.
                require(buffer.count <= max(limits.headerBytes, 4096) + 1, "holds \(buffer.count) unconsumed bytes")
                break reading
            case .head(let head):
                require(step.consumed > 0, "a head from no bytes")
                require(outcome.requests.last.map { $0.trailers != nil } ?? true, "a head inside a request")
                outcome.requests.append(Parsed(head: head))
            case .body(let range):
                require(!range.isEmpty && range.lowerBound >= 0 && range.upperBound <= step.consumed,
                        "body range \(range) outside the \(step.consumed) bytes consumed")
                require(outcome.requests.last?.trailers == nil, "body outside a request")
                outcome.requests[outcome.requests.count - 1].body += buffer[range]
            case .end(let trailers):
                require(outcome.requests.last?.trailers == nil, "end outside a request")
                outcome.requests[outcome.requests.count - 1].trailers = trailers
            }
            buffer.removeFirst(step.consumed)
        }
    }
    return outcome
}

func parseOnce(_ parser: inout RequestParser, _ buffer: [UInt8]) -> Result<(consumed: Int, event: RequestEvent), HTTPParseError> {
    buffer.withUnsafeBytes { raw in Result { () throws(HTTPParseError) in try parser.parse(raw) } }
}

extension Result {
    var failure: Failure? { if case .failure(let e) = self { e } else { nil } }
}

/// The request written out again: the parsed head's fields as they were (framing fields included),
/// the body framed the way the head says, chunked as one chunk plus the trailers.
func serialise(_ r: Parsed) -> [UInt8] {
    var target = r.head.target
    // An absolute-form target without a Host field (HTTP/1.0) is the only place the authority lives.
    if let host = r.head.host, r.head.fields.firstValue(named: "Host") == nil { target = "http://" + host + target }
    var out = Array("\(r.head.method) \(target) HTTP/1.\(r.head.versionMinor)\r\n".utf8)
    HTTP1Writer.appendFields(r.head.fields, into: &out)
    out += "\r\n".utf8
    switch r.head.framing {
    case .chunked:
        if !r.body.isEmpty {
            out += Array("\(String(r.body.count, radix: 16))\r\n".utf8) + r.body + Array("\r\n".utf8)
        }
        HTTP1Writer.appendLastChunk(trailers: r.trailers ?? [], into: &out)
    default:
        out += r.body
    }
    return out
}

func test(_ data: [UInt8]) {
    var input = FuzzInput(data)
    let (a, b, flags) = (input.byte(), input.byte(), input.byte())
    var limits = Limits()
    // Small limits now and then, so 413 and 431 paths are reached too.
    if flags & 1 != 0 { limits.headerBytes = 64 + Int(flags) }
    if flags & 2 != 0 { limits.headers = Int(flags >> 4) }
    if flags & 4 != 0 { limits.body = Int64(flags >> 3) }
    let stream = input.rest
    let whole = parse([stream], limits)
    let pieces = parse(split(stream, at: a, b), limits)
    require(whole == pieces, "whole \(whole) but in pieces \(pieces)")

    for request in whole.requests where request.trailers != nil {
        let bytes = serialise(request)
        let again = parse([bytes[...]], Limits(headerBytes: bytes.count + 1, headers: 10_000, body: .max))
        require(again.error == nil && again.requests == [request],
                "\(request) written as \(String(decoding: bytes, as: UTF8.self).debugDescription) parsed as \(again)")
    }
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>?, _ size: Int) -> Int32 {
    test(FuzzInput(data, size).bytes)
    return 0
}

@main enum Main { static func main() { fuzzMain(fuzz) } }
