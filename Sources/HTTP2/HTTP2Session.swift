internal import CNghttp2
import HTTP1

/// Events of one HTTP/2 session. Called synchronously from `receive` / `produce`; a delegate may
/// submit frames from here (nghttp2 allows it) but must not free the session.
public protocol HTTP2SessionDelegate: AnyObject {
    /// A request head (server) or response head (client): its pseudo-header fields apart, the
    /// others in `fields`. `oversized`: the block broke the size or count limit, and both are empty.
    func http2(_ session: HTTP2Session, head pseudo: HTTP2PseudoHeaders, fields: consuming HTTPFields, stream: Int32,
               endStream: Bool, oversized: Bool)
    func http2(_ session: HTTP2Session, data: UnsafeRawBufferPointer, stream: Int32)
    /// The peer ended its side of the stream after a body (with trailers, possibly empty).
    func http2(_ session: HTTP2Session, end stream: Int32, trailers: [HTTPField])
    func http2(_ session: HTTP2Session, closed stream: Int32, error: UInt32)
    /// The bytes buffered for `stream` fell below `HTTP2Settings.streamHighWater / 2`.
    func http2(_ session: HTTP2Session, drained stream: Int32)
}

/// Where a session's response body buffers come from and go back to: the loop's spare buffers, so a
/// stream's buffer (a 1 KiB body makes one past malloc's per-thread cache) costs no malloc per stream.
public protocol HTTP2BufferLender: AnyObject {
    /// An empty buffer with some capacity, if one is spare.
    func lendOutput() -> [UInt8]?
    /// Takes an empty `buffer` back (or lets it go).
    func giveBack(_ buffer: inout [UInt8])
}

/// Owner of one `nghttp2_session`. Sans-I/O: bytes in through `receive`, bytes out through
/// `produce`, events to the delegate. nghttp2 does the framing, HPACK and flow control; this
/// class adds the per-stream response buffers and the abuse protections.
public final class HTTP2Session {
    public enum Role: Sendable { case server, client }

    let session: OpaquePointer
    public let role: Role
    public let settings: HTTP2Settings
    /// The owner of this session (`unowned`: it outlives the session, and a weak reference would put
    /// its reference counts on the runtime's slow path). Checked in debug builds (every test);
    /// unchecked in release, where a checked load costs two atomics per call.
    #if DEBUG
    public unowned var delegate: HTTP2SessionDelegate?
    #else
    public unowned(unsafe) var delegate: HTTP2SessionDelegate?
    #endif
    /// The loop's spare buffers (nil: each stream allocates its own).
    private let buffers: HTTP2BufferLender?
    /// Where nghttp2's memory comes from (nil: malloc); held so it outlives `nghttp2_session_del`.
    private let allocator: HTTP2Allocator?
    /// Why a protection closed the session, for the error log.
    public private(set) var abuse: String?

    /// The header block being decoded and its stream (0: none). One slot is enough: a header block
    /// arrives in one piece, HEADERS then CONTINUATIONs with no other frame between (RFC 9113 §4.3),
    /// and a block cut short is replaced by the next one or dropped with its stream.
    private var decoding = Inbound()
    private var decodingStream: Int32 = 0
    private var outbound = StreamTable<Outbound>()
    private var drainedStreams: [Int32] = []
    private var now: UInt64 = 0
    private var controlTokens: Double
    private var refilledAt: UInt64 = 0
    private var earlyResets = 0
    private var completedStreams = 0

    struct Inbound {
        var pseudo = HTTP2PseudoHeaders()
        var fields = HTTPFields()
        var count = 0
        var size = 0
        var oversized = false
        var trailers = false

