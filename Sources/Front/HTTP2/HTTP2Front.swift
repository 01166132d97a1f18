import Foundation
import Config
import EventLoop
import HTTP1
import HTTP2
import Logs
import Metrics
import Proxy

/// HTTP/2 on a client connection (ALPN h2): feeds what the transport reads to nghttp2 through
/// `HTTP2Session`, hands the frames it produces back to the transport, and turns each stream into
/// a ProxyExchange through `HTTP2Stream`.
final class HTTP2Front: ProtocolFront, HTTP2SessionDelegate, BatchEndHandler {
    /// Frames produced ahead of the socket: past this the session keeps them (and its streams'
    /// data) until the client reads, so a slow client pauses the upstreams instead of growing this.
    static let outputLimit = 64 * 1024

    /// The connection that owns this front and tells it when it closes. Checked in debug builds
    /// (every test); unchecked in release, where a checked load costs two atomics per use.
    #if DEBUG
    unowned let transport: ClientTransport
    #else
    unowned(unsafe) let transport: ClientTransport
    #endif
    let session: HTTP2Session
    unowned(unsafe) let worker: Worker   // lives as long as its loop
    private var streams = StreamTable<HTTP2Stream>()
    private var pumping = false
    private var again = false
    private var pumpScheduled = false
    private(set) var closed = false
    /// The header timeout runs from a header block's first bytes (as HTTP/1's from a head's): a
    /// client trickling one in must not stretch it.
    private var headClock = false

    init(transport: ClientTransport) throws {
        self.transport = transport
        worker = transport.worker
        let s = transport.worker.config.settings
        var h = HTTP2Settings()
        h.maxConcurrentStreams = s.http2.maxConcurrentStreams
        h.initialWindowSize = s.http2.initialWindowSize
        h.connectionWindowSize = s.http2.connectionWindowSize
        h.maxHeaderListSize = s.limits.maxHeaderBytes
        h.maxHeaders = s.limits.maxHeaders
        h.rapidResetThreshold = s.http2.rapidResetLimit
        h.controlFramesPerSecond = s.http2.controlFramesPerSecond
        h.controlFrameBurst = 2 * s.http2.controlFramesPerSecond
        session = try HTTP2Session(role: .server, settings: h, delegate: nil, buffers: transport.worker,
                                   allocator: transport.worker.http2Allocator)
        session.delegate = self
    }

    /// Our SETTINGS go out right after the handshake, before the client's preface arrives.
    func start() { pump() }

    func received(_ bytes: UnsafeRawBufferPointer) -> Int {
        guard !closed else { return bytes.count }
        if !session.receive(bytes, now: worker.loop.now), let why = session.abuse {
            Log.warning("h2 connection from \(transport.peer) closed: \(why)")
        }
        let timeouts = worker.timeouts
        if session.receivingHeaders {
            if !headClock { worker.loop.arm(transport.timer, seconds: timeouts.header) }
            headClock = true
        } else {
            headClock = false
            // With streams open, progress is judged when the timer fires (`timedOut`): frames
            // from a client that does not read must not keep its responses' buffers forever.
            if streams.isEmpty { worker.loop.arm(transport.timer, seconds: timeouts.idle) }
        }
        pump()
        return bytes.count
    }

    /// Moves frames from the session to the transport while the transport's queue is short,
    /// then lets drained streams read their upstream again. Re-entrant calls (a flush that
    /// drained, a stream that got data) only ask for one more round.
    func pump() {
        if pumping { again = true; return }
        pumping = true
        defer { pumping = false }
        repeat {
            again = false
            let room = Self.outputLimit - transport.outputBacklog
            if room > 0 {
                // Frames go straight into the transport's output and out in one write.
                let queued = transport.output.count
                session.produce(into: &transport.output, limit: queued + room)
                if transport.output.count > queued { transport.flush() }
            }
            if closed { return }
            session.notifyDrained()
        } while again && !closed
        // After GOAWAY (ours or the client's) with no stream left, nghttp2 wants nothing more.
        if !session.wantsRead && !session.wantsWrite { transport.closeAfterFlush() }
    }

    /// The transport wrote everything it had.
    func transportDrained() { pump() }

    /// A pump once the loop has handled its whole batch of events: the frames of every stream whose
    /// origin answered in the meantime go out in one TLS write instead of one each.
    func pumpSoon() {
        guard !pumpScheduled, !closed else { return }
        pumpScheduled = true
        worker.loop.atBatchEnd(self)
    }

    func batchEnded() {
        pumpScheduled = false
        if !closed { pump() }
    }

    /// Its frames come in batches from every stream: the connection keeps its output buffer.
    var isIdle: Bool { false }

    /// Graceful shutdown: GOAWAY; open streams finish, new ones are refused (the connection closes
    /// once nghttp2 wants nothing more).
    func drain() -> Bool {
        session.goAway()
        pump()
        return false
    }

    /// A client that half-closes has nothing more to say, and no response can be read after it.
    func peerClosed() -> Bool { false }

    /// The timer fired: nothing was written for the idle timeout (writes re-arm it), or a header
    /// block took longer than the header timeout. Waiting on upstreams is theirs to time out; an
    /// idle connection, a late header block, or a client that stopped reading (its socket, or
    /// its flow-control windows with responses waiting on them) is closed.
    func timedOut() {
        if !headClock && !streams.isEmpty && transport.outputBacklog == 0 && !session.holdsUnsentData {
            worker.loop.arm(transport.timer, seconds: worker.timeouts.idle)
            return
        }
        transport.close()
    }

    /// The connection closed under us: every stream still running is logged and its upstream dropped.
    func transportClosed() {
        closed = true
        for stream in streams.values { stream.finish(error: HTTP2Error.cancel.rawValue) }
        streams = StreamTable()
    }

    // MARK: HTTP2SessionDelegate

    func http2(_ session: HTTP2Session, head pseudo: HTTP2PseudoHeaders, fields: consuming HTTPFields, stream: Int32,
               endStream: Bool, oversized: Bool) {
        let s = HTTP2Stream(id: stream, front: self, startedAt: worker.loop.now)
        streams[stream] = s
        s.begin(pseudo, fields, endStream: endStream, oversized: oversized)
    }

    func http2(_ session: HTTP2Session, data: UnsafeRawBufferPointer, stream: Int32) {
        guard let s = streams[stream] else {
            session.consume(stream: stream, count: data.count)
            return
        }
        s.body(data)
    }

    func http2(_ session: HTTP2Session, end stream: Int32, trailers: [HTTPField]) {
        streams[stream]?.bodyEnded(trailers)
    }

    func http2(_ session: HTTP2Session, closed stream: Int32, error: UInt32) {
        streams.removeValue(forKey: stream)?.finish(error: error)
    }

    func http2(_ session: HTTP2Session, drained stream: Int32) {
        streams[stream]?.exchange?.downstreamDrained()
    }

    func log(_ entry: AccessLog.Entry) {
        worker.accessLog.write(entry)
    }
}


/// Sessions borrow their streams' response body buffers from the loop's spare output buffers.
extension Worker: HTTP2BufferLender {}
