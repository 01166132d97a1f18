import HTTP1
import Testing
@testable import HTTP2

/// Records what a session reported; optionally answers requests (server side).
final class Recorder: HTTP2SessionDelegate {
    var heads: [Int32: [HTTPField]] = [:]
    var oversized: Set<Int32> = []
    var bodies: [Int32: [UInt8]] = [:]
    var ended: [Int32: [HTTPField]] = [:]
    var closed: [Int32: UInt32] = [:]
    var drained: [Int32] = []
    var consume = true

    var pseudo: [Int32: HTTP2PseudoHeaders] = [:]

    func http2(_ s: HTTP2Session, head pseudo: HTTP2PseudoHeaders, fields: consuming HTTPFields, stream: Int32,
               endStream: Bool, oversized: Bool) {
        #expect(!fields.contains { $0.name.hasPrefix(":") }, "pseudo-header fields come apart")
        self.pseudo[stream] = pseudo
        heads[stream] = pseudo.fields + Array(fields)
        if oversized { self.oversized.insert(stream) }
        if endStream { ended[stream] = [] }
    }
    func http2(_ s: HTTP2Session, data: UnsafeRawBufferPointer, stream: Int32) {
        bodies[stream, default: []] += data
        if consume { s.consume(stream: stream, count: data.count) }
    }
    func http2(_ s: HTTP2Session, end stream: Int32, trailers: [HTTPField]) { ended[stream] = trailers }
    func http2(_ s: HTTP2Session, closed stream: Int32, error: UInt32) { closed[stream] = error }
    func http2(_ s: HTTP2Session, drained stream: Int32) { drained.append(stream) }
}

/// A client and a server session joined in memory.
final class Pair {
    let client: HTTP2Session
    let server: HTTP2Session
    let c = Recorder()
    let s = Recorder()
    var now: UInt64 = 1_000_000_000
    var serverFailed = false

    /// Both sessions take nghttp2's memory from one recycling allocator, as a loop's connections do.
    init(_ settings: HTTP2Settings = HTTP2Settings(), buffers: HTTP2BufferLender? = nil,
         allocator: HTTP2Allocator = HTTP2Allocator()) throws {
        client = try HTTP2Session(role: .client, delegate: nil, allocator: allocator)
        server = try HTTP2Session(role: .server, settings: settings, delegate: nil, buffers: buffers, allocator: allocator)
        client.delegate = c
        server.delegate = s
    }

    /// Moves bytes both ways until neither side has anything to say.
    func run(rounds: Int = 50) {
        for _ in 0..<rounds {
            var toServer: [UInt8] = [], toClient: [UInt8] = []
            client.produce(into: &toServer, limit: 1 << 20)
            client.notifyDrained()
            if !toServer.isEmpty && !serverFailed {
                serverFailed = !toServer.withUnsafeBytes { server.receive($0, now: now) }
            }
            server.produce(into: &toClient, limit: 1 << 20)
            server.notifyDrained()
            if !toClient.isEmpty { _ = toClient.withUnsafeBytes { client.receive($0, now: now) } }
            if toServer.isEmpty && toClient.isEmpty { return }
        }
    }

    /// Raw bytes to the server (for frames a well-behaved client would never send).
    func sendRaw(_ bytes: [UInt8]) {
        if !serverFailed { serverFailed = !bytes.withUnsafeBytes { server.receive($0, now: now) } }
    }
}

let get = [HTTPField(name: ":method", value: "GET"), HTTPField(name: ":scheme", value: "https"),
           HTTPField(name: ":authority", value: "a.test"), HTTPField(name: ":path", value: "/x")]

func frame(_ type: UInt8, _ flags: UInt8, _ stream: UInt32, _ payload: [UInt8]) -> [UInt8] {
    let n = payload.count
    return [UInt8(n >> 16 & 0xff), UInt8(n >> 8 & 0xff), UInt8(n & 0xff), type, flags,
            UInt8(stream >> 24 & 0x7f), UInt8(stream >> 16 & 0xff), UInt8(stream >> 8 & 0xff), UInt8(stream & 0xff)] + payload
}

let preface = Array("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".utf8) + frame(4, 0, 0, [])

