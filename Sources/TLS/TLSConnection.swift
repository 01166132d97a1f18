internal import COpenSSL

/// Outcome of one non-blocking TLS operation.
public enum TLSStatus: Equatable {
    case done(Int)       // bytes moved (0 for a completed handshake)
    case wantRead
    case wantWrite
    case closed          // the peer closed (close_notify or EOF)
    case wantCertificate // the selector holds the handshake until a certificate is obtained
    case failed(String)
}

/// The protocol a connection speaks after its handshake, as ALPN chose it.
public enum ApplicationProtocol {
    /// http/1.1, or no ALPN (as nginx: a client that offers none speaks HTTP/1).
    case http1
    case h2
    /// "acme-tls/1": a TLS-ALPN-01 validation, over with its handshake (RFC 8737 §3).
    case acmeTLS
}

/// Owner of one SSL, bound to a non-blocking socket it does not own.
public final class TLSConnection {
    let ssl: OpaquePointer
    /// The context the SSL was made from: its ClientHello callback finds the certificate selector
    /// through the context, so the context lives as long as any of its connections (a drain drops
    /// the listeners, and with them their contexts, while handshakes are still under way).
    private let front: TLSContext?
    /// The socket (front connections; -1 for upstream ones, which OpenSSL's socket BIO serves).
    let fd: Int32
    /// The last read under this connection returned fewer bytes than it asked for: the socket
    /// held nothing more at that moment (set by `SocketBIO`).
    var lastReadWasShort = false
    /// The peer closed (close_notify or EOF) or the connection failed: nothing more is sent on it.
    private var finished = false

    public init(front: TLSContext, fd: Int32) throws(TLSError) {
        ERR_clear_error()
        guard let ssl = SSL_new(front.ctx) else { throw TLSError("SSL_new") }
        self.ssl = ssl
        self.front = front
        self.fd = fd
        guard SocketBIO.attach(self, ssl: ssl) else { throw TLSError("BIO_new") }
        // One read(2) per burst instead of two per record (header, then body).
        SSL_set_read_ahead(ssl, 1)
        SSL_set_accept_state(ssl)
    }

    /// Nothing is left to read for now: the last read came back short and OpenSSL holds no
    /// unread bytes. With edge-triggered polling, bytes arriving later bring a new event, so the
    /// read that would only confirm it with EAGAIN can be skipped (one syscall per request).
    public var drained: Bool { lastReadWasShort && SSL_has_pending(ssl) == 0 }

    /// Takes ownership of `ssl` (client connections: `TLSConnection+Upstream.swift`).
    init(owning ssl: OpaquePointer) { self.ssl = ssl; front = nil; fd = -1 }

    deinit { SSL_free(ssl) }

    public func handshake() -> TLSStatus { status(SSL_do_handshake(ssl), moved: 0) }

    @inline(__always)
    public func read(into buffer: UnsafeMutableRawBufferPointer) -> TLSStatus {
        var n = 0
        let rc = SSL_read_ex(ssl, buffer.baseAddress, buffer.count, &n)
        return rc == 1 ? .done(n) : status(rc, moved: 0)
    }

    @inline(__always)
    public func write(_ bytes: UnsafeRawBufferPointer) -> TLSStatus {
        var n = 0
        let rc = SSL_write_ex(ssl, bytes.baseAddress, bytes.count, &n)
        return rc == 1 ? .done(n) : status(rc, moved: 0)
    }

    /// Sends close_notify without waiting for the peer's, unless the peer has closed already or
    /// the connection failed: a close_notify then reaches a closed socket (its answer is a reset),
    /// and OpenSSL forbids SSL_shutdown after a fatal error.
    public func shutdown() {
        guard !finished else { return }
        _ = SSL_shutdown(ssl)
        ERR_clear_error()
    }

    /// During a held handshake (`wantCertificate`): the name the client asked for.
    public var requestedServerName: String? { readServerName(ssl) }

    /// During a held handshake: held for a TLS-ALPN-01 answer (`waitForChallenge`), not a certificate.
    public var heldForChallenge: Bool { SSL_get_ex_data(ssl, TLSContext.challengeWaitIndex) != nil }

    /// Resumes a held handshake: the ClientHello is looked at again and takes what there is now.
    public func resumeAfterWait() -> TLSStatus {
        SSL_set_ex_data(ssl, TLSContext.waitedIndex, UnsafeMutableRawPointer(bitPattern: 1))
        return handshake()
    }

    public var serverName: String? {
        guard let p = SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name) else { return nil }
        return String(cString: p)
    }

    public var protocolVersion: String { String(cString: SSL_get_version(ssl)) }

    /// The handshake settled on TLS 1.3 (without making a String of the version per handshake).
    public var isTLS13: Bool { SSL_version(ssl) == COpenSSL_TLS1_3_VERSION() }

    /// What ALPN chose, read from the selected bytes (no String per handshake).
    public var applicationProtocol: ApplicationProtocol {
        var p: UnsafePointer<UInt8>?
        var len: UInt32 = 0
        SSL_get0_alpn_selected(ssl, &p, &len)
        guard let p else { return .http1 }
        func selected(_ name: StaticString) -> Bool {
            Int(len) == name.utf8CodeUnitCount && memcmp(p, name.utf8Start, Int(len)) == 0
        }
        if selected("h2") { return .h2 }
        if selected(ALPNChallengeCertificate.alpnProtocol) { return .acmeTLS }
        return .http1
    }

    public var alpn: String? {
        var p: UnsafePointer<UInt8>?
        var len: UInt32 = 0
        SSL_get0_alpn_selected(ssl, &p, &len)
        guard let p, len > 0 else { return nil }
        return String(decoding: UnsafeBufferPointer(start: p, count: Int(len)), as: UTF8.self)
    }

    public var resumed: Bool { SSL_session_reused(ssl) == 1 }

    private func status(_ rc: Int32, moved: Int) -> TLSStatus {
        if rc == 1 { return .done(moved) }
        let err = SSL_get_error(ssl, rc)
        switch err {
        case SSL_ERROR_WANT_READ: return .wantRead
        case SSL_ERROR_WANT_WRITE: return .wantWrite
        case SSL_ERROR_ZERO_RETURN: finished = true; return .closed
        case SSL_ERROR_WANT_CLIENT_HELLO_CB: return .wantCertificate
        case SSL_ERROR_SYSCALL:
            finished = true
            let reason = TLSError.drainQueue()
            return reason.isEmpty ? .closed : .failed(reason)
        default:
            finished = true
            return .failed(TLSError.drainQueue())
        }
    }
}