        /// Adds one decoded field within the limits; false: an HPACK bomb (a small block decoding
        /// into far more than 4x the advertised list size), whose decoding is not worth going on with.
        mutating func add(name: UnsafeBufferPointer<UInt8>, value: UnsafeBufferPointer<UInt8>, settings: HTTP2Settings) -> Bool {
            size += name.count + value.count + 32
            if size > settings.maxHeaderListSize * 4 { return false }
            if oversized { return true }
            if size > settings.maxHeaderListSize || count >= settings.maxHeaders {
                oversized = true
                fields = []
                pseudo = HTTP2PseudoHeaders()
                return true
            }
            count += 1
            // nghttp2 has checked the name (lower-case token, or a pseudo-header in its place and
            // known to it) and the value (no CR, LF or NUL; RFC 9113 §8.2.1, §8.3).
            if name.first == UInt8(ascii: ":") {
                pseudo.set(name: UnsafeRawBufferPointer(name), value: UnsafeRawBufferPointer(value))
            } else {
                fields.append(name: UnsafeRawBufferPointer(name), value: UnsafeRawBufferPointer(value))
            }
            return true
        }
    }

    /// A stream's response body waiting for its flow-control window. Held in the table itself (no
    /// object per stream) and changed in place through `update`: a copy read out, changed and
    /// stored back would copy the buffer (two references to it at the change).
    struct Outbound {
        var buffer: [UInt8] = []
        var offset = 0
        var ended = false
        var trailers: [HTTPField] = []
        var deferred = false
        var count: Int { buffer.count - offset }

        /// Whether nghttp2 was told to wait for data (it must be told to resume); cleared.
        mutating func takeDeferred() -> Bool {
            defer { deferred = false }
            return deferred
        }
    }

    /// Where frames go while `produce` runs: the caller's buffer, moved in for the call, so DATA
    /// frames are written straight from the stream buffers into it (NGHTTP2_DATA_FLAG_NO_COPY).
    private var sink: [UInt8] = []
    private var sinkLimit = 0

    public init(role: Role, settings: HTTP2Settings = HTTP2Settings(), delegate: HTTP2SessionDelegate?,
                buffers: HTTP2BufferLender? = nil, allocator: HTTP2Allocator? = nil) throws(HTTP2SessionError) {
        self.role = role
        self.settings = settings
        self.delegate = delegate
        self.buffers = buffers
        self.allocator = allocator
        controlTokens = Double(settings.controlFrameBurst)

        var callbacks: OpaquePointer?
        guard nghttp2_session_callbacks_new(&callbacks) == 0, let callbacks else { throw HTTP2SessionError("nghttp2_session_callbacks_new") }
        defer { nghttp2_session_callbacks_del(callbacks) }
        nghttp2_session_callbacks_set_on_begin_headers_callback(callbacks, onBeginHeaders)
        nghttp2_session_callbacks_set_on_header_callback(callbacks, onHeader)
        nghttp2_session_callbacks_set_on_frame_recv_callback(callbacks, onFrameRecv)
        nghttp2_session_callbacks_set_on_data_chunk_recv_callback(callbacks, onDataChunk)
        nghttp2_session_callbacks_set_on_stream_close_callback(callbacks, onStreamClose)
        nghttp2_session_callbacks_set_send_data_callback(callbacks, onSendData)

        var option: OpaquePointer?
        guard nghttp2_option_new(&option) == 0, let option else { throw HTTP2SessionError("nghttp2_option_new") }
        defer { nghttp2_option_del(option) }
        // Received DATA is acknowledged only once consumed (`consume`): on the server, a request
        // body once the upstream took it; a client (the tests') likewise.
        nghttp2_option_set_no_auto_window_update(option, 1)
        nghttp2_option_set_max_continuations(option, settings.maxContinuations)
        nghttp2_option_set_max_outbound_ack(option, 1000)
        nghttp2_option_set_max_settings(option, 32)
        // Closed streams are not kept for RFC 7540's priority tree (RFC 9113 deprecates it): a
        // dependency on one falls back to the default priority, and no list of closed streams is
        // kept up to date per stream.
        nghttp2_option_set_no_closed_streams(option, 1)

        var made: OpaquePointer?
        // `self` is not complete yet: user_data is set right after, before any callback can run.
        let rc: Int32
        if var mem = allocator?.mem {   // nghttp2 copies the callbacks
            rc = role == .server ? nghttp2_session_server_new3(&made, callbacks, nil, option, &mem)
                                 : nghttp2_session_client_new3(&made, callbacks, nil, option, &mem)
        } else {
            rc = role == .server ? nghttp2_session_server_new2(&made, callbacks, nil, option)
                                 : nghttp2_session_client_new2(&made, callbacks, nil, option)
        }
        guard rc == 0, let made else { throw HTTP2SessionError("nghttp2_session_new", code: rc) }
        session = made
        nghttp2_session_set_user_data(session, Unmanaged.passUnretained(self).toOpaque())

        var iv = [
            nghttp2_settings_entry(settings_id: Int32(NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS.rawValue), value: UInt32(settings.maxConcurrentStreams)),
            nghttp2_settings_entry(settings_id: Int32(NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE.rawValue), value: UInt32(settings.initialWindowSize)),
            nghttp2_settings_entry(settings_id: Int32(NGHTTP2_SETTINGS_MAX_HEADER_LIST_SIZE.rawValue), value: UInt32(settings.maxHeaderListSize)),
        ]
        if role == .client {
            iv.removeFirst()
        } else {
            // RFC 8441 §3: extended CONNECT (`:protocol`), so websockets ride on HTTP/2 streams.
            iv.append(nghttp2_settings_entry(settings_id: Int32(NGHTTP2_SETTINGS_ENABLE_CONNECT_PROTOCOL.rawValue), value: 1))
        }
        _ = nghttp2_submit_settings(session, UInt8(NGHTTP2_FLAG_NONE.rawValue), &iv, iv.count)
        if settings.connectionWindowSize > 65_535 {
            _ = nghttp2_session_set_local_window_size(session, UInt8(NGHTTP2_FLAG_NONE.rawValue), 0, Int32(settings.connectionWindowSize))
        }
    }

