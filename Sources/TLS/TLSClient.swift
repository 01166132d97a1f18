import COpenSSL
#if canImport(Glibc)
import Glibc
#endif

/// Client-side TLS settings for talking to a CA (or any HTTPS API) from a background thread.
/// Owner of one SSL_CTX, configured in init and then only read (SSL_new is thread-safe).
public final class TLSClientContext: @unchecked Sendable {
    let ctx: OpaquePointer

    /// `trustRootsPEMFile`: the only roots trusted (e.g. a test CA's); nil uses the system store.
    public init(trustRootsPEMFile: String? = nil) throws(TLSError) {
        ERR_clear_error()
        guard let ctx = SSL_CTX_new(TLS_client_method()) else { throw TLSError("SSL_CTX_new(client)") }
        self.ctx = ctx
        _ = COpenSSL_SSL_CTX_set_min_proto_version(ctx, COpenSSL_TLS1_2_VERSION())
        SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, nil)
        if let trustRootsPEMFile {
            guard SSL_CTX_load_verify_locations(ctx, trustRootsPEMFile, nil) == 1 else {
                throw TLSError("SSL_CTX_load_verify_locations(\(trustRootsPEMFile))")
            }
        } else {
            guard SSL_CTX_set_default_verify_paths(ctx) == 1 else { throw TLSError("SSL_CTX_set_default_verify_paths") }
        }
    }

    deinit { SSL_CTX_free(ctx) }
}

/// One blocking TLS connection to host:port (socket + SSL, both owned here). Meant for
/// background work off the event loops: every call blocks up to `timeout` seconds. Not for
/// concurrent use: one owner thread at a time.
public final class TLSClientConnection {
    private let fd: Int32
    private let ssl: OpaquePointer
    private var closed = false

    /// Connects, handshakes and verifies the peer's chain and that it is valid for `host` (a DNS
    /// name, checked against the SANs, sent as SNI; or an IP literal, checked against IP SANs).
    public init(host: String, port: Int, context: TLSClientContext, timeout: Double = 30) throws(TLSError) {
        // A write to a socket the CA reset would otherwise kill the process with SIGPIPE.
        signal(SIGPIPE, SIG_IGN)
        fd = try Self.connect(host: host, port: port, timeout: timeout)
        ERR_clear_error()
        guard let ssl = SSL_new(context.ctx) else { Glibc.close(fd); throw TLSError("SSL_new") }
        self.ssl = ssl
        SSL_set_fd(ssl, fd)
        if Self.isIPLiteral(host) {
            // No SNI for addresses (RFC 6066 §3); verify the IP SAN instead of a DNS name.
            X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), host)
        } else {
            _ = COpenSSL_SSL_set_tlsext_host_name(ssl, host)
            SSL_set1_host(ssl, host)
        }
        guard SSL_connect(ssl) == 1 else {
            let verify = SSL_get_verify_result(ssl)
            let reason = verify == X509_V_OK ? TLSError.drainQueue()
                : "certificate verification: " + String(cString: X509_verify_cert_error_string(Int(verify)))
            SSL_free(ssl)
            Glibc.close(fd)
            throw TLSError("SSL_connect(\(host):\(port))", reason: reason)
        }
    }

    deinit {
        close()
        SSL_free(ssl)
    }

    /// Writes all of `bytes` or throws.
    public func write(_ bytes: [UInt8]) throws(TLSError) {
        var offset = 0
        while offset < bytes.count {
            var n = 0
            let rc = bytes.withUnsafeBytes { SSL_write_ex(ssl, $0.baseAddress! + offset, $0.count - offset, &n) }
            guard rc == 1 else { throw TLSError("SSL_write_ex", reason: failure(rc)) }
            offset += n
        }
    }

    /// Reads what is available (blocking for the first byte); 0 means the peer closed.
    public func read(into buffer: UnsafeMutableRawBufferPointer) throws(TLSError) -> Int {
        var n = 0
        let rc = SSL_read_ex(ssl, buffer.baseAddress, buffer.count, &n)
        if rc == 1 { return n }
        let err = SSL_get_error(ssl, rc)
        if err == SSL_ERROR_ZERO_RETURN { return 0 }
        // An EOF without close_notify: the reader's framing decides whether that truncated anything.
        if err == SSL_ERROR_SYSCALL && ERR_peek_error() == 0 && errno == 0 { return 0 }
        throw TLSError("SSL_read_ex", reason: failure(rc))
    }

    public func close() {
        guard !closed else { return }
        closed = true
        _ = SSL_shutdown(ssl)
        ERR_clear_error()
        Glibc.close(fd)
    }

    private func failure(_ rc: Int32) -> String {
        let err = SSL_get_error(ssl, rc)
        if err == SSL_ERROR_WANT_READ || err == SSL_ERROR_WANT_WRITE { return "timed out" }
        let queue = TLSError.drainQueue()
        if err == SSL_ERROR_SYSCALL { return queue.isEmpty ? String(cString: strerror(errno)) : queue }
        return queue.isEmpty ? "SSL error \(err)" : queue
    }

    static func isIPLiteral(_ host: String) -> Bool {
        var v4 = in_addr(), v6 = in6_addr()
        return inet_pton(AF_INET, host, &v4) == 1 || inet_pton(AF_INET6, host, &v6) == 1
    }

    /// A blocking TCP connection with send/receive timeouts (SO_SNDTIMEO also bounds connect on Linux).
    private static func connect(host: String, port: Int, timeout: Double) throws(TLSError) -> Int32 {
        var hints = addrinfo()
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        hints.ai_family = AF_UNSPEC
        var list: UnsafeMutablePointer<addrinfo>?
        let rc = getaddrinfo(host, String(port), &hints, &list)
        guard rc == 0, let list else {
            throw TLSError("getaddrinfo(\(host))", reason: String(cString: gai_strerror(rc)))
        }
        defer { freeaddrinfo(list) }
        var lastError = "no address"
        var next: UnsafeMutablePointer<addrinfo>? = list
        while let ai = next {
            next = ai.pointee.ai_next
            let fd = socket(ai.pointee.ai_family, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
            if fd < 0 { lastError = String(cString: strerror(errno)); continue }
            var tv = timeval(tv_sec: Int(timeout), tv_usec: Int((timeout - timeout.rounded(.down)) * 1_000_000))
            setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
            setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
            var one: Int32 = 1
            setsockopt(fd, Int32(IPPROTO_TCP), TCP_NODELAY, &one, socklen_t(MemoryLayout<Int32>.size))
            if Glibc.connect(fd, ai.pointee.ai_addr, ai.pointee.ai_addrlen) == 0 { return fd }
            lastError = String(cString: strerror(errno))
            Glibc.close(fd)
        }
        throw TLSError("connect(\(host):\(port))", reason: lastError)
    }
}
