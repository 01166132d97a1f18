import COpenSSL
import Glibc
import Testing
@testable import Certificates
@testable import TLS

/// Real handshakes (over a socketpair, both ends in this thread) through one front context that
/// installs the selected certificate per connection.
@Suite struct HandshakeTests {
    struct Outcome {
        var ok: Bool
        var serial: String?
        var alpn: String?
        var version: String?
        /// What the server's connection reads of ALPN and the version without Strings (as ClientTransport does).
        var spoken: ApplicationProtocol?
        var tls13: Bool?
        var cipher: String?
        /// Whether the server held the handshake for a TLS-ALPN-01 answer (nil: it did not hold it).
        var heldForChallenge: Bool?
    }

    /// Handshakes a client offering `sni`, `alpn` and the TLS 1.3 `suites` (nil: OpenSSL's default
    /// list) with a server on `front`. When the server holds the handshake for a certificate,
    /// `held` runs, then the handshake resumes. `after` gets both ends of a finished handshake (the
    /// server, the client's SSL and socket) before they are freed.
    static func handshake(_ front: TLSContext, sni: String?, alpn: [String], suites: String? = nil, sigalgs: String? = nil,
                          clientMaxVersion: Int32? = nil, held: (String?) -> Void = { _ in },
                          after: (TLSConnection, OpaquePointer, Int32) -> Void = { _, _, _ in }) throws -> Outcome {
        var fds: [Int32] = [0, 0]
        #expect(socketpair(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0, &fds) == 0)
        defer { close(fds[0]); close(fds[1]) }
        for fd in fds { _ = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK) }
        return handshake(server: try TLSConnection(front: front, fd: fds[0]), clientFD: fds[1], sni: sni, alpn: alpn,
                         suites: suites, sigalgs: sigalgs, clientMaxVersion: clientMaxVersion, held: held, after: after)
    }

    /// The same with a server connection made already, whose peer is `clientFD` (both non-blocking).
    static func handshake(server: TLSConnection, clientFD: Int32, sni: String?, alpn: [String], suites: String? = nil,
                          sigalgs: String? = nil, clientMaxVersion: Int32? = nil, held: (String?) -> Void = { _ in },
                          after: (TLSConnection, OpaquePointer, Int32) -> Void = { _, _, _ in }) -> Outcome {
        let clientCtx = SSL_CTX_new(TLS_client_method())!
        defer { SSL_CTX_free(clientCtx) }
        if let clientMaxVersion { #expect(COpenSSL_SSL_CTX_set_max_proto_version(clientCtx, clientMaxVersion) == 1) }
        if let suites { #expect(SSL_CTX_set_ciphersuites(clientCtx, suites) == 1) }
        if let sigalgs {
            let set = sigalgs.withCString { SSL_CTX_ctrl(clientCtx, SSL_CTRL_SET_SIGALGS_LIST, 0, UnsafeMutableRawPointer(mutating: $0)) }
            #expect(set == 1)
        }
        let client = SSL_new(clientCtx)!
        defer { SSL_free(client) }
        SSL_set_fd(client, clientFD)
        if let sni { _ = COpenSSL_SSL_set_tlsext_host_name(client, sni) }
        if !alpn.isEmpty {
            let wire = alpn.flatMap { [UInt8($0.utf8.count)] + Array($0.utf8) }
            _ = SSL_set_alpn_protos(client, wire, UInt32(wire.count))
        }
        SSL_set_connect_state(client)
        var serverDone = false, clientDone = false
        var heldForChallenge: Bool?
        for _ in 0..<1000 where !(serverDone && clientDone) {
            if !clientDone {
                let rc = SSL_do_handshake(client)
                if rc == 1 { clientDone = true } else if SSL_get_error(client, rc) != SSL_ERROR_WANT_READ { break }
            }
            if !serverDone {
                var status = server.handshake()
                if status == .wantCertificate {
                    heldForChallenge = server.heldForChallenge
                    held(server.requestedServerName)
                    status = server.resumeAfterWait()
                }
                switch status {
                case .done: serverDone = true
                case .wantRead, .wantWrite: break
                case .wantCertificate, .closed, .failed: return Outcome(ok: false)
                }
            }
        }
        ERR_clear_error()
        guard serverDone && clientDone else { return Outcome(ok: false) }
        after(server, client, clientFD)
        let peer = COpenSSL_SSL_get_peer_certificate(client).map { X509Certificate(owning: $0) }
        return Outcome(ok: true, serial: peer?.serialHex, alpn: server.alpn, version: server.protocolVersion,
                       spoken: server.applicationProtocol, tls13: server.isTLS13,
                       cipher: SSL_get_current_cipher(client).map { String(cString: SSL_CIPHER_get_name($0)) },
                       heldForChallenge: heldForChallenge)
    }

    static func cert(_ name: String) throws -> CertificateBundle { try CertificateLoader.selfSigned(names: [name]) }

    @Test func sniPicksTheNamedCertificateAndALPNPrefersH2() throws {
        let a = try Self.cert("a.test"), b = try Self.cert("b.test")
        let store = CertificateStore(Snapshot([a, b], defaultName: nil), strictSNI: true)
        let front = try TLSContext(front: store, options: TLSOptions(sessionTickets: 0))
        let toB = try Self.handshake(front, sni: "b.test", alpn: ["http/1.1", "h2"])
        #expect(toB.ok && toB.serial == b.serialHex && toB.alpn == "h2" && toB.spoken == .h2)
        let toA = try Self.handshake(front, sni: "a.test", alpn: ["http/1.1"])
        #expect(toA.ok && toA.serial == a.serialHex && toA.alpn == "http/1.1" && toA.spoken == .http1)
        #expect(!(try Self.handshake(front, sni: "unknown.test", alpn: [])).ok)
        // Names compare case-insensitively, and an absolute name (trailing dot) is the same name.
        let shouting = try Self.handshake(front, sni: "B.Test.", alpn: ["http/1.1"])
        #expect(shouting.ok && shouting.serial == b.serialHex && shouting.alpn == "http/1.1")
    }

    /// The context carries the ECDSA certificate handshakes keep choosing (connections start with
    /// it installed), and every connection still gets exactly the certificate chosen for it: another
    /// name's, an RSA one for a client without ECDSA or for a name with RSA only, and the one now
    /// carried on a connection made while the context carried another.
    @Test func theCarriedCertificateNeverServesAnotherChoice() throws {
        let a = try Self.cert("a.test"), b = try Self.cert("b.test")
        let aRSA = try CertificateLoader.selfSigned(names: ["a.test"], rsa: true)
        let rOnly = try CertificateLoader.selfSigned(names: ["r.test"], rsa: true)
        let store = CertificateStore(Snapshot([a, aRSA, b, rOnly], defaultName: nil), strictSNI: true)
        let front = try TLSContext(front: store, options: TLSOptions(sessionTickets: 0))
        let rsaOnly = "RSA+SHA256:RSA-PSS+SHA256"
        for _ in 0..<TLSContext.Carried.streak { #expect(try Self.handshake(front, sni: "a.test", alpn: []).serial == a.serialHex) }
        #expect(front.carried.key === a.certified)
        #expect(try Self.handshake(front, sni: "a.test", alpn: []).serial == a.serialHex)
        #expect(try Self.handshake(front, sni: "b.test", alpn: []).serial == b.serialHex)
        #expect(try Self.handshake(front, sni: "a.test", alpn: [], sigalgs: rsaOnly).serial == aRSA.serialHex)
        #expect(!(try Self.handshake(front, sni: "b.test", alpn: [], sigalgs: rsaOnly)).ok, "b.test has no RSA certificate")
        #expect(try Self.handshake(front, sni: "r.test", alpn: []).serial == rOnly.serialHex, "never a's ECDSA beside r's RSA")
        #expect(front.carried.key === a.certified, "b once does not move it")

        // A connection made while the context carries a, whose handshake runs after b took over.
        var fds: [Int32] = [0, 0]
        #expect(socketpair(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0, &fds) == 0)
        defer { close(fds[0]); close(fds[1]) }
        for fd in fds { _ = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK) }
        let early = try TLSConnection(front: front, fd: fds[0])
        for _ in 0..<TLSContext.Carried.streak { #expect(try Self.handshake(front, sni: "b.test", alpn: []).serial == b.serialHex) }
        #expect(front.carried.key === b.certified)
        #expect(try Self.handshake(front, sni: "a.test", alpn: []).serial == a.serialHex)
        #expect(Self.handshake(server: early, clientFD: fds[1], sni: "b.test", alpn: []).serial == b.serialHex)
        #expect(try Self.handshake(front, sni: "a.test", alpn: [], sigalgs: rsaOnly).serial == aRSA.serialHex)
    }

    /// A certificate goes out with the chain it was configured with, never one OpenSSL completes
    /// from a trust store on the context (which could hold CAs meant for checking clients).
    @Test func aCertificateGoesOutWithItsConfiguredChainOnly() throws {
        let caKey = try PrivateKey.generateP256(), leafKey = try PrivateKey.generateP256()
        let ca = try SelfSigned.make(names: ["ca.test"], key: caKey)
        let leaf = try SelfSigned.make(names: ["a.test"], key: leafKey)
        X509_set_issuer_name(leaf.x509, X509_get_subject_name(ca.x509))
        #expect(X509_sign(leaf.x509, caKey.pkey, EVP_sha256()) > 0)
        let bundle = CertificateBundle(names: ["a.test"], keyType: .ecdsa,
                                       certified: try CertifiedKey(chain: [leaf], key: leafKey), source: "test")
        let front = try TLSContext(front: CertificateStore(Snapshot([bundle], defaultName: nil), strictSNI: true),
                                   options: TLSOptions(sessionTickets: 0))
        #expect(X509_STORE_add_cert(SSL_CTX_get_cert_store(front.ctx), ca.x509) == 1)
        // Installed on each connection first, then carried by the context.
        for _ in 0...TLSContext.Carried.streak {
            var sent = 0
            let outcome = try Self.handshake(front, sni: "a.test", alpn: [], after: { _, client, _ in
                sent = Int(OPENSSL_sk_num(SSL_get_peer_cert_chain(client)))
            })
            #expect(outcome.ok && outcome.serial == bundle.serialHex && sent == 1)
        }
        #expect(front.carried.key === bundle.certified)
    }

    /// The socket BIO under a front connection: a read that drains the socket says so (the next
    /// read would only meet EAGAIN), one that fills the record buffer does not; an empty socket
    /// wants a read, a full one a write until the peer reads; the peer's end of stream closes.
    @Test func theSocketBIOTellsDrainedAndWhenToRetry() throws {
        let store = CertificateStore(Snapshot([try Self.cert("a.test")], defaultName: nil), strictSNI: true)
        let front = try TLSContext(front: store, options: TLSOptions(sessionTickets: 0))
        let outcome = try Self.handshake(front, sni: "a.test", alpn: [], after: { server, client, clientFD in
            let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 16_384, alignment: 1)
            defer { buffer.deallocate() }
            #expect(server.read(into: buffer) == .wantRead)
            #expect(SSL_write(client, [UInt8](repeating: 1, count: 100), 100) == 100)
            #expect(server.read(into: buffer) == .done(100))
            #expect(server.drained)
            let big = [UInt8](repeating: 2, count: 60_000)
            #expect(SSL_write(client, big, Int32(big.count)) == Int32(big.count))
            #expect(server.read(into: buffer) == .done(16_384))
            #expect(!server.drained && !server.lastReadWasShort, "the read filled the record buffer")
            var received = 16_384
            while case .done(let n) = server.read(into: buffer) { received += n }
            #expect(received == big.count)

            var status = TLSStatus.done(0), writes = 0
            while case .done = status, writes < 1000 { status = big.withUnsafeBytes { server.write($0) }; writes += 1 }
            #expect(status == .wantWrite)
            while SSL_read(client, buffer.baseAddress, Int32(buffer.count)) > 0 {}
            if case .done = big.withUnsafeBytes({ server.write($0) }) {} else { Issue.record("no write once the peer read") }

            #expect(shutdown(clientFD, Int32(SHUT_WR)) == 0)
            #expect(server.read(into: buffer) == .closed)
        })
        #expect(outcome.ok)
    }

    /// The server's TLS 1.3 order wins: AES-128-GCM over OpenSSL's default client list (which
    /// starts with AES-256-GCM), ChaCha20 over AES-256-GCM when the client lists AES-256 first.
    @Test func tls13CipherFollowsTheServersPreference() throws {
        let store = CertificateStore(Snapshot([try Self.cert("a.test")], defaultName: nil), strictSNI: true)
        let front = try TLSContext(front: store, options: TLSOptions(sessionTickets: 0))
        let byDefault = try Self.handshake(front, sni: "a.test", alpn: [])
        #expect(byDefault.ok && byDefault.version == "TLSv1.3" && byDefault.tls13 == true && byDefault.cipher == "TLS_AES_128_GCM_SHA256")
        // No ALPN is HTTP/1, as nginx takes it; a TLS 1.2 client is told apart from TLS 1.3.
        #expect(byDefault.spoken == .http1)
        let old = try Self.handshake(front, sni: "a.test", alpn: ["h2"], clientMaxVersion: COpenSSL_TLS1_2_VERSION())
        #expect(old.ok && old.version == "TLSv1.2" && old.tls13 == false && old.spoken == .h2)
        let noAES128 = try Self.handshake(front, sni: "a.test", alpn: [],
                                          suites: "TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256")
        #expect(noAES128.ok && noAES128.version == "TLSv1.3" && noAES128.cipher == "TLS_CHACHA20_POLY1305_SHA256")
        let only256 = try Self.handshake(front, sni: "a.test", alpn: [], suites: "TLS_AES_256_GCM_SHA384")
        #expect(only256.ok && only256.cipher == "TLS_AES_256_GCM_SHA384")
        // A client that lists ChaCha20 first (no AES instructions) gets it ahead of our AES-128-GCM.
        let chachaFirst = try Self.handshake(front, sni: "a.test", alpn: [],
                                             suites: "TLS_CHACHA20_POLY1305_SHA256:TLS_AES_128_GCM_SHA256")
        #expect(chachaFirst.ok && chachaFirst.cipher == "TLS_CHACHA20_POLY1305_SHA256")
    }

    /// close_notify goes to a peer that is still there, and not to one that has closed already (its
    /// socket would answer with a reset).
    @Test func closeNotifyOnlyToAPeerThatHasNotClosed() throws {
        let store = CertificateStore(Snapshot([try Self.cert("a.test")], defaultName: nil), strictSNI: true)
        let front = try TLSContext(front: store, options: TLSOptions(sessionTickets: 0))
        var buffer = [UInt8](repeating: 0, count: 256)
        let first = try Self.handshake(front, sni: "a.test", alpn: [], after: { server, client, clientFD in
            #expect(SSL_shutdown(client) == 0)  // sent; the server's not received yet
            let status = buffer.withUnsafeMutableBytes { server.read(into: $0) }
            #expect(status == .closed)
            server.shutdown()
            #expect(recv(clientFD, &buffer, buffer.count, 0) == -1 && errno == EAGAIN)
        })
        #expect(first.ok)
        let second = try Self.handshake(front, sni: "a.test", alpn: [], after: { server, client, _ in
            server.shutdown()
            var n = 0
            #expect(SSL_read_ex(client, &buffer, buffer.count, &n) == 0)
            #expect(SSL_get_error(client, 0) == SSL_ERROR_ZERO_RETURN)
            ERR_clear_error()
        })
        #expect(second.ok)
    }

    /// A drain drops the listeners and their contexts while accepted connections may still be
    /// handshaking: each connection keeps its context (whose ClientHello callback it needs) alive.
    @Test func aConnectionKeepsItsContextAlive() throws {
        let store = CertificateStore(Snapshot([try Self.cert("a.test")], defaultName: nil), strictSNI: true)
        var fds: [Int32] = [0, 0]
        #expect(socketpair(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0, &fds) == 0)
        defer { close(fds[0]); close(fds[1]) }
        var front: TLSContext? = try TLSContext(front: store, options: TLSOptions(sessionTickets: 0))
        weak let context = front
        var server: TLSConnection? = try TLSConnection(front: front!, fd: fds[0])
        front = nil
        #expect(context != nil, "the listener's context went with the listener, under its connection")
        server = nil
        #expect(server == nil && context == nil)
    }

    @Test func acmeTLS1GetsTheChallengeAnswerAndNothingElseDoes() throws {
        let site = try Self.cert("v.test")
        let table = ALPNChallengeTable()
        let key = try PrivateKey.generateP256()
        let answer = try ALPNChallengeCertificate.make(name: "v.test", keyAuthorization: "token.thumbprint", key: key)
        try table.present(name: "v.test", certificate: answer, key: key)
        let store = CertificateStore(Snapshot([site], defaultName: nil), strictSNI: true, alpnChallenges: table)
        let front = try TLSContext(front: store, options: TLSOptions(sessionTickets: 0))

        let validator = try Self.handshake(front, sni: "v.test", alpn: ["acme-tls/1"])
        #expect(validator.ok && validator.serial == answer.serialHex && validator.alpn == "acme-tls/1" && validator.spoken == .acmeTLS)
        let upper = try Self.handshake(front, sni: "V.TEST.", alpn: ["acme-tls/1"])
        #expect(upper.ok && upper.serial == answer.serialHex && upper.alpn == "acme-tls/1")
        let browser = try Self.handshake(front, sni: "v.test", alpn: ["h2", "http/1.1"])
        #expect(browser.ok && browser.serial == site.serialHex && browser.alpn == "h2" && browser.spoken == .h2)
        // The flag is per connection: the next ordinary handshake is not held to acme-tls/1.
        let again = try Self.handshake(front, sni: "v.test", alpn: ["http/1.1"])
        #expect(again.ok && again.serial == site.serialHex && again.alpn == "http/1.1")
    }

    /// Holds handshakes for names it is told to, and records what it was asked.
    final class Holder: CertificateOnDemand, @unchecked Sendable {  // used from the test's thread only
        var hold: Set<String>
        var asked: [String] = []
        init(_ hold: Set<String>) { self.hold = hold }
        func shouldWait(for name: String) -> Bool { asked.append(name); return hold.contains(name) }
        func wait(for name: String, resume: @escaping @Sendable () -> Void) { resume() }
        var maxWait: Double { 1 }
    }

    @Test func aHeldHandshakeResumesWithTheCertificateObtainedMeanwhile() throws {
        let site = try Self.cert("a.test"), fresh = try Self.cert("new.test")
        let holder = Holder(["new.test", "never.test"])
        let store = CertificateStore(Snapshot([site], defaultName: nil), strictSNI: false, onDemand: holder)
        let front = try TLSContext(front: store, options: TLSOptions(sessionTickets: 0))
        var heldFor: [String?] = []
        let obtained = try Self.handshake(front, sni: "new.test", alpn: ["http/1.1"]) { name in
            heldFor.append(name)
            store.replace(with: Snapshot([site, fresh], defaultName: nil), strictSNI: false)
        }
        #expect(obtained.ok && obtained.serial == fresh.serialHex && heldFor == ["new.test"] && obtained.heldForChallenge == false)
        #expect(store.serves("new.test") && !store.serves("never.test"))
        // Nothing arrives: the resumed handshake takes the default, and is not held a second time.
        heldFor = []
        let fallback = try Self.handshake(front, sni: "never.test", alpn: ["http/1.1"]) { heldFor.append($0) }
        #expect(fallback.ok && fallback.serial == site.serialHex && heldFor == ["never.test"])
        #expect(holder.asked == ["new.test", "never.test"])
        // Names that serve, and clients without SNI, are never asked about.
        _ = try Self.handshake(front, sni: "a.test", alpn: [])
        _ = try Self.handshake(front, sni: nil, alpn: [])
        #expect(holder.asked == ["new.test", "never.test"])
    }
}