    deinit { nghttp2_session_del(session) }

    // MARK: Bytes in and out

    /// Feeds received bytes. false: the session failed (protocol error, flood, protection) and
    /// only its last frames (GOAWAY) remain to be produced before the connection closes.
    public func receive(_ bytes: UnsafeRawBufferPointer, now: UInt64) -> Bool {
        self.now = now
        guard let base = bytes.baseAddress?.assumingMemoryBound(to: UInt8.self), !bytes.isEmpty else { return true }
        let rc = nghttp2_session_mem_recv(session, base, bytes.count)
        if rc < 0 {
            if abuse == nil { abuse = String(cString: nghttp2_strerror(Int32(rc))) }
            // nghttp2 queued a GOAWAY for protocol errors; make sure there is one for the others.
            _ = nghttp2_session_terminate_session(session, abuse?.hasPrefix("header list") == true
                                                  ? HTTP2Error.enhanceYourCalm.rawValue : HTTP2Error.protocolError.rawValue)
            return false
        }
        return abuse == nil
    }

    /// Appends frames ready to go until `out` holds at least `limit` bytes: control and HEADERS
    /// frames as nghttp2 serialised them, DATA frames copied once, from the stream's buffer.
    public func produce(into out: inout [UInt8], limit: Int) {
        swap(&out, &sink)
        defer { swap(&out, &sink) }
        sinkLimit = limit
        while sink.count < limit {
            var p: UnsafePointer<UInt8>?
            let n = nghttp2_session_mem_send(session, &p)
            guard n > 0, let p else { break }
            sink.append(contentsOf: UnsafeBufferPointer(start: p, count: n))
        }
    }