@Suite struct HTTP2SessionTests {
    @Test func requestAndResponseWithTrailers() throws {
        let p = try Pair()
        let id = p.client.submitRequest(fields: get + [HTTPField(name: "X-Mixed", value: "v")], hasBody: false)
        p.run()
        let head = try #require(p.s.heads[id])
        #expect(head.first { $0.name == ":path" }?.value == "/x")
        let pseudo = try #require(p.s.pseudo[id])
        #expect([pseudo.method, pseudo.scheme, pseudo.authority, pseudo.path] == ["GET", "https", "a.test", "/x"])
        #expect(pseudo.connectProtocol == nil && pseudo.status == nil)
        #expect(head.contains(HTTPField(name: "x-mixed", value: "v")), "names go out lower-case")
        #expect(p.s.ended[id] == [])

        #expect(p.server.submitResponse(stream: id, status: 200, fields: [HTTPField(name: "Content-Type", value: "text/plain")], hasBody: true))
        Array("hello".utf8).withUnsafeBytes { p.server.sendData(stream: id, $0) }
        p.server.finishData(stream: id, trailers: [HTTPField(name: "X-Sum", value: "42")])
        p.run()
        #expect(p.c.heads[id]?.first { $0.name == ":status" }?.value == "200")
        #expect(p.c.pseudo[id]?.status == "200")
        #expect(p.c.bodies[id] == Array("hello".utf8))
        #expect(p.c.ended[id] == [HTTPField(name: "x-sum", value: "42")])
        #expect(p.s.closed[id] == 0)
        #expect(p.server.openStreams == 0)
    }

    /// Lends its spare buffers and counts what comes and goes.
    final class Lender: HTTP2BufferLender {
        var spare: [[UInt8]] = []
        var lent = 0, returned = 0, returnedNonEmpty = 0
        func lendOutput() -> [UInt8]? {
            guard let buffer = spare.popLast() else { return nil }
            lent += 1
            return buffer
        }
        func giveBack(_ buffer: inout [UInt8]) {
            returned += 1
            if !buffer.isEmpty { returnedNonEmpty += 1 }
            spare.append(buffer)
            buffer = []
        }
    }

    @Test func aStreamsBodyBufferServesTheNextStream() throws {
        let lender = Lender()
        let p = try Pair(buffers: lender)
        for round in 0..<2 {
            let id = p.client.submitRequest(fields: get, hasBody: false)
            p.run()
            #expect(p.server.submitResponse(stream: id, status: 200, fields: [], hasBody: true))
            let body = [UInt8](repeating: UInt8(round), count: 1500)
            body.withUnsafeBytes { p.server.sendData(stream: id, $0) }
            p.server.finishData(stream: id)
            p.run()
            #expect(p.c.bodies[id] == body)
        }
        #expect(lender.returned == 2, "each stream's buffer comes back once its body is sent")
        #expect(lender.lent == 1, "the second stream writes into the first one's buffer")
        #expect(lender.spare.count == 1 && lender.spare[0].capacity >= 1500)

        // A stream reset with bytes still buffered gives its buffer back emptied.
        let id = p.client.submitRequest(fields: get, hasBody: false)
        p.run()
        #expect(p.server.submitResponse(stream: id, status: 200, fields: [], hasBody: true))
        Array("unsent".utf8).withUnsafeBytes { p.server.sendData(stream: id, $0) }
        p.server.reset(stream: id, error: .cancel)
        p.run()
        #expect(lender.returned == 3 && lender.returnedNonEmpty == 0)
        #expect(p.c.bodies[id] == nil)
    }

    @Test func responseDataWaitsForTheClientsWindow() throws {
        let p = try Pair()
        let id = p.client.submitRequest(fields: get, hasBody: false)
        p.run()
        p.c.consume = false
        p.server.submitResponse(stream: id, status: 200, fields: [], hasBody: true)
        let mb = [UInt8](repeating: 7, count: 1 << 20)
        mb.withUnsafeBytes { p.server.sendData(stream: id, $0) }
        p.run()
        // The client's stream window (its SETTINGS_INITIAL_WINDOW_SIZE, 256 KiB) is all it gets, as
        // it acknowledges nothing it does not consume: the rest waits in the server's stream
        // buffer, where the front can see and limit it.
        let received = p.c.bodies[id]?.count ?? 0
        #expect(received > 0)
        #expect(received <= HTTP2Settings().initialWindowSize, "the client took more than its window")
        #expect(p.server.buffered(stream: id) == (1 << 20) - received)
    }

