/// TLS towards an upstream's servers (`upstreams.NAME.tls`), as nginx's `proxy_ssl_*` and
/// HAProxy's `server ... ssl verify required ca-file sni` do: the chain verified against `ca` (or
/// the system store) and the name checked, SNI sent, an optional client certificate, sessions
/// resumed across the pool's connections.
public struct UpstreamTLS: Sendable, Equatable {
    /// PEM roots the servers' chains must lead to; nil: the system store.
    public var caFile: String?
    /// The name sent as SNI and checked against the certificate; nil: each server's host (an IP
    /// address is sent no SNI and checked against the certificate's IP addresses).
    public var serverName: String?
    /// false: any certificate is accepted (chain and name unchecked).
    public var verify = true
    /// A PEM certificate (chain) and its key shown to servers that ask for one; both or neither.
    public var clientCertificate: String?
    public var clientKey: String?
    /// Offer the server's last session to the next connection to it (an abbreviated handshake).
    public var sessionReuse = true
    public init() {}
}
