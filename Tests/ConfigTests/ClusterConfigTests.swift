import Foundation
import Testing
@testable import Config

/// The `cluster:` section: defaults, every key, key files, and the mistakes an operator can make.
@Suite struct ClusterConfigTests {
    /// Key files under a temporary directory: raw, hex and base64 forms of two keys, and a short one.
    final class Keys {
        let dir = NSTemporaryDirectory() + "cluster-config-" + UUID().uuidString
        let raw = [UInt8](repeating: 7, count: 32)
        init() throws {
            try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
            try Data(raw).write(to: URL(fileURLWithPath: dir + "/raw.key"))
            try (String(repeating: "0a", count: 32) + "\n").write(toFile: dir + "/hex.key", atomically: true, encoding: .utf8)
            try Data([UInt8](repeating: 9, count: 32)).base64EncodedString().write(toFile: dir + "/b64.key", atomically: true, encoding: .utf8)
            try Data([1, 2, 3]).write(to: URL(fileURLWithPath: dir + "/short.key"))
            try "secret-pw\n".write(toFile: dir + "/pw", atomically: true, encoding: .utf8)
        }
        deinit { try? FileManager.default.removeItem(atPath: dir) }
    }

    @Test func absentMeansOneNode() throws {
        #expect(try parse("workers: 1\n").cluster == nil)
    }

    @Test func minimalSectionTakesDefaults() throws {
        let keys = try Keys()
        let cluster = try #require(try parse("""
            cluster:
              endpoints: [http://127.0.0.1:2379, "http://127.0.0.2:2379/"]
              sealing_keys: [\(keys.dir)/raw.key]
            """).cluster)
        #expect(cluster.endpoints == ["http://127.0.0.1:2379", "http://127.0.0.2:2379"])
        #expect(cluster.sealingKeys == [SealingKey(path: keys.dir + "/raw.key", bytes: keys.raw)])
        #expect(cluster.prefix == "/edgeproxy/" && cluster.leaseTTL == 10 && cluster.requestTimeout == 5)
        #expect(cluster.node == SettingsReader.hostName() && !cluster.node.isEmpty)
        #expect(cluster.cacheDirectory == "/etc/edgeproxy/cluster-cache")
        #expect(cluster.caFile == nil && cluster.clientCertificate == nil && cluster.username == nil)
    }

    @Test func everyKey() throws {
        let keys = try Keys()
        let cluster = try #require(try parse("""
            cluster:
              endpoints: [https://127.0.0.1:2379]
              ca: \(keys.dir)/raw.key
              client_certificate: \(keys.dir)/raw.key
              client_key: \(keys.dir)/raw.key
              username: edge
              password_file: \(keys.dir)/pw
              prefix: /fleet-a/
              node: node-1
              lease_ttl: 5s
              request_timeout: 2s
              sealing_keys: [\(keys.dir)/hex.key, \(keys.dir)/b64.key]
              cache: /var/cache/edgeproxy
            """).cluster)
        #expect(cluster.prefix == "/fleet-a/" && cluster.node == "node-1" && cluster.leaseTTL == 5 && cluster.requestTimeout == 2)
        #expect(cluster.sealingKeys.map(\.bytes) == [[UInt8](repeating: 10, count: 32), [UInt8](repeating: 9, count: 32)])
        #expect(cluster.username == "edge" && cluster.password == "secret-pw")
        #expect(cluster.caFile == keys.dir + "/raw.key" && cluster.clientKey == keys.dir + "/raw.key")
        #expect(cluster.cacheDirectory == "/var/cache/edgeproxy")
    }

    @Test func mistakes() throws {
        let keys = try Keys()
        let k = "  sealing_keys: [\(keys.dir)/raw.key]\n"
        expectError("cluster:\n" + k, line: 2, column: 3,
                    "cluster needs `endpoints`: etcd's client URLs, e.g. [http://10.0.0.1:2379, http://10.0.0.2:2379]")
        expectError("cluster:\n  endpoints: [http://127.0.0.1:2379]\n", line: 2, column: 3,
                    "cluster needs `sealing_keys`: files of 32 random bytes that seal private keys before they enter etcd "
                    + "(make one with `openssl rand -out sealing.key 32`; the first seals, all open)")
        expectError("cluster:\n  endpoints: [127.0.0.1:2379]\n" + k, line: 2, column: 15,
                    "cluster.endpoints: expected an etcd client URL like http://127.0.0.1:2379, got \"127.0.0.1:2379\"")
        expectError("cluster:\n  endpoints: [http://a:1, http://a:1]\n" + k, line: 2, column: 27,
                    "cluster.endpoints lists \"http://a:1\" twice")
        expectError("cluster:\n  endpoints: [http://a:1]\n  sealing_keys: [\(keys.dir)/short.key]\n", line: 3, column: 18,
                    "cluster.sealing_keys: \"\(keys.dir)/short.key\" holds 3 bytes; expected exactly 32 random bytes "
                    + "(or 64 hex digits, or their base64): make one with `openssl rand -out \(keys.dir)/short.key 32`")
        expectError("cluster:\n  endpoints: [http://a:1]\n  sealing_keys: [\(keys.dir)/missing.key]\n", line: 3, column: 18,
                    "cluster.sealing_keys: cannot read \"\(keys.dir)/missing.key\"")
        expectError("cluster:\n  endpoints: [http://a:1]\n" + k + "  prefix: edgeproxy\n", line: 4, column: 11,
                    "cluster.prefix must start and end with '/', like /edgeproxy/ or /fleet-a/, got \"edgeproxy\"")
        expectError("cluster:\n  endpoints: [http://a:1]\n" + k + "  node: a/b\n", line: 4, column: 9,
                    "cluster.node: use letters, digits, '.', '-' and '_' (at most 63), got \"a/b\"")
        expectError("cluster:\n  endpoints: [http://a:1]\n" + k + "  lease_ttl: 1s\n", line: 4, column: 14,
                    "cluster.lease_ttl must be at least 2s")
        expectError("cluster:\n  endpoints: [http://a:1]\n" + k + "  username: u\n", line: 4, column: 13,
                    "cluster: give both username and password_file, or neither")
        expectError("cluster:\n  endpoints: [https://a:1]\n" + k + "  client_key: \(keys.dir)/raw.key\n", line: 4, column: 15,
                    "cluster: give both client_certificate and client_key, or neither")
        expectError("cluster:\n  endpoints: [http://a:1]\n" + k + "  etcd: x\n", line: 4, column: 3,
                    "unknown key \"etcd\" in cluster (expected one of: endpoints, ca, client_certificate, client_key, username, "
                    + "password_file, prefix, node, lease_ttl, request_timeout, sealing_keys, cache)")
    }
}
