/// Where each kind of shared state lives under the configured prefix ("/edgeproxy/"):
///
///     certificates/NAME              a CertificateRecord (chain, sealed key, names, serial, …)
///     acme/CA/account                the ACME account (sealed key, URL)
///     acme/challenges/http-01/TOKEN  an HTTP-01 key authorization
///     acme/challenges/tls-alpn-01/NAME   a TLS-ALPN-01 key authorization
///     acme/acks/KIND/ID/NODE         a node serves that challenge answer (under the node's lease)
///     acme/renewal/NAME              the renewal time the fleet agreed on for one serial
///     acme/ari/NAME                  the CA's last renewalInfo answer for that serial
///     acme/on-demand/NAME            a name issued on demand (every node manages it)
///     acme/events/ID                 the node delivering a certificate event, under a lease of its own
///     locks/NAME                     a lock, attached to its holder's lease
///     nodes/NODE                     a live node's status, attached to its lease
///     tickets/NOT_BEFORE             a sealed session-ticket key
///     leader                         the node that publishes ticket keys, under its lease
public struct KeyLayout: Sendable {
    public let prefix: String
    public init(prefix: String) { self.prefix = prefix }

    public var certificates: String { prefix + "certificates/" }
    public func certificate(_ name: String) -> String { certificates + name.lowercased() }
    public func account(ca: String) -> String { prefix + "acme/\(ca)/account" }
    public var challenges: String { prefix + "acme/challenges/" }
    public func http01(_ token: String) -> String { challenges + "http-01/" + token }
    public func tlsALPN01(_ name: String) -> String { challenges + "tls-alpn-01/" + name.lowercased() }
    /// Where nodes acknowledge a challenge key (`http01(…)` or `tlsALPN01(…)`) they now answer.
    public func acks(for challengeKey: String) -> String {
        prefix + "acme/acks/" + challengeKey.dropFirst(challenges.count) + "/"
    }
    public func renewal(_ name: String) -> String { prefix + "acme/renewal/" + name.lowercased() }
    public func renewalInfo(_ name: String) -> String { prefix + "acme/ari/" + name.lowercased() }
    public var onDemand: String { prefix + "acme/on-demand/" }
    public func event(_ id: String) -> String { prefix + "acme/events/" + id }
    public func lock(_ name: String) -> String { prefix + "locks/" + name }
    public var nodes: String { prefix + "nodes/" }
    public func node(_ name: String) -> String { nodes + name }
    public var tickets: String { prefix + "tickets/" }
    public var leader: String { prefix + "leader" }

    /// The certificate name of a `certificates/NAME` key, nil for any other key.
    public func certificateName(_ key: String) -> String? {
        guard key.hasPrefix(certificates) else { return nil }
        let name = String(key.dropFirst(certificates.count))
        return name.isEmpty || name.contains("/") ? nil : name
    }
}
