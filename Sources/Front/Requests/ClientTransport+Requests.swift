import Proxy
import HTTP1

/// What a request carries of the connection it came on, the same for both protocol fronts.
extension ClientTransport {
    /// Why a request for `host` must not be served on this connection (421), if it must not.
    func misdirected(host: String?) -> String? { RequestPolicy.misdirected(host: host, clientAuth: clientAuth, tls: tls) }

    /// The verified client certificate (mutual TLS; client copies dropped), and, for an upstream
    /// that sends PROXY headers, the connection's ends and its ownership.
    func personalize(_ fields: inout HTTPFields, upstream: String) -> ClientConnection? {
        // Through `worker.config` each time, not a local copy of it: copying the configuration
        // retains every string and list it holds, on every request.
        if let auth = worker.config.settings.tls.clientAuth { RequestPolicy.addClientCertificate(&fields, clientIdentity, auth) }
        guard !worker.config.proxyHeaderUpstreams.isEmpty && worker.config.proxyHeaderUpstreams.contains(upstream) else { return nil }
        hasPrivateUpstreams = true
        return ClientConnection(client: peer, local: local, owner: ObjectIdentifier(self))
    }

    /// The access log's certificate field: the verified client certificate's SHA-256, when asked for.
    var loggedClientCertificate: String? {
        worker.config.settings.tls.clientAuth == nil ? nil : clientIdentity?.sha256
    }

    /// The TLS server name the client asked for (nil on port 80).
    var serverName: String? { tls?.serverName }
}
