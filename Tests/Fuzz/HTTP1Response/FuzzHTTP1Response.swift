// Fuzzes the HTTP/1.1 response parser (what origins send back): the same bytes mean the same
// responses whole or in pieces, nothing is consumed beyond the input, a failure repeats, and an
// accepted response written out again parses back the same.
// Input: 4 parameter bytes (two split points, request methods, EOF at the end), then the stream.
import FuzzSupport
import HTTP1

struct Parsed: Equatable {
    var method: String
    var heads: [ResponseHead] = []  // interim ones, then the final one
    var body: [UInt8] = []
    var trailers: [HTTPField]?  // nil while incomplete
}

struct Outcome: Equatable {
    var responses: [Parsed] = []
    var error: HTTPParseError?
}

let methods = ["GET", "HEAD", "CONNECT", "POST"]

func parseOnce(_ parser: inout ResponseParser, _ buffer: [UInt8]) -> Result<(consumed: Int, event: ResponseEvent), HTTPParseError> {
    buffer.withUnsafeBytes { raw in Result { () throws(HTTPParseError) in try parser.parse(raw) } }
}

/// Feeds `chunks` as a connection does; the n-th response answers `method(n)`; `eof` closes at the end.
func parse(_ chunks: [ArraySlice<UInt8>], method: (Int) -> String, eof: Bool) -> Outcome {
    var parser = ResponseParser(maxHeaderBytes: 4096, maxHeaders: 50)
    var outcome = Outcome()
    var buffer: [UInt8] = []
    var calls = 0
    let total = chunks.reduce(0) { $0 + $1.count }
    var current: Parsed?
    func fail(_ error: HTTPParseError) -> Outcome {
        require(error.status == 502, "a response error that is not 502: \(error)")
        if let current { outcome.responses.append(current) }
        outcome.error = error
        return outcome
    }
    for chunk in chunks {
        buffer += chunk
        reading: while true {
            calls += 1
            require(calls <= 2 * total + 2 * chunks.count + 2, "no progress")
            if current == nil {
                current = Parsed(method: method(outcome.responses.count))
                parser.expect(requestMethod: current!.method)
            }
            let step: (consumed: Int, event: ResponseEvent)
            switch parseOnce(&parser, buffer) {
            case .success(let s): step = s
            case .failure(let error):
                if case .failure(let again) = parseOnce(&parser, buffer) {
                    require(again == error, "a failed parser answered \(again) after \(error)")
                } else {
                    require(false, "a failed parser went on after \(error)")
                }
                return fail(error)
            }
            require(step.consumed >= 0 && step.consumed <= buffer.count, "consumed \(step.consumed) of \(buffer.count)")
            switch step.event {
            case .needMore:
                buffer.removeFirst(step.consumed)
                require(buffer.count <= 4096 + 1, "holds \(buffer.count) unconsumed bytes")
                break reading
            case .head(let head):
                require(step.consumed > 0, "a head from no bytes")
                require(current!.heads.last.map { $0.status < 200 && $0.status != 101 } ?? true, "a head after the final one")
                current!.heads.append(head)
            case .body(let range):
                require(!range.isEmpty && range.upperBound <= step.consumed, "body range \(range) outside \(step.consumed)")
                require(current!.heads.last.map { $0.status >= 200 || $0.status == 101 } ?? false, "body before the final head")
                current!.body += buffer[range]
            case .end(let trailers):
                current!.trailers = trailers
                outcome.responses.append(current!)
                current = nil
            }
            buffer.removeFirst(step.consumed)
        }
    }
    if eof {
        switch Result(catching: { () throws(HTTPParseError) in try parser.finishAtEOF() }) {
        case .failure(let error): return fail(error)
        case .success(.end(let trailers)?): current!.trailers = trailers
        case .success(nil): require(current?.heads.isEmpty ?? true, "idle at EOF in the middle of a response")
        case .success(let event): require(false, "EOF gave \(String(describing: event))")
        }
    }
    if let current, !current.heads.isEmpty { outcome.responses.append(current) }
    return outcome
}

/// A complete response written out again: each head with its fields as they came, the body
/// framed the way the final head says.
func serialise(_ r: Parsed) -> [UInt8] {
    var out: [UInt8] = []
    for head in r.heads {
        out += Array("HTTP/1.\(head.versionMinor) \(head.status) \(head.reason)\r\n".utf8)
        HTTP1Writer.appendFields(head.fields, into: &out)
        out += Array("\r\n".utf8)
    }
    if r.heads.last?.framing == .chunked {
        if !r.body.isEmpty { out += Array("\(String(r.body.count, radix: 16))\r\n".utf8) + r.body + Array("\r\n".utf8) }
        HTTP1Writer.appendLastChunk(trailers: r.trailers ?? [], into: &out)
    } else {
        out += r.body
    }
    return out
}

func test(_ data: [UInt8]) {
    var input = FuzzInput(data)
    let (a, b, kinds, flags) = (input.byte(), input.byte(), input.byte(), input.byte())
    let method = { (n: Int) in methods[Int(kinds >> UInt8(2 * (n % 4))) & 3] }
    let eof = flags & 1 != 0
    let stream = input.rest
    let whole = parse([stream], method: method, eof: eof)
    let pieces = parse(split(stream, at: a, b), method: method, eof: eof)
    require(whole == pieces, "whole \(whole) but in pieces \(pieces)")

    for response in whole.responses where response.trailers != nil {
        // A body that ran until close needs the close again.
        let untilClose = response.heads.last?.framing == .untilClose
        let bytes = serialise(response)
        let again = parse([bytes[...]], method: { _ in response.method }, eof: untilClose)
        require(again.error == nil && again.responses.first == response,
                "\(response) written as \(String(decoding: bytes, as: UTF8.self).debugDescription) parsed as \(again)")
    }
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>?, _ size: Int) -> Int32 {
    test(FuzzInput(data, size).bytes)
    return 0
}

@main enum Main { static func main() { fuzzMain(fuzz) } }
