/// What speaks HTTP on a client connection once its transport is up: `HTTP1Front` or
/// `HTTP2Front`, chosen by `ClientTransport`'s ALPN dispatch. The transport moves the bytes and
/// owns the socket, the timer and the end; the front owns the protocol and the requests.
protocol ProtocolFront: AnyObject {
    /// The transport is ready: what the protocol says first (HTTP/2's SETTINGS) goes out now.
    func start()
    /// Bytes from the client. Returns how many were consumed: the transport keeps the rest and
    /// offers it again with the next bytes, or when the front resumes reading.
    func received(_ bytes: UnsafeRawBufferPointer) -> Int
    /// Everything queued for the client was written.
    func transportDrained()
    /// The client half-closed. True: a response is still being finished (the front closes after);
    /// false: close now.
    func peerClosed() -> Bool
    /// The connection's timer ran out.
    func timedOut()
    /// Graceful shutdown. True: nothing is running, close now.
    func drain() -> Bool
    /// The connection is gone: abort what still runs, log what was served.
    func transportClosed()
    /// Nothing in progress: once written out, the transport gives its output buffer back to the loop.
    var isIdle: Bool { get }
}
