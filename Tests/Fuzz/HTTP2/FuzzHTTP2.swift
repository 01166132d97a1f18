// Fuzzes the server side of the HTTP/2 session (nghttp2 plus our callbacks, buffers and
// protections) with client frames after the connection preface. A delegate answers every request
// with a body, as the front does. Invariants: each stream's events come in order (head, data, end,
// close); no field that reaches the proxy could break the HTTP/1.1 hop (names are lower-case
// tokens or pseudo-headers, values hold no CR, LF or NUL); the frames produced are well formed and
// each stream's DATA is a prefix of the body given; the same bytes give each stream the same
// request whether they arrive whole or in pieces.
// Input: 4 parameter bytes (two split points, response body size, produce limit), then frames.
import FuzzSupport
import HTTP1
import HTTP2

let preface = Array("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".utf8)

enum Event: Equatable {
    case head([HTTPField], stream: Int32, endStream: Bool, oversized: Bool)
    case data(Int, stream: Int32)
    case end(stream: Int32, trailers: [HTTPField])
    case closed(stream: Int32, error: UInt32)
}

/// The response body of a stream: its bytes depend on the stream and the offset, so a DATA frame
/// carrying another stream's bytes, or the wrong part, shows.
func bodyByte(stream: Int32, at offset: Int) -> UInt8 { UInt8(truncatingIfNeeded: offset &* 31 &+ Int(stream) &+ offset >> 8) }

func body(stream: Int32, size: Int) -> [UInt8] { (0..<size).map { bodyByte(stream: stream, at: $0) } }

final class Recorder: HTTP2SessionDelegate {
    var events: [Event] = []
    let bodySize: Int
    var open: [Int32: (ended: Bool, closed: Bool)] = [:]
    /// Body bytes per stream, and the content-length its head declared.
    var received: [Int32: Int] = [:]
    var declared: [Int32: Int] = [:]

    init(bodySize: Int) { self.bodySize = bodySize }

    func http2(_ session: HTTP2Session, head pseudo: HTTP2PseudoHeaders, fields section: consuming HTTPFields, stream: Int32,
               endStream: Bool, oversized: Bool) {
        require(!section.contains { $0.name.hasPrefix(":") }, "pseudo-header field among the fields")
        require(!oversized || pseudo == HTTP2PseudoHeaders(), "oversized head with pseudo-header fields")
        let fields = pseudo.fields + Array(section)
        events.append(.head(fields, stream: stream, endStream: endStream, oversized: oversized))
        require(stream > 0 && stream % 2 == 1, "request on stream \(stream)")
        require(open[stream] == nil, "second head on stream \(stream)")
        require(!oversized || fields.isEmpty, "oversized head with fields")
        for field in fields { checkField(field) }
        open[stream] = (endStream, false)
        declared[stream] = fields.firstValue(named: "content-length").flatMap { Int($0) }
        // Answer at once, half the body now and the rest once the request ends (as an origin might).
        let bytes = body(stream: stream, size: bodySize)
        require(session.submitResponse(stream: stream, status: 200, fields: [HTTPField(name: "x-stream", value: String(stream))],
                                       hasBody: true), "response refused on stream \(stream)")
        bytes.withUnsafeBytes { session.sendData(stream: stream, UnsafeRawBufferPointer(rebasing: $0[..<(bytes.count / 2)])) }
        if endStream { finish(session, stream) }
    }

    func http2(_ session: HTTP2Session, data: UnsafeRawBufferPointer, stream: Int32) {
        events.append(.data(data.count, stream: stream))
        require(open[stream].map { !$0.ended && !$0.closed } ?? false, "data outside a request on stream \(stream)")
        // The HTTP/1.1 hop forwards the body with the client's Content-Length: it must hold.
        received[stream, default: 0] += data.count
        require(received[stream]! <= declared[stream] ?? .max, "\(received[stream]!) body bytes, content-length \(declared[stream]!)")
        session.consume(stream: stream, count: data.count)
    }

    func http2(_ session: HTTP2Session, end stream: Int32, trailers: [HTTPField]) {
        events.append(.end(stream: stream, trailers: trailers))
        require(open[stream].map { !$0.ended && !$0.closed } ?? false, "end outside a request on stream \(stream)")
        for field in trailers { checkField(field) }
        require(declared[stream].map { $0 == received[stream, default: 0] } ?? true,
                "\(received[stream, default: 0]) body bytes, content-length \(declared[stream]!)")
        open[stream]!.ended = true
        finish(session, stream)
    }

    func http2(_ session: HTTP2Session, closed stream: Int32, error: UInt32) {
        events.append(.closed(stream: stream, error: error))
        if open[stream] != nil {
            require(!open[stream]!.closed, "stream \(stream) closed twice")
            open[stream]!.closed = true
        }
    }

    func http2(_ session: HTTP2Session, drained stream: Int32) {}

    func finish(_ session: HTTP2Session, _ stream: Int32) {
        let bytes = body(stream: stream, size: bodySize)
        bytes.withUnsafeBytes { session.sendData(stream: stream, UnsafeRawBufferPointer(rebasing: $0[(bytes.count / 2)...])) }
        session.finishData(stream: stream, trailers: stream % 4 == 1 ? [HTTPField(name: "x-done", value: "1")] : [])
    }

