internal import COpenSSL

/// Client-side TLS towards the servers of one upstream: the trusted roots (or the system store),
/// an optional client certificate, TLS 1.2+, ALPN http/1.1. Built once per configuration and
/// shared by every loop.
public final class UpstreamTLSContext: @unchecked Sendable {  // configured in init, then only read (SSL_new is thread-safe)
    let client: TLSClientContext
    let verify: Bool

    /// The same settings for blocking clients off the loops (health checks).
    public var blockingClient: TLSClientContext { client }

    /// `caFile`: the only roots trusted (nil: the system store). `verify` false accepts any
    /// certificate. `clientCertificate` + `clientKey`: shown to servers that ask; both or neither.
    public init(caFile: String?, verify: Bool, clientCertificate: String?, clientKey: String?) throws(TLSError) {
        client = try TLSClientContext(trustRootsPEMFile: caFile, clientCertificatePEMFile: clientCertificate, clientKeyPEMFile: clientKey)
        self.verify = verify
        let ctx = client.ctx
        SSL_CTX_set_options(ctx, COpenSSL_OP_defaults())
        // The write buffer may move between retries; pooled connections keep their read/write
        // buffers (few connections, many exchanges each).
        _ = COpenSSL_SSL_CTX_set_mode(ctx, COpenSSL_MODE_pooled())
        if !verify { SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, nil) }
        // Origins that follow the client's order (nginx's default) get AES-128-GCM, as our front
        // prefers, instead of OpenSSL's default first choice, AES-256-GCM; for TLS 1.2 the rest of
        // OpenSSL's default list follows, so an origin that speaks only older suites still connects.
        let tls12 = "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:ECDHE-ECDSA-CHACHA20-POLY1305:" +
                    "ECDHE-RSA-CHACHA20-POLY1305:DEFAULT"
        guard SSL_CTX_set_ciphersuites(ctx, TLSContext.tls13Suites) == 1, SSL_CTX_set_cipher_list(ctx, tls12) == 1 else {
            throw TLSError("SSL_CTX_set_ciphersuites/cipher_list")
        }
        // The pool speaks HTTP/1.1 only: an origin that would pick h2 must not (RFC 7301 §3.1 wire form).
        let alpn: [UInt8] = [8] + Array("http/1.1".utf8)
        guard SSL_CTX_set_alpn_protos(ctx, alpn, UInt32(alpn.count)) == 0 else { throw TLSError("SSL_CTX_set_alpn_protos") }
        // Sessions go to the new-session callback only (TLS 1.3 tickets arrive after the
        // handshake), which keeps them per server in the loop's own cache: nothing shared, no lock.
        _ = COpenSSL_SSL_CTX_set_session_cache_mode(ctx, COpenSSL_SESS_CACHE_client_external())
        SSL_CTX_sess_set_new_cb(ctx, newSessionCallback)
    }
}

/// The latest session one origin server gave, offered by the next connection to it (as nginx's
/// `proxy_ssl_session_reuse` keeps one per server). One per server per loop: only that loop's
/// connections touch it. Owner of its SSL_SESSION reference.
public final class TLSSessionCache {
    private(set) var session: OpaquePointer?

    public init() {}

    deinit { if let session { SSL_SESSION_free(session) } }

    /// Takes the caller's reference.
    func keep(_ new: OpaquePointer) {
        if let session { SSL_SESSION_free(session) }
        session = new
    }
}

/// The connection's `TLSSessionCache` (not retained: the cache outlives its connections).
private let sessionCacheIndex = COpenSSL_SSL_get_ex_new_index()

/// Returns 1: the cache took OpenSSL's reference to the session.
private let newSessionCallback: @convention(c) (OpaquePointer?, OpaquePointer?) -> Int32 = { ssl, session in
    guard let ssl, let session, let cache = SSL_get_ex_data(ssl, sessionCacheIndex) else { return 0 }
    Unmanaged<TLSSessionCache>.fromOpaque(cache).takeUnretainedValue().keep(session)
    return 1
}

/// SNI and the name the peer's certificate must carry; an IP address is sent no SNI (RFC 6066
/// §3) and is checked against the certificate's IP addresses instead.
func expectPeer(named host: String, on ssl: OpaquePointer) {
    if TLSClientConnection.isIPLiteral(host) {
        X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), host)
    } else {
        _ = COpenSSL_SSL_set_tlsext_host_name(ssl, host)
        SSL_set1_host(ssl, host)
    }
}

extension TLSConnection {
    /// The client side of a handshake with an origin over `fd` (non-blocking; `handshake()` drives
    /// it). `host`: see `expectPeer`. `sessions`: its session is offered and the server's new
    /// ones kept there; it must outlive this connection (nil: no resumption).
    public convenience init(upstream context: UpstreamTLSContext, fd: Int32, host: String, sessions: TLSSessionCache?) throws(TLSError) {
        ERR_clear_error()
        guard let ssl = SSL_new(context.client.ctx) else { throw TLSError("SSL_new") }
        self.init(owning: ssl)
        SSL_set_fd(ssl, fd)
        // One read(2) per burst instead of two per record.
        SSL_set_read_ahead(ssl, 1)
        SSL_set_connect_state(ssl)
        expectPeer(named: host, on: ssl)
        if let sessions {
            SSL_set_ex_data(ssl, sessionCacheIndex, Unmanaged.passUnretained(sessions).toOpaque())
            if let session = sessions.session { SSL_set_session(ssl, session) }
        }
    }

    /// Why the peer's certificate was refused, in OpenSSL's words ("hostname mismatch"); nil when it was not.
    public var verificationFailure: String? {
        let result = SSL_get_verify_result(ssl)
        return result == X509_V_OK ? nil : String(cString: X509_verify_cert_error_string(Int(result)))
    }
}
