import Config
import EventLoop
import HTTP1
import Logs
import ProxyProtocol

/// The client side of an exchange, implemented by each front protocol (HTTP/1 now, HTTP/2 later).
public protocol Downstream: AnyObject {
    func responseHead(_ head: ProxyResponseHead)
    func responseBody(_ bytes: UnsafeRawBufferPointer)
    func responseEnd(trailers: [HTTPField])
    /// Nothing or only part of a response could be produced. With nothing sent yet the front
    /// answers `status` (502/504); otherwise it must cut the client connection.
    func responseFailed(status: Int, reason: String)
    /// After a 101 the exchange is a tunnel: raw bytes both ways until either side closes.
    func tunnelEstablished()
    /// Bytes queued for the client and not yet written.
    var downstreamBacklog: Int { get }
    /// Everything one upstream read produced has been handed over: write it out as one batch.
    func responseFlush()
    /// The upstream took what it was given: the front may read more request body.
    func requestBodyWanted()
}

/// One request forwarded to one upstream group: server choice and retries, request framing
/// toward the origin, response parsing, backpressure both ways, and the upstream timeouts.
public final class ProxyExchange: UpstreamDelegate {
    /// Past this many bytes queued for the client, the origin is not read.
    public static let highWater = 256 * 1024

    private let pool: UpstreamPool
    private let upstreamName: String
    // The request as it is forwarded, whatever protocol the client spoke (kept for a retry).
    private let method: String
    /// Origin-form ("/path?query").
    private let target: String
    /// A Host field to write ahead of `fields`, which have none (HTTP/2's :authority; an HTTP/1.0
    /// request in absolute form without Host).
    private let host: String?
    /// End-to-end fields only: the front has already dropped its own framing and hop-by-hop fields.
    private let fields: HTTPFields
    /// nil: length unknown (streamed chunked to the origin); 0: no body.
    private let bodyLength: Int64?
    /// The client asked to switch protocols (websocket): the exchange may become a tunnel.
    private let upgrade: String?
    /// Set only when the upstream sends PROXY headers.
    private let client: ClientConnection?
    private let timeouts: Timeouts
    /// The front that owns this exchange and aborts it (or sees it finish) before letting go.
    /// `unowned`, not weak: a weak reference would put the front's reference counts on the
    /// runtime's slow path for every retain and release. Checked in debug builds (every test);
    /// unchecked in release, where a checked load costs two atomics per call.
    #if DEBUG
    private unowned var downstream: Downstream?
    #else
    private unowned(unsafe) var downstream: Downstream?
    #endif
    private var connection: UpstreamConnection?
    /// Servers this request went to, so a retry picks another; the first is kept apart so that a
    /// request needing no retry allocates no list.
    private var firstTried: UpstreamServer?
    private var moreTried: [UpstreamServer] = []
    private var tried: [UpstreamServer] { firstTried.map { [$0] + moreTried } ?? [] }
    /// The request body sent so far, kept for a retry until it can no longer be replayed (nil);
    /// the head is written again from the parts kept here, so a request without a body keeps nothing.
    private var replay: [UInt8]? = []
    private var chunkedUpstream: Bool
    private var parser = ResponseParser(endToEnd: true)
    private var responseStarted = false   // bytes came back: no retry from here on
    private var requestDone = false
    private var responseDone = false
    private var tunnel = false
    public private(set) var finished = false
    public private(set) var upstreamAddress: String?
    /// Nanoseconds from start to the response head, for the access log.
    public private(set) var upstreamStart: UInt64 = 0
    public private(set) var upstreamHeadAt: UInt64 = 0

    /// The request's parts are moved in one by one: a request struct built by the caller and stored
    /// whole is copied (a retain per string and list of it) and then destroyed.
    public init(pool: UpstreamPool, upstream: String, method: String, target: String, addingHost host: String?, fields: HTTPFields,
                bodyLength: Int64?, upgrade: String?, client: ClientConnection?, timeouts: Timeouts, downstream: Downstream) {
        chunkedUpstream = bodyLength == nil
        self.pool = pool
        self.upstreamName = upstream
        parser.expect(requestMethod: method)
        self.method = method; self.target = target; self.host = host; self.fields = fields
        self.bodyLength = bodyLength; self.upgrade = upgrade; self.client = client
        self.timeouts = timeouts
        self.downstream = downstream
    }

    /// A connection still attached goes with the exchange: it must never call a delegate that is gone.
    deinit { connection?.close() }

    // MARK: From the front