    /// What the front forwards over HTTP/1.1 must not be able to change that message's framing.
    func checkField(_ field: HTTPField) {
        let name = Array(field.name.utf8)
        require(!name.isEmpty, "empty field name")
        let pseudo = name[0] == UInt8(ascii: ":")
        for b in name.dropFirst(pseudo ? 1 : 0) {
            require(b > 0x20 && b < 0x7F && b != UInt8(ascii: ":") && !(b >= 0x41 && b <= 0x5A), "field name \(field.name.debugDescription)")
        }
        require(!field.value.utf8.contains { $0 == 0 || $0 == 0x0A || $0 == 0x0D }, "field value \(field.value.debugDescription)")
    }
}

/// Feeds `chunks`, producing after each in pieces of at most `limit` bytes; the events and the
/// output.
func run(_ chunks: [ArraySlice<UInt8>], bodySize: Int, limit: Int) -> ([Event], [UInt8]) {
    let recorder = Recorder(bodySize: bodySize)
    var settings = HTTP2Settings()
    settings.maxHeaders = 20
    settings.maxHeaderListSize = 2048
    settings.rapidResetThreshold = 5
    settings.controlFrameBurst = 20
    settings.initialWindowSize = 65_535
    let session = try! HTTP2Session(role: .server, settings: settings, delegate: recorder)
    var out: [UInt8] = []
    var alive = true
    for chunk in [preface[...]] + chunks where alive {
        alive = chunk.withUnsafeBytes { session.receive($0, now: 1_000_000_000) }
        while true {
            let before = out.count
            session.produce(into: &out, limit: out.count + limit)
            session.notifyDrained()
            if out.count == before { break }
        }
    }
    // Nothing more is produced once the output is drained.
    require(!session.wantsWrite || !alive, "wants to write after producing everything")
    return (recorder.events, out)
}

/// Walks the frames produced: whole frames only; each stream's DATA is a prefix of its body.
func checkFrames(_ out: [UInt8], bodySize: Int) {
    var i = 0
    var sent: [Int32: Int] = [:]
    while i < out.count {
        require(i + 9 <= out.count, "a frame header cut short at \(i) of \(out.count)")
        let length = Int(out[i]) << 16 | Int(out[i + 1]) << 8 | Int(out[i + 2])
        let type = out[i + 3], flags = out[i + 4]
        let stream = Int32(out[i + 5] & 0x7F) << 24 | Int32(out[i + 6]) << 16 | Int32(out[i + 7]) << 8 | Int32(out[i + 8])
        require(i + 9 + length <= out.count, "a frame of \(length) bytes cut short")
        require(length <= 16_384, "a frame of \(length) bytes over the default maximum frame size")
        if type == 0 {
            require(stream > 0 && flags & 0x08 == 0, "DATA on stream 0 or padded")
            let at = sent[stream, default: 0]
            require(at + length <= bodySize && (0..<length).allSatisfy { out[i + 9 + $0] == bodyByte(stream: stream, at: at + $0) },
                    "DATA of stream \(stream) at \(at) is not its body")
            sent[stream] = at + length
        }
        i += 9 + length
    }
}

/// What each stream received, which must not depend on how the bytes were cut: heads, body bytes
/// (DATA frames split across reads arrive in more pieces) and ends. When a stream closes depends on
/// when its response was produced, so closes are left out; so is the body of a request that never
/// ended (nghttp2 delivers a frame's bytes as they come, and may find the frame or the connection
/// at fault sooner or later depending on the cut).
func requests(_ events: [Event]) -> [Int32: [Event]] {
    var ended: Set<Int32> = []
    for case .end(let stream, _) in events { ended.insert(stream) }
    var streams: [Int32: [Event]] = [:]
    for event in events {
        switch event {
        case .head(_, let stream, _, _), .end(let stream, _):
            streams[stream, default: []].append(event)
        case .data(_, let stream) where !ended.contains(stream):
            break
        case .data(let n, let stream):
            if case .data(let before, _)? = streams[stream]?.last {
                streams[stream]![streams[stream]!.count - 1] = .data(before + n, stream: stream)
            } else {
                streams[stream, default: []].append(event)
            }
        case .closed:
            break
        }
    }
    return streams
}

func test(_ data: [UInt8]) {
    var input = FuzzInput(data)
    let (a, b, size, limit) = (input.byte(), input.byte(), input.byte(), input.byte())
    // Mostly small bodies; some up to ~190 KiB, beyond a stream's window and the 64 KiB a stream
    // buffer keeps before compacting.
    let bodySize = size < 192 ? Int(size) * 4 : (Int(size) - 191) * (Int(size) - 191) * 48
    let produceLimit = 64 + Int(limit) * 64
    let frames = input.rest
    let whole = run([frames], bodySize: bodySize, limit: produceLimit)
    checkFrames(whole.1, bodySize: bodySize)
    let pieces = run(split(frames, at: a, b), bodySize: bodySize, limit: produceLimit)
    require(requests(whole.0) == requests(pieces.0), "requests differ whole \(whole.0) and in pieces \(pieces.0)")
    checkFrames(pieces.1, bodySize: bodySize)
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>?, _ size: Int) -> Int32 {
    test(FuzzInput(data, size).bytes)
    return 0
}

@main enum Main { static func main() { fuzzMain(fuzz) } }
