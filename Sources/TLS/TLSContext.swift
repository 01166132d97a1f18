internal import COpenSSL

/// Settings shared by every context of one listener.
public struct TLSOptions: Sendable, Equatable {
    public var minVersion13: Bool
    /// TLS 1.3 tickets per handshake; 0 disables tickets for TLS 1.2 too.
    public var sessionTickets: Int
    /// Offer h2 in ALPN (preferred over http/1.1).
    public var http2: Bool
    public init(minVersion13: Bool = false, sessionTickets: Int = 2, http2: Bool = true) {
        self.minVersion13 = minVersion13; self.sessionTickets = sessionTickets; self.http2 = http2
    }
}

/// What the selector decided for one ClientHello.
public enum CertificateSelection {
    case certificate(CertifiedKey)
    /// No certificate: the handshake fails with unrecognized_name.
    case reject
    /// Hold the handshake (OpenSSL's ClientHello retry): a certificate for this name is being
    /// obtained. The connection resumes it later (`TLSStatus.wantCertificate`).
    case wait
    /// Hold the handshake (the same retry) while the TLS-ALPN-01 answer for this name is looked up
    /// elsewhere: a validator offered "acme-tls/1" for a name this node holds no answer for yet.
    /// The connection tells it from `wait` by `TLSConnection.heldForChallenge`.
    case waitForChallenge

    public var certifiedKey: CertifiedKey? {
        if case .certificate(let key) = self { return key }
        return nil
    }
}

/// Chooses the certificate for a handshake. Called on the loop thread inside OpenSSL's
/// ClientHello callback: it must be fast and must not block.
public protocol CertificateSelector: AnyObject, Sendable {
    func select(_ hello: ClientHello) -> CertificateSelection
}

/// Owner of one loop's SSL_CTX for a kind of listener. Its ClientHello callback asks the selector
/// for a certificate and installs it on the connection, so one context serves every certificate
/// (and every certificate can serve any listener). To spare the common case that install, the
/// context carries the ECDSA certificate its handshakes keep choosing (`Carried`): SSL_new copies
/// it into each connection, and a handshake that chooses it again installs nothing.
public final class TLSContext: @unchecked Sendable {  // one loop's: its connections, and so its callbacks, run on that loop only
    let ctx: OpaquePointer
    let selector: CertificateSelector
    /// The listener's client-certificate policy, when it has one.
    public let clientAuth: ClientCertificatePolicy?
    /// What the context carries; touched by its loop only (connections and their callbacks).
    var carried = Carried()

    /// `clientAuth`: client certificates asked of the handshakes it covers (nil: never).
    public init(front selector: CertificateSelector, options: TLSOptions, clientAuth: ClientCertificatePolicy? = nil) throws(TLSError) {
        ctx = try Self.makeContext(options)
        self.selector = selector
        self.clientAuth = clientAuth
        // The callback's argument, unretained: each connection keeps its context alive, and with it
        // the SSL_CTX, for as long as OpenSSL can call back.
        SSL_CTX_set_client_hello_cb(ctx, clientHelloCallback, Unmanaged.passUnretained(self).toOpaque())
        // With a servername callback OpenSSL takes it that the certificates may change per handshake
        // (as the ClientHello callback changes them) and skips checking, while it picks the version,
        // whether those the context holds can do TLS 1.3: two curve look-ups through the key's provider
        // per handshake. It answers as OpenSSL does without one (no acknowledgement).
        _ = COpenSSL_SSL_CTX_set_tlsext_servername_callback(ctx, serverNameCallback)
        _ = COpenSSL_SSL_CTX_set_tlsext_status_cb(ctx, ocspStatusCallback)
        SSL_CTX_set_num_tickets(ctx, options.sessionTickets)
        if options.sessionTickets > 0 {
            COpenSSL_SSL_CTX_set_tlsext_ticket_key_evp_cb(ctx, ticketKeyCallback)
        }
    }

    deinit { SSL_CTX_free(ctx) }