    public func start() {
        upstreamStart = pool.loop.now
        // Nothing to stream up: the request is complete once the head is sent (an upgrade's
        // bytes only flow once it is a tunnel).
        if bodyLength == 0 && upgrade == nil { requestDone = true }
        connect()
    }

    /// Request body bytes (already de-framed), or raw tunnel bytes.
    public func requestBody(_ bytes: UnsafeRawBufferPointer) {
        guard !finished, !bytes.isEmpty else { return }
        send(bytes, chunked: chunkedUpstream && !tunnel)
    }

    public func requestEnd(trailers: [HTTPField]) {
        guard !finished, !tunnel else { return }
        requestDone = true
        if chunkedUpstream {
            var last: [UInt8] = []
            HTTP1Writer.appendLastChunk(trailers: trailers, into: &last)
            last.withUnsafeBytes { send($0, chunked: false) }
        }
        finishIfDone()
    }

    /// Bytes queued toward the origin: past `highWater` the front stops reading the client.
    public var upstreamBacklog: Int { connection?.backlog ?? 0 }

    /// The client's queue drained: read the origin again.
    public func downstreamDrained() {
        guard let c = connection, !finished else { return }
        if !tunnel { c.armTimer(seconds: timeouts.upstreamResponse) }
        c.resumeReading()
    }

    /// The client went away: drop the upstream connection (its state is unknown).
    public func abort() {
        downstream = nil
        guard !finished else { return }
        finished = true
        connection?.close()
        connection = nil
    }

    /// The front, for the last time: once told the response is over (or failed), it may let go of
    /// this exchange and be gone, so nothing after may reach it.
    private func lastCallToDownstream() -> Downstream? {
        defer { downstream = nil }
        return downstream
    }

    // MARK: Upstream

    /// The request head toward the origin, written in one pass straight into the connection's
    /// output: Host first when the client gave it only as the authority (HTTP/2), the end-to-end
    /// fields, then this hop's framing.
    private func writeHead(into head: inout [UInt8]) {
        HTTP1Writer.appendRequestLine(method: method, target: target,
                                      room: HTTP1Writer.size(of: fields) + 96, into: &head)
        if let host { HTTP1Writer.appendField("Host", host, into: &head) }
        HTTP1Writer.appendFields(fields, into: &head)
        if let upgrade = upgrade {
            HTTP1Writer.appendField("Connection", "upgrade", into: &head)
            HTTP1Writer.appendField("Upgrade", upgrade, into: &head)
        } else if let length = bodyLength {
            if length > 0 || method == "POST" || method == "PUT" || method == "PATCH" {
                HTTP1Writer.appendContentLength(length, into: &head)
            }
        } else {
            HTTP1Writer.appendField("Transfer-Encoding", "chunked", into: &head)
        }
        HTTP1Writer.appendHeadEnd(into: &head)
    }

    /// Body bytes toward the origin, framed as a chunk when `chunked`, written straight into the
    /// connection's output (no array per piece). They stay replayable only while the connection
    /// has not connected yet: after that the origin may have acted on them.
    private func send(_ bytes: UnsafeRawBufferPointer, chunked: Bool) {
        if replay != nil {
            if connection?.connected != false || replay!.count + bytes.count > 256 * 1024 {
                replay = nil
            } else if chunked {
                HTTP1Writer.appendChunk(bytes, into: &replay!)
            } else {
                replay!.append(contentsOf: bytes)
            }
        }
        connection?.send(bytes, chunked: chunked)
    }

    private func connect() {
        guard downstream != nil, !finished else { return }
        while let server = pool.server(for: upstreamName, excluding: tried) {
            if firstTried == nil { firstTried = server } else { moreTried.append(server) }
            do {
                let c = try pool.connection(to: server, delegate: self, owner: client?.owner)
                connection = c
                parser.reuse(c.takeSpareFields())
                upstreamAddress = server.label
                if let version = server.settings.proxyProtocol, c.uses == 1 { c.sendInClear(proxyHeader(version: version)) }
                c.send { writeHead(into: &$0) }
                if let replay, !replay.isEmpty { c.send(replay) }
                if c.connected && requestHasBody { replay = nil }
                c.armTimer(seconds: c.connected ? timeouts.upstreamResponse : timeouts.upstreamConnect)
                return
            } catch {
                server.markFailed()
                Log.error("upstream \(upstreamName) server \(server.spec): \(error)")
            }
        }
        if firstTried == nil {
            // Every server fails its health checks: answer now rather than wait on a connect
            // (the checker logged it when the last one went down).
            fail(status: 503, reason: "every server of upstream \"\(upstreamName)\" is down (failing its health checks)")
            return
        }
        fail(status: 502, reason: "no upstream server of \"\(upstreamName)\" accepted the connection")
    }

