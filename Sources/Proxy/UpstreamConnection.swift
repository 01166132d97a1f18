import EventLoop
import TLS
import HTTP1

/// What an upstream connection reports to the exchange using it.
public protocol UpstreamDelegate: AnyObject {
    func upstreamConnected(_ connection: UpstreamConnection)
    func upstream(_ connection: UpstreamConnection, received bytes: UnsafeRawBufferPointer)
    /// The write buffer emptied.
    func upstreamDrained(_ connection: UpstreamConnection)
    /// End of stream, a reset or a failed connect; the connection is already closed.
    func upstreamClosed(_ connection: UpstreamConnection, error: SystemError?)
    func upstreamTimedOut(_ connection: UpstreamConnection)
}

/// One TCP connection to an origin server: a byte transport with a bounded write buffer, read
/// pausing for backpressure, and its own timer. It lives on one loop; the pool keeps it while idle.
/// With TLS (`UpstreamConnection+TLS.swift`) it is `connected` once the handshake is done, and
/// its bytes go through the TLS session instead of read/write.
public final class UpstreamConnection: Timer, Pollable {
    public let fd: Int32
    /// nil: plain TCP, whose path costs only this nil check.
    let tls: TLSConnection?
    let loop: EventLoop
    /// Strong: a connection in flight when a reload replaces its group keeps its server (and the
    /// server's TLS session cache) alive; `close` ends the cycle through the idle list.
    let server: UpstreamServer
    /// The exchange using this connection, which closes or releases it before it goes (`unowned`:
    /// a weak reference would put the exchange's reference counts on the runtime's slow path).
    /// Checked in debug builds (every test); unchecked in release, as the fronts' references.
    #if DEBUG
    public unowned var delegate: UpstreamDelegate?
    #else
    public unowned(unsafe) var delegate: UpstreamDelegate?
    #endif
    public private(set) var connected = false
    public private(set) var closed = false
    /// Requests this connection has carried (1 on the first): a failure on a reused connection may be a keep-alive race.
    public internal(set) var uses = 0
    var output: [UInt8] = []
    var outputSent = 0
    /// Leading bytes of `output` written in the clear before the TLS handshake (a PROXY header).
    var clearPrefix = 0
    /// TLS: the handshake has begun (the TCP connect completed).
    var handshaking = false
    /// Why the connection failed where no system error says (TLS), for the error log.
    public internal(set) var failure: String?
    private var readPaused = false
    private var readable = false
    /// The peer's FIN may already be queued: read to EOF instead of stopping at a short read.
    private var hangup = false
    var idleSince: UInt64 = 0
    /// The client connection this one belongs to when it opened with that client's PROXY header:
    /// only that client's later requests may use it.
    var owner: ObjectIdentifier?
    /// The last response head's field buffer, for the next response's parser (`ResponseParser.reuse`).
    public var spareFields = HTTPFields()

    init(fd: Int32, loop: EventLoop, server: UpstreamServer, tls: TLSConnection?) {
        self.fd = fd; self.loop = loop; self.server = server; self.tls = tls
        super.init()
    }

    public var address: String { server.label }

    public func takeSpareFields() -> HTTPFields {
        var fields = HTTPFields()
        swap(&fields, &spareFields)
        return fields
    }
    /// Bytes queued and not yet accepted by the kernel.
    public var backlog: Int { output.count - outputSent }

    public func send(_ bytes: UnsafeRawBufferPointer, chunked: Bool = false) {
        if chunked { HTTP1Writer.appendChunk(bytes, into: &output) } else { output.append(contentsOf: bytes) }
        if connected { flush() }
    }

    public func send(_ bytes: [UInt8]) { bytes.withUnsafeBytes { send($0) } }

    /// Bytes `write` appends to the output itself (a request head: no buffer of its own).
    public func send(_ write: (inout [UInt8]) -> Void) {
        write(&output)
        if connected { flush() }
    }