    /// Tells the delegate which streams drained while producing. Separate from `produce`, so the
    /// delegate may feed those streams again while no buffer of the caller is borrowed.
    public func notifyDrained() {
        while !drainedStreams.isEmpty {
            let ids = drainedStreams
            drainedStreams = []
            for id in ids { delegate?.http2(self, drained: id) }
        }
    }

    /// nghttp2 still expects frames from the peer (false after GOAWAY once no stream is open).
    public var wantsRead: Bool { nghttp2_session_want_read(session) != 0 }
    /// Frames are waiting to be produced.
    public var wantsWrite: Bool { nghttp2_session_want_write(session) != 0 }
    /// Streams with a response or request still being delivered.
    public var openStreams: Int { (decodingStream != 0 ? 1 : 0) + outbound.count }
    /// A header block has begun and not ended: its HEADERS or CONTINUATION bytes are still coming.
    public var receivingHeaders: Bool { decodingStream != 0 }
    /// Response bytes wait in some stream's buffer: after `produce`, for the peer's window.
    public var holdsUnsentData: Bool { outbound.values.contains { $0.count > 0 } }

    // MARK: Submitting

    /// A response head, with a content-length field after `fields` when given; with `hasBody` the
    /// body follows through `sendData` / `finishData`.
    @discardableResult
    public func submitResponse(stream: Int32, status: Int, fields: HTTPFields, contentLength: Int64? = nil, hasBody: Bool) -> Bool {
        if !hasBody {
            return Self.withNV(status: status, fields, contentLength: contentLength) { nghttp2_submit_response(session, stream, $0, $1, nil) } == 0
        }
        var o = Outbound()
        if let spare = buffers?.lendOutput() { o.buffer = spare }
        outbound[stream] = o
        var provider = nghttp2_data_provider(source: nghttp2_data_source(ptr: nil), read_callback: onReadBody)
        let rc = Self.withNV(status: status, fields, contentLength: contentLength) { nghttp2_submit_response(session, stream, $0, $1, &provider) }
        if rc != 0 { dropOutbound(stream) }
        return rc == 0
    }

    /// Forgets a stream's outbound side; its buffer goes back to the loop's spares, emptied.
    private func dropOutbound(_ stream: Int32) {
        guard var o = outbound.removeValue(forKey: stream), let buffers else { return }
        o.buffer.removeAll(keepingCapacity: true)
        buffers.giveBack(&o.buffer)
    }

    /// An interim (1xx) response head, e.g. 103 Early Hints (RFC 8297): a HEADERS frame that
    /// neither ends the stream nor counts as the final response (RFC 9113 §8.1).
    @discardableResult
    public func submitInterim(stream: Int32, status: Int, fields: HTTPFields) -> Bool {
        return Self.withNV(status: status, fields) { nghttp2_submit_headers(session, UInt8(NGHTTP2_FLAG_NONE.rawValue), stream, nil, $0, $1, nil) } >= 0
    }

    /// A request (client role, for tests and tools): returns the stream id, or -1.
    public func submitRequest(fields: [HTTPField], hasBody: Bool) -> Int32 {
        if !hasBody { return Self.withNV(fields) { nghttp2_submit_request(session, nil, $0, $1, nil, nil) } }
        var provider = nghttp2_data_provider(source: nghttp2_data_source(ptr: nil), read_callback: onReadBody)
        let id = Self.withNV(fields) { nghttp2_submit_request(session, nil, $0, $1, &provider, nil) }
        if id > 0 { outbound[id] = Outbound() }
        return id
    }

    /// Body bytes for a stream whose head was submitted with a body.
    public func sendData(stream: Int32, _ bytes: UnsafeRawBufferPointer) {
        guard !bytes.isEmpty else { return }
        let wasDeferred = outbound.update(stream) { o in
            o.buffer.append(contentsOf: bytes)
            return o.takeDeferred()
        }
        if wasDeferred == true { _ = nghttp2_session_resume_data(session, stream) }
    }