    /// The PROXY header opening a new connection to the origin: the client and the address it
    /// connected to, or v1 UNKNOWN / v2 LOCAL when the front could not say.
    private func proxyHeader(version: Int) -> [UInt8] {
        let ends = client.flatMap { c in c.local.map { (source: c.client, destination: $0) } }
        guard let ends, let source = Self.endpoint(ends.source), let destination = Self.endpoint(ends.destination) else {
            return version == 1 ? ProxyHeader.v1Unknown : ProxyHeader.v2Local
        }
        return version == 1 ? ProxyHeader.v1(source: source, destination: destination) : ProxyHeader.v2(source: source, destination: destination)
    }

    private static func endpoint(_ address: SocketAddress) -> ProxyHeader.Endpoint? {
        let bytes = address.rawAddress
        return bytes.isEmpty ? nil : ProxyHeader.Endpoint(address: bytes, port: address.port)
    }

    /// Makes `server`, the last one tried, eligible again.
    private func untry(_ server: UpstreamServer) {
        if !moreTried.isEmpty { moreTried.removeLast() } else if firstTried === server { firstTried = nil }
    }

    /// Retries on another server when nothing the origin may have acted on was sent.
    private func retryOrFail(status: Int, reason: String) {
        connection = nil
        if !responseStarted, let _ = replay, !finished {
            connect()
            return
        }
        fail(status: status, reason: reason)
    }

    private func fail(status: Int, reason: String) {
        guard !finished else { return }
        finished = true
        connection?.close()
        connection = nil
        lastCallToDownstream()?.responseFailed(status: status, reason: reason)
    }

    public func upstreamConnected(_ connection: UpstreamConnection) {
        connection.armTimer(seconds: timeouts.upstreamResponse)
        if requestHasBody { replay = nil }
    }

    public func upstreamDrained(_ connection: UpstreamConnection) {
        downstream?.requestBodyWanted()
    }

    private var requestHasBody: Bool { bodyLength != 0 || upgrade != nil }

    public func upstreamTimedOut(_ connection: UpstreamConnection) {
        if !connection.connected {
            connection.server.markFailed()
            connection.close()
            Log.error("upstream \(upstreamName) server \(connection.address): \(connection.handshaking ? "TLS handshake" : "connect") timed out")
            retryOrFail(status: 504, reason: "the upstream server did not accept the connection in time")
        } else if !tunnel {
            Log.error("upstream \(upstreamName) server \(connection.address): no response within \(timeouts.upstreamResponse)s")
            fail(status: 504, reason: "the upstream server did not respond in time")
        }
    }

    public func upstreamClosed(_ connection: UpstreamConnection, error: SystemError?) {
        self.connection = nil
        if tunnel {
            finished = true
            lastCallToDownstream()?.responseEnd(trailers: [])
            return
        }
        if !connection.connected {
            connection.server.markFailed()
            Log.error("upstream \(upstreamName) server \(connection.address): \(connection.failure ?? error?.description ?? "connect failed")")
            retryOrFail(status: 502, reason: connection.failure == nil ? "the upstream server refused the connection"
                                                                       : "the TLS handshake with the upstream server failed")
            return
        }
        if !responseStarted && connection.uses > 1 && !requestHasBody {
            // A kept-alive connection the origin closed just as we reused it: safe to send again,
            // to the same server too (it did nothing wrong; nginx retries a cached connection so).
            // Each such failure closes one idle connection, so this ends on a new one at the latest.
            untry(connection.server)
            retryOrFail(status: 502, reason: "the upstream server closed the connection")
            return
        }
        do {
            if let event = try parser.finishAtEOF(), case .end(let trailers) = event {
                deliverEnd(trailers: trailers, reusable: false)
                return
            }
        } catch {}
        Log.error("upstream \(upstreamName) server \(connection.address): closed mid-response\((connection.failure ?? error?.description).map { " (\($0))" } ?? "")")
        fail(status: 502, reason: "the upstream server closed the connection before a complete response")
    }

    public func upstream(_ connection: UpstreamConnection, received bytes: UnsafeRawBufferPointer) {
        responseStarted = true
        replay = nil
        if tunnel {
            downstream?.responseBody(bytes)
        } else {
            connection.armTimer(seconds: timeouts.upstreamResponse)
            if carry.isEmpty {
                parseResponse(bytes)
            } else {
                carry.append(contentsOf: bytes)
                let joined = carry
                carry = []
                joined.withUnsafeBytes { parseResponse($0) }
            }
        }
        downstream?.responseFlush()
        if !finished, let d = downstream, d.downstreamBacklog > Self.highWater {
            connection.pauseReading()
            connection.disarmTimer()
        }
    }

