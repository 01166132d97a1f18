import Config
import HTTP1
import Proxy
import TLS

/// Request rules shared by the HTTP/1 and HTTP/2 fronts, so each is written once.
enum RequestPolicy {
    /// X-Forwarded-For is extended (a chain of proxies), -Proto and -Host are replaced: a client
    /// must not be able to claim a scheme or host it did not use.
    static func addForwarded(_ fields: inout HTTPFields, client: String, host: String?) {
        // Most requests carry none of them: one scan tells, and only then are the fields rewritten.
        var present = false
        fields.forEachLine { line, buf in
            let n = line.nameEnd - line.start
            if n >= 15 && n <= 17 && UnsafeRawBufferPointer(rebasing: buf[line.start..<(line.start + 12)]).equalsLowercased("x-forwarded-") {
                present = true
            }
        }
        if present {
            fields.removeAll { name, _ in name.equalsLowercased("x-forwarded-proto") || name.equalsLowercased("x-forwarded-host") }
        }
        if present, let line = fields.firstLine(named: "x-forwarded-for") {
            fields.replaceValue(of: line, with: fields.string(line.value) + ", " + client)
        } else {
            fields.append(name: "X-Forwarded-For", value: client)
        }
        fields.append(name: "X-Forwarded-Proto", value: "https")
        if let host { fields.append(name: "X-Forwarded-Host", value: host) }
    }

    /// Mutual TLS: copies of the identity fields a client sent are always dropped (a client must
    /// not be able to claim a certificate), then the verified certificate's are added.
    static func addClientCertificate(_ fields: inout HTTPFields, _ identity: ClientIdentity?, _ auth: ClientAuthSettings) {
        let names = auth.headerNames
        fields.removeAll { name, _ in names.contains { HTTPFields.nameEquals(name, $0) } }
        guard let identity else { return }
        if let name = auth.subjectHeader { fields.append(name: name, value: identity.subject) }
        if let name = auth.sansHeader, !identity.subjectAltNames.isEmpty {
            fields.append(name: name, value: identity.subjectAltNames.joined(separator: ", "))
        }
        if let name = auth.fingerprintHeader { fields.append(name: name, value: identity.sha256) }
    }

    /// The route's response headers, replacing the origin's fields of the same names. Not on
    /// interim responses, nor on a 101 (the tunnel's fields are the upgrade's).
    static func setResponseHeaders(_ fields: inout HTTPFields, status: Int, _ headers: [HeaderSetting]) {
        guard !headers.isEmpty, status >= 200 else { return }
        fields.removeAll { name, _ in headers.contains { HTTPFields.nameEquals(name, $0.name) } }
        for header in headers { fields.append(name: header.name, value: header.value) }
    }

    /// The route's response headers as fields of a response made here.
    static func fields(_ headers: [HeaderSetting]) -> [HTTPField] { headers.map { HTTPField(name: $0.name, value: $0.value) } }

    /// A request for a name the listener's client-certificate policy covers, over a handshake
    /// that was not asked for one (no SNI, another name sharing the certificate, or HTTP/2
    /// connection reuse): 421, so the client connects again with that name (nginx does the same).
    static func misdirected(host: String?, clientAuth: ClientCertificatePolicy?, tls: TLSConnection?) -> String? {
        guard let clientAuth, let tls, !tls.askedForClientCertificate, clientAuth.covers(host.map(Router.hostName)) else { return nil }
        return "this host requires a client certificate: connect with its name in SNI"
    }

    /// What to do with a request head, whichever protocol carried it.
    enum Decision {
        case notFound
        /// The declared body is over the route's limit (bytes, limit).
        case tooLarge(Int64, Int64)
        case respond(FixedResponse, bodyLimit: Int64, headers: [HeaderSetting])
        case proxy(upstream: String, forwardedHeaders: Bool, bodyLimit: Int64, headers: [HeaderSetting])
    }

    /// Route by host and path, then check a declared body length against the route's limit.
    static func decide(_ router: Router, host: String?, path: String, declaredLength: Int64?, limits: Limits) -> Decision {
        guard let i = router.matchIndex(host: host, path: path) else { return .notFound }
        // The route's own body limit, else the global one (0: unlimited).
        let limit = router.routes[i].maxBodyBytes ?? limits.maxBodyBytes
        if limit > 0, let n = declaredLength, n > limit { return .tooLarge(n, limit) }
        switch router.routes[i].action {
        case .respond(let fixed): return .respond(fixed, bodyLimit: limit, headers: router.routes[i].responseHeaders)
        case .proxy(let upstream):
            return .proxy(upstream: upstream, forwardedHeaders: router.routes[i].forwardedHeaders, bodyLimit: limit,
                          headers: router.routes[i].responseHeaders)
        }
    }
}