    /// The body is complete; non-empty trailers go in a final HEADERS frame.
    public func finishData(stream: Int32, trailers: [HTTPField] = []) {
        let wasDeferred = outbound.update(stream) { o in
            o.ended = true
            o.trailers = trailers
            return o.takeDeferred()
        }
        if wasDeferred == true { _ = nghttp2_session_resume_data(session, stream) }
    }

    /// Bytes of `stream` waiting for the peer's flow-control window (or our produce call).
    public func buffered(stream: Int32) -> Int { outbound.update(stream) { $0.count } ?? 0 }

    /// The application took `count` request body bytes: let the peer send that many more on the stream.
    public func consume(stream: Int32, count: Int) {
        guard count > 0 else { return }
        _ = nghttp2_session_consume_stream(session, stream, count)
    }

    public func reset(stream: Int32, error: HTTP2Error) {
        dropOutbound(stream)
        _ = nghttp2_submit_rst_stream(session, UInt8(NGHTTP2_FLAG_NONE.rawValue), stream, error.rawValue)
    }

    /// Graceful shutdown: GOAWAY naming the last stream we took; those streams may finish.
    public func goAway() {
        _ = nghttp2_submit_goaway(session, UInt8(NGHTTP2_FLAG_NONE.rawValue),
                                  nghttp2_session_get_last_proc_stream_id(session), HTTP2Error.noError.rawValue, nil, 0)
    }

    /// Immediate close: GOAWAY with `error`, no further frames are processed.
    public func terminate(_ error: HTTP2Error) {
        _ = nghttp2_session_terminate_session(session, error.rawValue)
    }


    /// nghttp2 copies names and values when a frame is submitted, so they only live for the call:
    /// they are laid out in scratch memory on the stack (heap only for unusually large heads),
    /// with `:status` first when given. Names go out lower-case (RFC 9113 §8.2.1).
    static func withNV<R>(status: Int? = nil, _ fields: HTTPFields, contentLength: Int64? = nil,
                          _ body: (UnsafePointer<nghttp2_nv>, Int) -> R) -> R {
        let statusName: StaticString = ":status"
        let lengthName: StaticString = "content-length"
        let size = (status == nil ? 0 : statusName.utf8CodeUnitCount + 3) + fields.bytes.count
            + (contentLength == nil ? 0 : lengthName.utf8CodeUnitCount + 20)
        let count = fields.count + (status == nil ? 0 : 1) + (contentLength == nil ? 0 : 1)
        return withUnsafeTemporaryAllocation(of: UInt8.self, capacity: max(size, 1)) { bytes in
            withUnsafeTemporaryAllocation(of: nghttp2_nv.self, capacity: max(count, 1)) { nva in
                let base = bytes.baseAddress!
                var at = 0
                var i = 0
                // No local function or closure touches `at` and `i`: captured from one, they would be boxed on the heap.
                @inline(__always) func nv(_ nameAt: Int, _ valueAt: Int, _ end: Int) -> nghttp2_nv {
                    nghttp2_nv(name: base + nameAt, value: base + valueAt, namelen: valueAt - nameAt, valuelen: end - valueAt,
                               flags: UInt8(NGHTTP2_NV_FLAG_NONE.rawValue))
                }
                if let status {
                    precondition((100...999).contains(status), "status code must be three digits (RFC 9110 §15)")
                    UnsafeMutableRawPointer(base).copyMemory(from: statusName.utf8Start, byteCount: statusName.utf8CodeUnitCount)
                    at = statusName.utf8CodeUnitCount
                    base[at] = UInt8(0x30 + status / 100)
                    base[at + 1] = UInt8(0x30 + status / 10 % 10)
                    base[at + 2] = UInt8(0x30 + status % 10)
                    at += 3
                    nva.initializeElement(at: i, to: nv(0, statusName.utf8CodeUnitCount, at))
                    i += 1
                }
                fields.bytes.withUnsafeBytes { buf in
                    var position = 0
                    while position < buf.count {
                        let line = HTTPFields.line(in: buf, at: position)
                        position = line.end + 2
                        let nameAt = at
                        for b in buf[line.name] { base[at] = b >= 0x41 && b <= 0x5A ? b | 0x20 : b; at += 1 }
                        let valueAt = at
                        for b in buf[line.value] { base[at] = b; at += 1 }
                        nva.initializeElement(at: i, to: nv(nameAt, valueAt, at))
                        i += 1
                    }
                }
                if let contentLength {
                    precondition(contentLength >= 0)
                    let nameAt = at
                    UnsafeMutableRawPointer(base + at).copyMemory(from: lengthName.utf8Start, byteCount: lengthName.utf8CodeUnitCount)
                    at += lengthName.utf8CodeUnitCount
                    let valueAt = at
                    var digits = 1, rest = contentLength
                    while rest >= 10 { digits += 1; rest /= 10 }
                    rest = contentLength
                    for k in (0..<digits).reversed() { base[at + k] = UInt8(0x30 + rest % 10); rest /= 10 }
                    at += digits
                    nva.initializeElement(at: i, to: nv(nameAt, valueAt, at))
                    i += 1
                }
                defer { nva.baseAddress!.deinitialize(count: i) }
                return body(UnsafePointer(nva.baseAddress!), count)
            }
        }
    }