    /// Bytes that open a new connection ahead of TLS (a PROXY header); call before any `send`.
    public func sendInClear(_ bytes: [UInt8]) {
        if tls != nil { clearPrefix += bytes.count }
        send(bytes)
    }

    public func pauseReading() { readPaused = true }

    public func resumeReading() {
        guard readPaused else { return }
        readPaused = false
        if readable { readAvailable() }
    }

    /// The connection is its own timer (see `Timer`), cancelled in `close`.
    public func armTimer(seconds: Double) { loop.arm(self, seconds: seconds) }
    public func disarmTimer() { loop.disarm(self) }

    public func ready(_ events: UInt32) {
        if !connected {
            if !handshaking {
                if let error = Socket.pendingError(fd) { fail(error); return }
                guard events & PollEvents.writable != 0 else { return }
            }
            if let tls, !handshake(tls) { return }
            connected = true
            delegate?.upstreamConnected(self)
            if closed { return }
            flush()
        } else if events & (PollEvents.writable | PollEvents.error) != 0 || (tls != nil && backlog > 0) {
            flush()  // TLS: a write may wait on a read (a key update), so any event retries it
        }
        if closed { return }
        // TLS: a read may wait on a write, and records may be buffered, so any event retries it.
        if tls != nil || events & (PollEvents.readable | PollEvents.hangup | PollEvents.error) != 0 {
            readable = true
            if events & (PollEvents.hangup | PollEvents.error) != 0 { hangup = true }
            if !readPaused { readAvailable() }
        }
    }

    private func flush() {
        while outputSent < output.count {
            if let tls {
                guard let n = write(tls) else { return }
                outputSent += n
                continue
            }
            let result: IOResult<Int>
            do { result = try Socket.write(fd, output, from: outputSent) } catch { fail(error); return }
            guard case .done(let n) = result else { return }
            outputSent += n
        }
        if output.capacity > 65536 { output = [] } else { output.removeAll(keepingCapacity: true) }
        outputSent = 0
        delegate?.upstreamDrained(self)
    }

    private func readAvailable() {
        let buffer = server.pool.scratch
        while !closed && !readPaused {
            let result: IOResult<Int>
            if let tls {
                guard let r = read(tls, into: buffer) else { return }
                result = r
            } else {
                do { result = try Socket.read(fd, into: buffer) } catch { fail(error); return }
            }
            switch result {
            case .wouldBlock:
                readable = false
                return
            case .done(0):
                fail(nil)
                return
            case .done(let n):
                guard let delegate else {
                    // Bytes on an idle pooled connection: the origin broke protocol; drop it.
                    fail(nil)
                    return
                }
                delegate.upstream(self, received: UnsafeRawBufferPointer(rebasing: buffer[0..<n]))
                // A short read drained the socket: with edge triggering, new bytes bring a new
                // event, so the EAGAIN read that would confirm it is skipped. Not so with TLS,
                // which hands over one record per read and may hold more.
                if n < buffer.count && !hangup && tls == nil { readable = false; return }
            }
        }
    }

    override public func fire() { timedOut() }

    private func timedOut() {
        if let delegate { delegate.upstreamTimedOut(self) } else { close() }
    }

    func fail(_ error: SystemError?) {
        guard !closed else { return }
        let d = delegate
        close()
        d?.upstreamClosed(self, error: error)
    }

    /// Closes the socket and leaves the pool; safe to call twice.
    public func close() {
        guard !closed else { return }
        closed = true
        loop.cancel(self)
        loop.forget(closing: fd)
        if connected && failure == nil { tls?.shutdown() }
        Socket.close(fd)
        server.forget(self)
        delegate = nil
        // Its read loop may be below this call, through references that do not own it.
        loop.keepUntilBatchEnd(self)
    }

    /// Returns the connection to its server's idle list (or closes it when that list is full).
    public func release() {
        delegate = nil
        readPaused = false
        server.keepIdle(self)
    }
}