    @Test func responseBytesHeldForAClosedWindowAreSeen() throws {
        let p = try Pair()
        // SETTINGS_INITIAL_WINDOW_SIZE 0: the client takes no response bytes until it says so.
        p.sendRaw(Array("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".utf8) + frame(4, 0, 0, [0, 4, 0, 0, 0, 0]))
        p.sendRaw(frame(1, 0x5, 1, [0x82, 0x87, 0x84, 0x41, 0x06] + Array("a.test".utf8)))
        #expect(!p.server.holdsUnsentData)
        p.server.submitResponse(stream: 1, status: 200, fields: [], hasBody: true)
        [UInt8](repeating: 7, count: 1000).withUnsafeBytes { p.server.sendData(stream: 1, $0) }
        var out: [UInt8] = []
        p.server.produce(into: &out, limit: 1 << 20)
        #expect(!out.isEmpty)   // SETTINGS, its ACK and the response head went out; no DATA could
        #expect(p.server.buffered(stream: 1) == 1000)
        #expect(p.server.holdsUnsentData)
    }

    @Test func aHeaderBlockIsSeenUntilItEnds() throws {
        let p = try Pair()
        p.sendRaw(preface)
        #expect(!p.server.receivingHeaders)
        // HEADERS without END_HEADERS, then its CONTINUATION with END_HEADERS.
        p.sendRaw(frame(1, 0x1, 1, [0x82, 0x87]))
        #expect(p.server.receivingHeaders)
        p.sendRaw(frame(9, 0x4, 1, [0x84, 0x41, 0x06] + Array("a.test".utf8)))
        #expect(!p.server.receivingHeaders)
        #expect(p.s.heads[1] != nil)
    }

    @Test func drainedIsReportedWhenTheBufferFallsBelowHalfTheMark() throws {
        var settings = HTTP2Settings()
        settings.streamHighWater = 64 * 1024
        let p = try Pair(settings)
        let id = p.client.submitRequest(fields: get, hasBody: false)
        p.run()
        p.server.submitResponse(stream: id, status: 200, fields: [], hasBody: true)
        [UInt8](repeating: 1, count: 40_000).withUnsafeBytes { p.server.sendData(stream: id, $0) }
        p.run()
        #expect(p.s.drained == [id])
    }

    @Test func requestBodyWindowOpensOnlyWhenConsumed() throws {
        var settings = HTTP2Settings()
        settings.initialWindowSize = 16 * 1024
        let p = try Pair(settings)
        p.s.consume = false
        p.run()   // settings exchange, so the client knows the small window
        let id = p.client.submitRequest(fields: [HTTPField(name: ":method", value: "POST")] + get.dropFirst(), hasBody: true)
        [UInt8](repeating: 3, count: 100_000).withUnsafeBytes { p.client.sendData(stream: id, $0) }
        p.client.finishData(stream: id)
        p.run()
        #expect(p.s.bodies[id]?.count == 16 * 1024)
        var acknowledged = 0
        for _ in 0..<100 {
            let got = p.s.bodies[id]!.count
            if got == 100_000 { break }
            p.server.consume(stream: id, count: got - acknowledged)
            acknowledged = got
            p.run()
        }
        #expect(p.s.bodies[id]?.count == 100_000)
        #expect(p.s.ended[id] == [])
    }

    @Test func oversizedHeaderListIsFlagged() throws {
        var settings = HTTP2Settings()
        settings.maxHeaderListSize = 2048
        let p = try Pair(settings)
        let id = p.client.submitRequest(fields: get + [HTTPField(name: "x-big", value: String(repeating: "v", count: 3000))], hasBody: false)
        p.run()
        #expect(p.s.oversized.contains(id))
        #expect(!p.serverFailed)
    }