    static func withNV<R>(status: Int? = nil, _ fields: [HTTPField], _ body: (UnsafePointer<nghttp2_nv>, Int) -> R) -> R {
        withNV(status: status, HTTPFields(fields), body)
    }

    // MARK: Callback bodies (the C callbacks below find `self` through user_data)

    fileprivate func beginHeaders(_ stream: Int32, category: UInt32) {
        decoding = Inbound()
        decoding.trailers = category == NGHTTP2_HCAT_HEADERS.rawValue
        decoding.fields.reserveCapacity(bytes: 512)   // one allocation for a usual request's fields
        decodingStream = stream
    }

    fileprivate func header(_ stream: Int32, name: UnsafeBufferPointer<UInt8>, value: UnsafeBufferPointer<UInt8>) -> Int32 {
        guard stream == decodingStream else { return 0 }
        if decoding.add(name: name, value: value, settings: settings) { return 0 }
        abuse = "header list decoded past 4x max_header_list_size (HPACK bomb)"
        return NGHTTP2_ERR_CALLBACK_FAILURE.rawValue
    }

    fileprivate func frameReceived(_ frame: UnsafePointer<nghttp2_frame>) -> Int32 {
        let hd = frame.pointee.hd
        let stream = hd.stream_id
        let endStream = hd.flags & UInt8(NGHTTP2_FLAG_END_STREAM.rawValue) != 0
        let ack = hd.flags & UInt8(NGHTTP2_FLAG_ACK.rawValue) != 0
        switch UInt32(hd.type) {
        case NGHTTP2_HEADERS.rawValue:
            guard stream == decodingStream else { return 0 }
            // Moved out of the slot, so the receiver holds the only reference and may change the
            // fields in place (a slot keeping them would make the first change copy them).
            var entry = Inbound()
            swap(&entry, &decoding)
            decodingStream = 0
            let fields = entry.fields
            entry.fields = HTTPFields()
            if entry.trailers {
                if endStream { delegate?.http2(self, end: stream, trailers: Array(fields)) }
            } else if frame.pointee.headers.cat == NGHTTP2_HCAT_HEADERS && !endStream && role == .client {
                // Interim (1xx) responses are not delivered.
            } else {
                delegate?.http2(self, head: entry.pseudo, fields: fields, stream: stream, endStream: endStream, oversized: entry.oversized)
            }
        case NGHTTP2_DATA.rawValue:
            if endStream {
                delegate?.http2(self, end: stream, trailers: [])
            } else if hd.length == 0 && !spendControlToken("empty DATA frames") {
                return 0
            }
        case NGHTTP2_RST_STREAM.rawValue:
            guard role == .server else { return 0 }
            earlyResets += 1
            if earlyResets >= settings.rapidResetThreshold && earlyResets > completedStreams {
                abuse = "rapid reset: \(earlyResets) streams reset by the client, \(completedStreams) completed"
                terminate(.enhanceYourCalm)
            }
        case NGHTTP2_PING.rawValue where !ack:
            _ = spendControlToken("PING frames")
        case NGHTTP2_SETTINGS.rawValue where !ack:
            _ = spendControlToken("SETTINGS frames")
        case NGHTTP2_PRIORITY.rawValue:
            _ = spendControlToken("PRIORITY frames")
        default:
            break
        }
        return 0
    }

