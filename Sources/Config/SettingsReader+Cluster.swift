import Foundation
import Yams

extension SettingsReader {
    static let clusterKeys = ["endpoints", "ca", "client_certificate", "client_key", "username", "password_file", "prefix", "node",
                              "lease_ttl", "request_timeout", "sealing_keys", "cache"]

    /// `cluster:` absent → a single node. When present, `endpoints` and `sealing_keys` are required.
    func cluster(_ node: Node?) throws(ConfigError) -> ClusterSettings? {
        guard let node else { return nil }
        let map = try mapping(node, name: "cluster", keys: Self.clusterKeys)
        guard let endpointsNode = map["endpoints"] else {
            throw source.error("cluster needs `endpoints`: etcd's client URLs, e.g. [http://10.0.0.1:2379, http://10.0.0.2:2379]", at: node)
        }
        var endpoints: [String] = []
        for item in try source.list(endpointsNode, of: "cluster.endpoints") {
            let url = try source.string(item, expected: "an http:// or https:// URL")
            guard let parts = URLComponents(string: url), parts.scheme == "http" || parts.scheme == "https",
                  parts.host?.isEmpty == false, parts.path.isEmpty || parts.path == "/", parts.query == nil else {
                throw source.error("cluster.endpoints: expected an etcd client URL like http://127.0.0.1:2379, got \(item.foundDescription)", at: item)
            }
            guard !endpoints.contains(url) else { throw source.error("cluster.endpoints lists \(quoted(url)) twice", at: item) }
            endpoints.append(url.hasSuffix("/") ? String(url.dropLast()) : url)
        }
        guard !endpoints.isEmpty else { throw source.error("cluster.endpoints needs at least one etcd URL", at: endpointsNode) }

        guard let keysNode = map["sealing_keys"] else {
            throw source.error("cluster needs `sealing_keys`: files of 32 random bytes that seal private keys before they enter etcd "
                               + "(make one with `openssl rand -out sealing.key 32`; the first seals, all open)", at: node)
        }
        var keys: [SealingKey] = []
        for item in try source.list(keysNode, of: "cluster.sealing_keys") {
            let path = try source.path(item)
            guard let data = FileManager.default.contents(atPath: path) else {
                throw source.error("cluster.sealing_keys: cannot read \(quoted(path))", at: item)
            }
            guard let bytes = Self.sealingKey([UInt8](data)) else {
                throw source.error("cluster.sealing_keys: \(quoted(path)) holds \(data.count) bytes; expected exactly 32 random bytes "
                                   + "(or 64 hex digits, or their base64): make one with `openssl rand -out \(path) 32`", at: item)
            }
            guard !keys.contains(where: { $0.bytes == bytes }) else {
                throw source.error("cluster.sealing_keys: \(quoted(path)) holds the same key as \(quoted(keys.first { $0.bytes == bytes }!.path))", at: item)
            }
            keys.append(SealingKey(path: path, bytes: bytes))
        }
        guard !keys.isEmpty else { throw source.error("cluster.sealing_keys needs at least one key file", at: keysNode) }

        var nodeName = Self.hostName()
        if let value = map["node"] {
            nodeName = try source.string(value, expected: "a node name")
            guard Self.isNodeName(nodeName) else {
                throw source.error("cluster.node: use letters, digits, '.', '-' and '_' (at most 63), got \(value.foundDescription)", at: value)
            }
        }
        var cluster = ClusterSettings(endpoints: endpoints, node: nodeName, sealingKeys: keys,
                                      cacheDirectory: source.resolve(path: "cluster-cache"))
        if let value = map["prefix"] {
            let prefix = try source.string(value, expected: "a key prefix like /edgeproxy/")
            guard prefix.hasPrefix("/"), prefix.hasSuffix("/"), prefix.count >= 2, !prefix.contains("//") else {
                throw source.error("cluster.prefix must start and end with '/', like /edgeproxy/ or /fleet-a/, got \(value.foundDescription)", at: value)
            }
            cluster.prefix = prefix
        }
        if let value = map["ca"] { cluster.caFile = try readable(value, "cluster.ca", "the PEM roots that signed etcd's certificate") }
        if let value = map["client_certificate"] {
            cluster.clientCertificate = try readable(value, "cluster.client_certificate", "a PEM certificate for etcd's client authentication")
        }
        if let value = map["client_key"] { cluster.clientKey = try readable(value, "cluster.client_key", "the client certificate's PEM key") }
        if (cluster.clientCertificate == nil) != (cluster.clientKey == nil) {
            throw source.error("cluster: give both client_certificate and client_key, or neither", at: map["client_certificate"] ?? map["client_key"]!)
        }
        if let value = map["username"] { cluster.username = try source.string(value, expected: "an etcd user name") }
        if let value = map["password_file"] {
            let path = try source.path(value)
            guard let data = FileManager.default.contents(atPath: path),
                  let line = String(data: data, encoding: .utf8)?.split(whereSeparator: \.isNewline).first else {
                throw source.error("cannot read a password from \(quoted(path)) (expected it on the first line)", at: value)
            }
            cluster.password = String(line)
        }
        if (cluster.username == nil) != (cluster.password == nil) {
            throw source.error("cluster: give both username and password_file, or neither", at: map["username"] ?? map["password_file"]!)
        }
        if let value = map["lease_ttl"] {
            cluster.leaseTTL = try source.duration(value)
            guard cluster.leaseTTL >= 2 else { throw source.error("cluster.lease_ttl must be at least 2s", at: value) }
        }
        if let value = map["request_timeout"] { cluster.requestTimeout = try source.duration(value) }
        if let value = map["cache"] { cluster.cacheDirectory = try source.path(value) }
        if cluster.endpoints.contains(where: { $0.hasPrefix("http://") }) && (cluster.clientCertificate != nil || cluster.caFile != nil) {
            throw source.error("cluster: ca and client_certificate apply to https:// endpoints; some endpoints are http://", at: endpointsNode)
        }
        return cluster
    }

    private func readable(_ node: Node, _ name: String, _ what: String) throws(ConfigError) -> String {
        let path = try source.path(node)
        guard FileManager.default.isReadableFile(atPath: path) else { throw source.error("\(name): cannot read \(quoted(path)) (\(what))", at: node) }
        return path
    }

    /// 32 raw bytes, 64 hex digits or base64 of 32 bytes (a trailing newline allowed).
    static func sealingKey(_ data: [UInt8]) -> [UInt8]? {
        if data.count == 32 { return data }
        let text = String(decoding: data, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
        if text.count == 64, text.allSatisfy(\.isHexDigit) {
            var bytes: [UInt8] = []
            var index = text.startIndex
            while index < text.endIndex {
                let next = text.index(index, offsetBy: 2)
                bytes.append(UInt8(text[index..<next], radix: 16)!)
                index = next
            }
            return bytes
        }
        if let decoded = Data(base64Encoded: text), decoded.count == 32 { return [UInt8](decoded) }
        return nil
    }

    static func isNodeName(_ name: String) -> Bool {
        !name.isEmpty && name.count <= 63 && name.allSatisfy { $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "." || $0 == "-" || $0 == "_") }
    }

    static func hostName() -> String {
        var buffer = [CChar](repeating: 0, count: 256)
        guard gethostname(&buffer, buffer.count) == 0 else { return "node" }
        let name = String(cString: buffer)
        return isNodeName(name) ? name : "node"
    }
}

extension ClusterSettings {
    /// This host's name: the default `cluster.node`, and how a single node names itself (certificate events).
    public static var hostNodeName: String { SettingsReader.hostName() }
}