    /// Set (to any non-nil pointer) on a connection whose handshake was asked for a client certificate.
    static let clientAuthAskedIndex = COpenSSL_SSL_get_ex_new_index()
    /// Set (to any non-nil pointer) on a connection that serves a TLS-ALPN-01 answer.
    static let acmeChallengeIndex = COpenSSL_SSL_get_ex_new_index()
    /// Set (to any non-nil pointer) on a connection that has waited for a certificate once.
    static let waitedIndex = COpenSSL_SSL_get_ex_new_index()
    /// Set (to any non-nil pointer) on a connection held for a TLS-ALPN-01 answer (`waitForChallenge`).
    static let challengeWaitIndex = COpenSSL_SSL_get_ex_new_index()

    /// TLS 1.3 suites in the order we prefer them, as a server and as a client (RFC 8446 §B.4).
    static let tls13Suites = "TLS_AES_128_GCM_SHA256:TLS_CHACHA20_POLY1305_SHA256:TLS_AES_256_GCM_SHA384"

    private static func makeContext(_ options: TLSOptions) throws(TLSError) -> OpaquePointer {
        ERR_clear_error()
        guard let ctx = SSL_CTX_new(TLS_server_method()) else { throw TLSError("SSL_CTX_new") }
        var ops = COpenSSL_OP_defaults()
        if options.sessionTickets == 0 { ops |= COpenSSL_OP_NO_TICKET() }
        SSL_CTX_set_options(ctx, ops)
        _ = COpenSSL_SSL_CTX_set_mode(ctx, COpenSSL_MODE_defaults())
        _ = COpenSSL_SSL_CTX_set_min_proto_version(ctx, options.minVersion13 ? COpenSSL_TLS1_3_VERSION() : COpenSSL_TLS1_2_VERSION())
        _ = COpenSSL_SSL_CTX_set_max_proto_version(ctx, COpenSSL_TLS1_3_VERSION())
        // AEAD only; ECDSA first. Our order decides (SSL_OP_CIPHER_SERVER_PREFERENCE), in TLS 1.3
        // too: AES-128-GCM first, as Go and BoringSSL servers choose. OpenSSL's default 1.3 list
        // starts with AES-256-GCM, whose SHA-384 transcript and key schedule cost more.
        let tls12 = "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-ECDSA-AES256-GCM-SHA384:" +
                    "ECDHE-RSA-AES128-GCM-SHA256:ECDHE-RSA-CHACHA20-POLY1305:ECDHE-RSA-AES256-GCM-SHA384"
        guard SSL_CTX_set_cipher_list(ctx, tls12) == 1, SSL_CTX_set_ciphersuites(ctx, TLSContext.tls13Suites) == 1,
              COpenSSL_SSL_CTX_set1_groups_list(ctx, "X25519:P-256") == 1 else {
            SSL_CTX_free(ctx)
            throw TLSError("SSL_CTX_set_cipher_list/ciphersuites/groups")
        }
        // No server-side session cache: resumption is by ticket only, so nothing is shared between loops.
        _ = COpenSSL_SSL_CTX_set_session_cache_mode(ctx, 0)
        // The callback's argument only says whether h2 may be chosen: any non-nil pointer means yes.
        SSL_CTX_set_alpn_select_cb(ctx, alpnCallback, options.http2 ? UnsafeMutableRawPointer(bitPattern: 1) : nil)
        return ctx
    }
}

extension TLSContext {
    /// The certificate the context carries, and the one handshakes chose last instead. It is
    /// carried until another takes its place: one removed from the store stays in memory until
    /// then, never served (`install` serves only what the selector chose).
    struct Carried {
        var key: CertifiedKey?
        /// The certificate chosen last among those the context does not carry, and how many
        /// handshakes in a row chose it: one chosen `streak` times in a row is carried next, so a
        /// mix of many names costs no more than before and one name that dominates is carried.
        var candidate: ObjectIdentifier?
        var run = 0
        static let streak = 4
    }