    /// Token bucket for frames that cost us work but carry no request. false: bucket empty, session terminated.
    private func spendControlToken(_ what: String) -> Bool {
        if refilledAt == 0 { refilledAt = now }
        let elapsed = Double(now &- refilledAt) / 1e9
        refilledAt = now
        controlTokens = min(Double(settings.controlFrameBurst), controlTokens + elapsed * Double(settings.controlFramesPerSecond))
        controlTokens -= 1
        if controlTokens >= 0 { return true }
        if abuse == nil {
            abuse = "flood of \(what) (over \(settings.controlFrameBurst) + \(settings.controlFramesPerSecond)/s)"
            terminate(.enhanceYourCalm)
        }
        return false
    }

    fileprivate func dataChunk(_ stream: Int32, _ bytes: UnsafeRawBufferPointer) {
        // The connection window is reopened at once; the stream's only when the application
        // consumes (so one slow upstream does not stall the others' uploads).
        _ = nghttp2_session_consume_connection(session, bytes.count)
        delegate?.http2(self, data: bytes, stream: stream)
    }

    fileprivate func streamClosed(_ stream: Int32, error: UInt32) {
        if stream == decodingStream { decoding = Inbound(); decodingStream = 0 }
        dropOutbound(stream)
        if error == HTTP2Error.noError.rawValue { completedStreams += 1 }
        delegate?.http2(self, closed: stream, error: error)
    }

    /// How much of the stream's buffer the next DATA frame carries; `sendData` writes it.
    fileprivate func readBody(_ stream: Int32, length: Int, flags: UnsafeMutablePointer<UInt32>) -> Int {
        let next = outbound.update(stream) { o -> (n: Int, last: Bool, trailers: [HTTPField]) in
            let n = min(length, o.count)
            if n == 0 && !o.ended { o.deferred = true }
            return (n, n == o.count && o.ended, o.trailers)
        }
        guard let next else { return Int(NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE.rawValue) }
        if next.n == 0 && !next.last { return Int(NGHTTP2_ERR_DEFERRED.rawValue) }
        flags.pointee |= NGHTTP2_DATA_FLAG_NO_COPY.rawValue
        if next.last {
            flags.pointee |= NGHTTP2_DATA_FLAG_EOF.rawValue
            if !next.trailers.isEmpty {
                flags.pointee |= NGHTTP2_DATA_FLAG_NO_END_STREAM.rawValue
                _ = Self.withNV(next.trailers) { nghttp2_submit_trailer(session, stream, $0, $1) }
            }
        }
        return next.n
    }