    /// Interim (1xx) responses relayed before the final one, at most `maxInterimResponses`: far
    /// more than real exchanges send (100 Continue, 103 Early Hints, 102 Processing now and then).
    private var interimResponses = 0
    static let maxInterimResponses = 32

    /// The bytes of an unfinished head or chunk line, parsed again with the next read.
    private var carry: [UInt8] = []
    private var responseKeepAlive = false

    private func parseResponse(_ input: UnsafeRawBufferPointer) {
        var rest = input
        while !finished {
            let consumed: Int, event: ResponseEvent
            do { (consumed, event) = try parser.parse(rest) } catch {
                Log.error("upstream \(upstreamName) server \(upstreamAddress ?? "?"): invalid response: \(error.reason)")
                fail(status: 502, reason: "the upstream server sent an invalid response")
                return
            }
            let data = rest
            rest = UnsafeRawBufferPointer(rebasing: rest[consumed...])
            // Consumed, so the head's fields have one owner and lose their hop-by-hop lines in place.
            switch consume event {
            case .needMore:
                carry.append(contentsOf: rest)
                return
            case .head(let head):
                deliverHead(head)
                if tunnel {
                    if !rest.isEmpty { downstream?.responseBody(rest) }
                    return
                }
            case .body(let range):
                downstream?.responseBody(UnsafeRawBufferPointer(rebasing: data[range]))
            case .end(let trailers):
                // Bytes after the end: the origin pipelined garbage; never reuse that connection.
                deliverEnd(trailers: trailers, reusable: responseKeepAlive && rest.isEmpty)
                return
            }
        }
    }

    private func deliverHead(_ head: consuming ResponseHead) {
        if head.status == 101 {
            guard upgrade != nil else {
                fail(status: 502, reason: "the upstream server switched protocols unasked")
                return
            }
            tunnel = true
            connection?.disarmTimer()
            var fields = head.fields   // end-to-end only (the parser's)
            fields.append(name: "Connection", value: "upgrade")
            fields.append(name: "Upgrade", value: upgrade!)
            downstream?.responseHead(ProxyResponseHead(status: 101, reason: head.reason, fields: fields,
                                                       bodyLength: nil, hasBody: false))
            downstream?.tunnelEstablished()
            return
        }
        if head.status < 200 {
            // An origin sending interim responses without end would hold the request forever (each
            // read re-arms the response timeout) and feed the client without limit.
            interimResponses += 1
            if interimResponses > Self.maxInterimResponses {
                Log.error("upstream \(upstreamName) server \(upstreamAddress ?? "?"): more than \(Self.maxInterimResponses) interim responses")
                fail(status: 502, reason: "the upstream server sent too many interim responses")
                return
            }
            // 100 Continue is the front's to send; other interim responses (103) pass through.
            if head.status != 100 {
                downstream?.responseHead(ProxyResponseHead(status: head.status, reason: head.reason,
                    fields: head.fields, bodyLength: nil, hasBody: false))
            }
            return
        }
        upstreamHeadAt = pool.loop.now
        responseKeepAlive = head.keepAlive && head.framing != .untilClose
        var length: Int64? = nil
        var hasBody = true
        switch head.framing {
        case .none:
            hasBody = false
            if method == "HEAD", let cl = head.contentLength {
                length = cl
            } else if head.status != 304 && head.status != 204 {
                length = 0
                hasBody = true
            }
        case .length(let n): length = n
        case .chunked, .untilClose: length = nil
        }
        downstream?.responseHead(ProxyResponseHead(status: head.status, reason: head.reason, fields: head.fields,
                                                   bodyLength: length, hasBody: hasBody))
        connection?.spareFields = head.fields   // written out: the buffer serves the connection's next response
    }

    private func deliverEnd(trailers: [HTTPField], reusable: Bool) {
        responseDone = true
        connection?.disarmTimer()
        if !reusable || !requestDone {
            // Not reusable, or the origin answered before the request body ended (e.g. an early
            // 413): the connection's framing state is unknown, so it is closed, not pooled.
            connection?.close()
            connection = nil
            finished = true
        } else {
            finishIfDone()
        }
        lastCallToDownstream()?.responseEnd(trailers: trailers)
    }

    /// Completes the exchange once both directions are done; returns whether it did.
    @discardableResult
    private func finishIfDone() -> Bool {
        guard requestDone && responseDone && !finished else { return finished }
        finished = true
        if let c = connection {
            connection = nil
            c.release()
        }
        return true
    }
}