    /// Gives the connection `chosen` (in the ClientHello callback). SSL_new gave it what the
    /// context carried then, or nothing: when that is `chosen` there is nothing to do (every
    /// certificate is its own parsed X509, which both hold, so the same pointer is the same
    /// certificate); otherwise it goes first, so the connection holds one certificate only
    /// (OpenSSL would otherwise pick among them by key type).
    func install(_ chosen: CertifiedKey, on ssl: OpaquePointer) -> Bool {
        if let held = SSL_get_certificate(ssl) {
            if held == chosen.leaf.x509 { return true }
            SSL_certs_clear(ssl)
        }
        guard chosen.install(on: ssl) else { return false }
        consider(chosen)
        return true
    }

    /// Counts `chosen` towards being carried: ECDSA certificates only (connections of clients
    /// without ECDSA get an RSA one installed), never a TLS-ALPN-01 answer.
    private func consider(_ chosen: CertifiedKey) {
        guard chosen.keyType == .ecdsa, !chosen.acmeChallenge else { return }
        let id = ObjectIdentifier(chosen)
        if carried.candidate == id { carried.run += 1 } else { carried.candidate = id; carried.run = 1 }
        guard carried.run >= Carried.streak else { return }
        carried.candidate = nil
        // On failure the context may hold what it held or nothing; `install` looks at what each
        // connection holds, so either is safe.
        if SSL_CTX_use_cert_and_key(ctx, chosen.leaf.x509, chosen.key.pkey, chosen.intermediates, 1) == 1 {
            carried.key = chosen
        } else {
            ERR_clear_error()
            carried.key = nil
        }
    }
}

// MARK: Callbacks (C: they capture nothing and find their Swift owner through their argument or ex_data)

private let extServerName: UInt32 = 0       // RFC 6066 §3
private let extSignatureAlgorithms: UInt32 = 13  // RFC 8446 §4.2.3
private let extALPN: UInt32 = 16            // RFC 7301 §3.1
private let ecdsaP256SHA256: UInt16 = 0x0403

private let clientHelloCallback: @convention(c) (OpaquePointer?, UnsafeMutablePointer<Int32>?, UnsafeMutableRawPointer?) -> Int32 = { ssl, alert, context in
    guard let ssl, let context else { return COpenSSL_CLIENT_HELLO_ERROR() }
    let front = Unmanaged<TLSContext>.fromOpaque(context).takeUnretainedValue()
    let hello = ClientHello(serverName: readServerName(ssl), offersECDSA: offersECDSA(ssl), offersACMETLS: offersACMETLS(ssl),
                            mayWait: SSL_get_ex_data(ssl, TLSContext.waitedIndex) == nil)
    let chosen: CertifiedKey
    switch front.selector.select(hello) {
    case .certificate(let key): chosen = key
    case .wait: return COpenSSL_CLIENT_HELLO_RETRY()
    case .waitForChallenge:
        SSL_set_ex_data(ssl, TLSContext.challengeWaitIndex, UnsafeMutableRawPointer(bitPattern: 1))
        return COpenSSL_CLIENT_HELLO_RETRY()
    case .reject:
        alert?.pointee = COpenSSL_AD_UNRECOGNIZED_NAME()
        return COpenSSL_CLIENT_HELLO_ERROR()
    }
    guard front.install(chosen, on: ssl) else {
        ERR_clear_error()
        alert?.pointee = COpenSSL_AD_INTERNAL_ERROR()
        return COpenSSL_CLIENT_HELLO_ERROR()
    }
    if chosen.acmeChallenge {
        SSL_set_ex_data(ssl, TLSContext.acmeChallengeIndex, UnsafeMutableRawPointer(bitPattern: 1))
    } else if let policy = front.clientAuth {
        // Never of a CA validating TLS-ALPN-01: it has no client certificate to give.
        if policy.covers(hello.serverName) {
            policy.request(on: ssl)
            SSL_set_ex_data(ssl, TLSContext.clientAuthAskedIndex, UnsafeMutableRawPointer(bitPattern: 1))
        }
    }
    chosen.staple(on: ssl)
    return COpenSSL_CLIENT_HELLO_SUCCESS()
}

