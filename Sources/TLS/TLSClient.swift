internal import COpenSSL
#if canImport(Glibc)
import Glibc
#endif

/// Client-side TLS settings for talking to a CA, a cluster store or any HTTPS API from a
/// background thread. Owner of one SSL_CTX, configured in init and then only read (SSL_new is
/// thread-safe).
public final class TLSClientContext: @unchecked Sendable {
    let ctx: OpaquePointer

    /// `trustRootsPEMFile`: the only roots trusted (e.g. a test CA's); nil uses the system store.
    /// `clientCertificatePEMFile` + `clientKeyPEMFile`: a certificate (chain) and its key presented
    /// when the server asks for one (mutual TLS, e.g. etcd's `--client-cert-auth`); both or neither.
    public init(trustRootsPEMFile: String? = nil, clientCertificatePEMFile: String? = nil,
                clientKeyPEMFile: String? = nil) throws(TLSError) {
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
        switch (clientCertificatePEMFile, clientKeyPEMFile) {
        case (nil, nil):
            break
        case let (certificate?, key?):
            guard SSL_CTX_use_certificate_chain_file(ctx, certificate) == 1 else {
                throw TLSError("SSL_CTX_use_certificate_chain_file(\(certificate))")
            }
            guard SSL_CTX_use_PrivateKey_file(ctx, key, SSL_FILETYPE_PEM) == 1 else {
                throw TLSError("SSL_CTX_use_PrivateKey_file(\(key))")
            }
            guard SSL_CTX_check_private_key(ctx) == 1 else {
                throw TLSError("SSL_CTX_check_private_key(\(key))", reason: "the key does not match the certificate in \(certificate)")
            }
        default:
            throw TLSError("client certificate", reason: "give both a client certificate and its key, or neither")
        }
    }

    deinit { SSL_CTX_free(ctx) }
}

/// One blocking TLS session over a connected socket. Owns the SSL, not the socket: the caller
/// connected it (with its timeouts) and closes it after `close()`. Meant for background work off
/// the event loops: every call blocks up to the socket's SO_RCVTIMEO/SO_SNDTIMEO. Not for
/// concurrent use: one owner thread at a time.
public final class TLSClientConnection {
    private let ssl: OpaquePointer
    private var closed = false

    /// Handshakes on `socket` and verifies the peer's chain and that it is valid for `host` (a DNS
    /// name, checked against the SANs, sent as SNI; or an IP literal, checked against IP SANs).
    public init(socket fd: Int32, host: String, context: TLSClientContext) throws(TLSError) {
        // A write to a socket the peer reset would otherwise kill the process with SIGPIPE.
        signal(SIGPIPE, SIG_IGN)
        ERR_clear_error()
        guard let ssl = SSL_new(context.ctx) else { throw TLSError("SSL_new") }
        self.ssl = ssl
        SSL_set_fd(ssl, fd)
        expectPeer(named: host, on: ssl)
        let rc = SSL_connect(ssl)
        guard rc == 1 else {
            let verify = SSL_get_verify_result(ssl)
            let error = verify == X509_V_OK ? TLSError("SSL_connect(\(host))", reason: Self.failure(ssl, rc), timedOut: Self.isTimeout(ssl, rc))
                : TLSError("SSL_connect(\(host))", reason: "certificate verification: " + String(cString: X509_verify_cert_error_string(Int(verify))))
            ERR_clear_error()
            // Fully initialised, so deinit runs and frees the SSL; no shutdown after a failure.
            closed = true
            throw error
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
            guard rc == 1 else { throw TLSError("SSL_write_ex", reason: Self.failure(ssl, rc), timedOut: Self.isTimeout(ssl, rc)) }
            offset += n
        }
    }

    /// Reads what is available (blocking for the first byte); 0 means the peer closed.
    public func read(into buffer: UnsafeMutableRawBufferPointer) throws(TLSError) -> Int {
        var n = 0
        errno = 0
        let rc = SSL_read_ex(ssl, buffer.baseAddress, buffer.count, &n)
        if rc == 1 { return n }
        let err = SSL_get_error(ssl, rc)
        if err == SSL_ERROR_ZERO_RETURN { return 0 }
        // An EOF without close_notify: the reader's framing decides whether that truncated anything.
        if err == SSL_ERROR_SYSCALL && ERR_peek_error() == 0 && errno == 0 { return 0 }
        throw TLSError("SSL_read_ex", reason: Self.failure(ssl, rc), timedOut: Self.isTimeout(ssl, rc))
    }

    /// Sends close_notify (best effort); the socket stays open for its owner to close.
    public func close() {
        guard !closed else { return }
        closed = true
        _ = SSL_shutdown(ssl)
        ERR_clear_error()
    }

    /// SO_RCVTIMEO/SO_SNDTIMEO expiring on a blocking socket surfaces as WANT_READ/WANT_WRITE.
    private static func isTimeout(_ ssl: OpaquePointer, _ rc: Int32) -> Bool {
        let err = SSL_get_error(ssl, rc)
        return err == SSL_ERROR_WANT_READ || err == SSL_ERROR_WANT_WRITE
            || (err == SSL_ERROR_SYSCALL && (errno == EAGAIN || errno == EWOULDBLOCK))
    }

    private static func failure(_ ssl: OpaquePointer, _ rc: Int32) -> String {
        if isTimeout(ssl, rc) { ERR_clear_error(); return "timed out" }
        let err = SSL_get_error(ssl, rc)
        let queue = TLSError.drainQueue()
        if err == SSL_ERROR_SYSCALL { return queue.isEmpty ? (errno == 0 ? "connection closed" : String(cString: strerror(errno))) : queue }
        return queue.isEmpty ? "SSL error \(err)" : queue
    }

    public static func isIPLiteral(_ host: String) -> Bool {
        var v4 = in_addr(), v6 = in6_addr()
        return inet_pton(AF_INET, host, &v4) == 1 || inet_pton(AF_INET6, host, &v6) == 1
    }
}