    @Test func rapidResetClosesTheSession() throws {
        var settings = HTTP2Settings()
        settings.rapidResetThreshold = 50
        let p = try Pair(settings)
        for _ in 0..<200 {
            let id = p.client.submitRequest(fields: get, hasBody: false)
            p.run()   // HEADERS out first: a stream nghttp2 never sent is cancelled silently
            p.client.reset(stream: id, error: .cancel)
            p.run()
            if p.serverFailed { break }
        }
        #expect(p.serverFailed)
        #expect(p.server.abuse?.hasPrefix("rapid reset") == true)
        #expect(!p.server.wantsRead)
    }

    @Test func completedStreamsDoNotCountAsRapidReset() throws {
        var settings = HTTP2Settings()
        settings.rapidResetThreshold = 5
        let p = try Pair(settings)
        for i in 0..<20 {
            let id = p.client.submitRequest(fields: get, hasBody: false)
            p.run()
            p.server.submitResponse(stream: id, status: 204, fields: [], hasBody: false)
            p.run()
            if i % 4 == 0 {
                let cancelled = p.client.submitRequest(fields: get, hasBody: false)
                p.run()
                p.client.reset(stream: cancelled, error: .cancel)
                p.run()
            }
        }
        #expect(!p.serverFailed)
    }

    @Test func pingFloodClosesTheSession() throws {
        let p = try Pair()
        p.sendRaw(preface)
        for i in 0..<1000 where !p.serverFailed {
            p.sendRaw(frame(6, 0, 0, [UInt8](repeating: UInt8(i & 0xff), count: 8)))
        }
        #expect(p.serverFailed)
        #expect(p.server.abuse?.contains("PING") == true)
    }

    @Test func pingsSpreadOverTimeAreFine() throws {
        let p = try Pair()
        p.sendRaw(preface)
        for i in 0..<1000 {
            p.now += 50_000_000   // 20 per second
            p.sendRaw(frame(6, 0, 0, [UInt8](repeating: UInt8(i & 0xff), count: 8)))
            var sink: [UInt8] = []
            p.server.produce(into: &sink, limit: 1 << 20)
        }
        #expect(!p.serverFailed)
    }

    @Test func continuationFloodClosesTheSession() throws {
        let p = try Pair()
        p.sendRaw(preface)
        // HEADERS without END_HEADERS: one literal field (never indexed), then many CONTINUATIONs.
        let field: [UInt8] = [0x10, 0x03] + Array("x-a".utf8) + [0x01] + Array("b".utf8)
        p.sendRaw(frame(1, 0, 1, [0x82, 0x87, 0x84] + field))
        for _ in 0..<100 where !p.serverFailed { p.sendRaw(frame(9, 0, 1, field)) }
        #expect(p.serverFailed)
    }

    @Test func hpackBombClosesTheSession() throws {
        var settings = HTTP2Settings()
        settings.maxHeaderListSize = 4096
        let p = try Pair(settings)
        p.sendRaw(preface)
        // A 3,000-byte value enters the dynamic table (literal with incremental indexing), then
        // each one-byte reference to it (index 62) decodes into 3,000 bytes again.
        let value = [UInt8](repeating: 0x61, count: 3000)
        var block: [UInt8] = [0x82, 0x87, 0x84, 0x40, 0x01, 0x62] + hpackLength(value.count, prefix: 7) + value
        block += [UInt8](repeating: 0x80 | 62, count: 5000)
        p.sendRaw(frame(1, 0x5, 1, Array(block.prefix(16384))))
        #expect(p.serverFailed)
        #expect(p.server.abuse?.contains("HPACK bomb") == true)
    }
}

/// RFC 7541 §5.1 integer with an N-bit prefix (H bit 0).
func hpackLength(_ n: Int, prefix: Int) -> [UInt8] {
    let max = (1 << prefix) - 1
    if n < max { return [UInt8(n)] }
    var out: [UInt8] = [UInt8(max)]
    var rest = n - max
    while rest >= 128 { out.append(UInt8(rest % 128 + 128)); rest /= 128 }
    out.append(UInt8(rest))
    return out
}