private let serverNameCallback: @convention(c) (OpaquePointer?, UnsafeMutablePointer<Int32>?, UnsafeMutableRawPointer?) -> Int32 = { _, _, _ in
    COpenSSL_TLSEXT_ERR_NOACK()
}

private func extensionBytes(_ ssl: OpaquePointer, _ type: UInt32) -> UnsafeBufferPointer<UInt8>? {
    var data: UnsafePointer<UInt8>?
    var len = 0
    guard SSL_client_hello_get0_ext(ssl, type, &data, &len) == 1, let data else { return nil }
    return UnsafeBufferPointer(start: data, count: len)
}

func readServerName(_ ssl: OpaquePointer) -> String? {
    guard let b = extensionBytes(ssl, extServerName) else { return nil }
    return ClientHelloBytes.serverName(b)
}

func offersECDSA(_ ssl: OpaquePointer) -> Bool {
    guard let b = extensionBytes(ssl, extSignatureAlgorithms), b.count >= 2 else { return false }
    let len = min(Int(b[0]) << 8 | Int(b[1]), b.count - 2)
    var i = 2
    while i + 1 < 2 + len {
        if UInt16(b[i]) << 8 | UInt16(b[i + 1]) == ecdsaP256SHA256 { return true }
        i += 2
    }
    return false
}

func offersACMETLS(_ ssl: OpaquePointer) -> Bool {
    guard let b = extensionBytes(ssl, extALPN) else { return false }
    return ClientHelloBytes.offers(ALPNChallengeCertificate.alpnProtocol, alpn: b)
}

/// Picks h2 when offered and enabled, else http/1.1 (RFC 7301 §3.2: the server's preference wins,
/// so h2 is chosen even when the client lists http/1.1 first). A client that offers only other
/// protocols proceeds without ALPN, as nginx does. OpenSSL copies the selection before `input`
/// goes away. A connection serving a TLS-ALPN-01 answer negotiates "acme-tls/1" only.
private let alpnCallback: @convention(c) (OpaquePointer?, UnsafeMutablePointer<UnsafePointer<UInt8>?>?, UnsafeMutablePointer<UInt8>?, UnsafePointer<UInt8>?, UInt32, UnsafeMutableRawPointer?) -> Int32 = { ssl, out, outlen, input, inlen, h2 in
    guard let ssl, let input, let out, let outlen else { return COpenSSL_TLSEXT_ERR_NOACK() }
    if SSL_get_ex_data(ssl, TLSContext.acmeChallengeIndex) != nil {
        return selectACME(out, outlen, input, Int(inlen))
    }
    let count = Int(inlen)
    if h2 != nil, let at = ClientHelloBytes.findProtocol("h2", in: input, count: count) {
        out.pointee = input + at
        outlen.pointee = 2
        return COpenSSL_TLSEXT_ERR_OK()
    }
    guard let at = ClientHelloBytes.findProtocol("http/1.1", in: input, count: count) else { return COpenSSL_TLSEXT_ERR_NOACK() }
    out.pointee = input + at
    outlen.pointee = 8
    return COpenSSL_TLSEXT_ERR_OK()
}

/// The validator of a TLS-ALPN-01 challenge offers only "acme-tls/1" (RFC 8737 §3): select it, or
/// refuse the handshake (no_application_protocol) when a client got the answer without offering it.
private func selectACME(_ out: UnsafeMutablePointer<UnsafePointer<UInt8>?>, _ outlen: UnsafeMutablePointer<UInt8>,
                        _ input: UnsafePointer<UInt8>, _ count: Int) -> Int32 {
    let acme = ALPNChallengeCertificate.alpnProtocol
    guard let at = ClientHelloBytes.findProtocol(acme, in: input, count: count) else { return COpenSSL_TLSEXT_ERR_ALERT_FATAL() }
    out.pointee = input + at
    outlen.pointee = UInt8(acme.utf8CodeUnitCount)
    return COpenSSL_TLSEXT_ERR_OK()
}
