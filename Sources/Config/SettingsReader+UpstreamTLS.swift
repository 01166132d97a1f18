import Foundation
import Yams

/// `upstreams.NAME.tls`: `true` (every default) or a mapping of the keys below.
extension SettingsReader {
    static let upstreamTLSKeys = ["ca", "server_name", "verify", "client_certificate", "client_key", "session_reuse"]

    /// nil for `tls: false`.
    func upstreamTLS(_ node: Node, upstream name: String) throws(ConfigError) -> UpstreamTLS? {
        if case .scalar = node, !node.isNull { return try source.bool(node) ? UpstreamTLS() : nil }
        let map = try mapping(node, name: "tls of \(name)", keys: Self.upstreamTLSKeys)
        var tls = UpstreamTLS()
        func readable(_ value: Node, _ key: String, _ what: String) throws(ConfigError) -> String {
            let path = try source.path(value)
            guard FileManager.default.isReadableFile(atPath: path) else {
                throw source.error("tls.\(key) of \(name): cannot read \(quoted(path)) (\(what))", at: value)
            }
            return path
        }
        if let value = map["ca"] { tls.caFile = try readable(value, "ca", "the PEM roots the servers' certificates must lead to") }
        if let value = map["server_name"] { tls.serverName = try source.hostPattern(value, wildcard: false) }
        if let value = map["verify"] { tls.verify = try source.bool(value) }
        if let value = map["client_certificate"] {
            tls.clientCertificate = try readable(value, "client_certificate", "a PEM certificate shown to servers that ask for one")
        }
        if let value = map["client_key"] { tls.clientKey = try readable(value, "client_key", "the client certificate's PEM key") }
        if (tls.clientCertificate == nil) != (tls.clientKey == nil) {
            throw source.error("tls of \(name): give both client_certificate and client_key, or neither",
                               at: map["client_certificate"] ?? map["client_key"]!)
        }
        if let value = map["session_reuse"] { tls.sessionReuse = try source.bool(value) }
        return tls
    }
}
