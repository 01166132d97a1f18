/// Limits a body decoder enforces: the trailer section like a head, and an optional cap on body size.
struct BodyLimits: Sendable {
    var maxTrailerBytes: Int
    var maxTrailers: Int
    var maxBodyBytes: Int64
}

/// The body state machine shared by both parsers: counts Content-Length bytes, de-chunks chunked bodies
/// (RFC 9112 §7.1) and reads trailers (§7.1.2), or passes everything through until close.
/// One event per call; body events are ranges into the caller's buffer, so nothing is copied.
struct BodyDecoder: Sendable {
    enum Event: Equatable {
        case needMore
        case data(Range<Int>)
        case end(trailers: [HTTPField])
    }

    private enum State: Sendable {
        case fixed(remaining: Int64)
        case chunkLine(scanned: Int)
        case chunkData(remaining: Int64)
        case chunkDataEnd
        case trailers(HeadBoundary)
        case untilClose
        case finished
    }

    private var state: State
    private let limits: BodyLimits
    private var chunkedTotal: Int64 = 0

    init(framing: BodyFraming, limits: BodyLimits) {
        self.limits = limits
        switch framing {
        case .none: state = .fixed(remaining: 0)
        case .length(let n): state = .fixed(remaining: n)
        case .chunked: state = .chunkLine(scanned: 0)
        case .untilClose: state = .untilClose
        }
    }

    /// At EOF: true when the body is delimited by the close itself, or already complete.
    var endsCleanlyAtEOF: Bool {
        switch state {
        case .untilClose, .fixed(remaining: 0), .finished: true
        default: false
        }
    }

    mutating func decode(_ input: UnsafeRawBufferPointer) throws(HTTPParseError) -> (consumed: Int, event: Event) {
        var offset = 0
        while true {
            switch state {
            case .finished:
                return (offset, .end(trailers: []))
            case .fixed(let remaining):
                if remaining == 0 { state = .finished; return (offset, .end(trailers: [])) }
                return take(input, from: offset, upTo: remaining) { .fixed(remaining: $0) }
            case .untilClose:
                return take(input, from: offset, upTo: .max) { _ in .untilClose }
            case .chunkData(let remaining):
                return take(input, from: offset, upTo: remaining) { $0 == 0 ? .chunkDataEnd : .chunkData(remaining: $0) }
            case .chunkLine(let scanned):
                guard let next = try readChunkLine(input, at: offset, scanned: scanned) else { return (offset, .needMore) }
                offset = next
            case .chunkDataEnd:
                guard let next = try readChunkDataEnd(input, at: offset) else { return (offset, .needMore) }
                offset = next
            case .trailers(var boundary):
                let rest = input.slice(offset..<input.count)
                let outcome = try boundary.scan(rest, limit: limits.maxTrailerBytes)
                state = .trailers(boundary)
                switch outcome {
                case .incomplete: return (offset, .needMore)
                case .tooLarge: throw .fieldsTooLarge("trailer section too large (RFC 9112 §7.1.2)")
                case .complete(let end, _):
                    let trailers = try parseFieldSection(rest.slice(0..<end), from: 0, maxFields: limits.maxTrailers,
                                                         tooMany: .fieldsTooLarge("too many trailer fields (RFC 9112 §7.1.2)"))
                    state = .finished
                    return (offset + end, .end(trailers: trailers))
                }
            }
        }
    }

    /// Hands out up to `limit` bytes from `offset`; `next` gives the state for what is left. Never an empty range.
    private mutating func take(_ input: UnsafeRawBufferPointer, from offset: Int, upTo limit: Int64,
                               next: (Int64) -> State) -> (consumed: Int, event: Event) {
        let available = input.count - offset
        guard available > 0 else { return (offset, .needMore) }
        let n = Int(Swift.min(Int64(available), limit))
        state = next(limit == .max ? .max : limit - Int64(n))
        return (offset + n, .data(offset..<offset + n))
    }

    /// Reads a chunk-size line at `offset`; returns the offset after it, or nil if it is incomplete.
    private mutating func readChunkLine(_ input: UnsafeRawBufferPointer, at offset: Int,
                                        scanned: Int) throws(HTTPParseError) -> Int? {
        let rest = input.slice(offset..<input.count)
        let (end, scannedNow) = try ChunkLine.findEnd(rest, from: scanned)
        guard let end else { state = .chunkLine(scanned: scannedNow); return nil }
        let size = try ChunkLine.parse(rest.slice(0..<end))
        let (total, overflow) = chunkedTotal.addingReportingOverflow(size)
        guard !overflow, total <= limits.maxBodyBytes else { throw .contentTooLarge("chunked body too large") }
        chunkedTotal = total
        state = size == 0 ? .trailers(HeadBoundary()) : .chunkData(remaining: size)
        return offset + end + 2
    }

    /// Chunk data must be followed by exactly CRLF (RFC 9112 §7.1).
    private mutating func readChunkDataEnd(_ input: UnsafeRawBufferPointer, at offset: Int) throws(HTTPParseError) -> Int? {
        let available = input.count - offset
        if available >= 1, input[offset] != ASCII.cr { throw .badRequest("chunk data not followed by CRLF (RFC 9112 §7.1)") }
        if available >= 2, input[offset + 1] != ASCII.lf { throw .badRequest("chunk data not followed by CRLF (RFC 9112 §7.1)") }
        guard available >= 2 else { return nil }
        state = .chunkLine(scanned: 0)
        return offset + 2
    }
}