    /// Writes one DATA frame (its 9-byte header, then `length` bytes of the stream's buffer; no
    /// padding is ever asked for) into the output `produce` is filling.
    fileprivate func sendData(_ stream: Int32, header: UnsafePointer<UInt8>, length: Int) -> Int32 {
        let counts = outbound.update(stream) { o -> (before: Int, after: Int, ended: Bool)? in
            guard length <= o.count else { return nil }
            let before = o.count
            sink.append(contentsOf: UnsafeBufferPointer(start: header, count: 9))
            if length > 0 {
                o.buffer.withUnsafeBufferPointer { sink.append(contentsOf: $0[o.offset..<(o.offset + length)]) }
                o.offset += length
                if o.offset == o.buffer.count {
                    o.buffer.removeAll(keepingCapacity: o.buffer.capacity <= 256 * 1024)
                    o.offset = 0
                } else if o.offset >= 64 * 1024 {
                    o.buffer.removeFirst(o.offset)
                    o.offset = 0
                }
            }
            return (before, o.count, o.ended)
        }
        guard let counts = counts ?? nil else { return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE.rawValue }
        let before = counts.before
        if counts.after == 0 && counts.ended {
            dropOutbound(stream)   // that was the body's last frame
        } else {
            let mark = settings.streamHighWater / 2
            if before >= mark && counts.after < mark { drainedStreams.append(stream) }
        }
        // Past the caller's limit, mem_send returns instead of writing further frames.
        return sink.count >= sinkLimit ? NGHTTP2_ERR_PAUSE.rawValue : 0
    }
}

public struct HTTP2SessionError: Error, CustomStringConvertible {
    public let call: String
    public let code: Int32
    init(_ call: String, code: Int32 = 0) { self.call = call; self.code = code }
    public var description: String { code == 0 ? "\(call) failed" : "\(call) failed: \(String(cString: nghttp2_strerror(code)))" }
}

// MARK: C callbacks: they capture nothing and reach the session through user_data.

/// Calls `body` with the session behind `user_data` without retaining it: every callback comes from
/// inside a call the session itself made into nghttp2, so the session is alive throughout (a retain
/// and a release per callback were ~20 runtime calls per HTTP/2 request).
@inline(__always)
private func withOwner<R>(_ p: UnsafeMutableRawPointer?, _ body: (HTTP2Session) -> R) -> R {
    Unmanaged<HTTP2Session>.fromOpaque(p!)._withUnsafeGuaranteedRef(body)
}

private let onBeginHeaders: nghttp2_on_begin_headers_callback = { _, frame, user in
    guard let frame, frame.pointee.hd.type == UInt8(NGHTTP2_HEADERS.rawValue) else { return 0 }
    withOwner(user) { $0.beginHeaders(frame.pointee.hd.stream_id, category: frame.pointee.headers.cat.rawValue) }
    return 0
}

private let onHeader: nghttp2_on_header_callback = { _, frame, name, namelen, value, valuelen, _, user in
    guard let frame, let name, let value else { return 0 }
    return withOwner(user) {
        $0.header(frame.pointee.hd.stream_id, name: UnsafeBufferPointer(start: name, count: namelen),
                  value: UnsafeBufferPointer(start: value, count: valuelen))
    }
}

private let onFrameRecv: nghttp2_on_frame_recv_callback = { _, frame, user in
    guard let frame else { return 0 }
    return withOwner(user) { $0.frameReceived(frame) }
}

private let onDataChunk: nghttp2_on_data_chunk_recv_callback = { _, _, stream, data, len, user in
    withOwner(user) { $0.dataChunk(stream, UnsafeRawBufferPointer(start: data, count: len)) }
    return 0
}

private let onStreamClose: nghttp2_on_stream_close_callback = { _, stream, error, user in
    withOwner(user) { $0.streamClosed(stream, error: error) }
    return 0
}

private let onReadBody: nghttp2_data_source_read_callback = { _, stream, _, length, flags, _, user in
    guard let flags else { return Int(NGHTTP2_ERR_CALLBACK_FAILURE.rawValue) }
    return withOwner(user) { $0.readBody(stream, length: length, flags: flags) }
}

private let onSendData: nghttp2_send_data_callback = { _, frame, header, length, _, user in
    guard let frame, let header else { return NGHTTP2_ERR_CALLBACK_FAILURE.rawValue }
    return withOwner(user) { $0.sendData(frame.pointee.hd.stream_id, header: header, length: length) }
}
