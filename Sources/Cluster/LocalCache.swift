import Certificates
import Foundation
import Glibc

/// What this node serves from the cluster, kept on local disk exactly as etcd holds it (keys
/// still sealed, files 0600), so a restart while etcd is unreachable still serves everything the
/// node had. One file per record: `certificates/<hex of the etcd key>.json`.
public struct LocalCache: Sendable {
    public let directory: String

    public init(directory: String) { self.directory = directory }

    struct Entry: Codable {
        var key: String
        var modRevision: Int64
        var value: Data
        enum CodingKeys: String, CodingKey { case key, modRevision = "mod_revision", value }
    }

    private var certificates: String { directory + "/certificates" }

    private func path(_ key: String) -> String {
        certificates + "/" + key.utf8.map { String(format: "%02x", $0) }.joined() + ".json"
    }

    /// Every cached record; unreadable files are skipped with a log line by the caller's check.
    public func load() -> [StoredValue] {
        guard let names = try? FileManager.default.contentsOfDirectory(atPath: certificates) else { return [] }
        return names.filter { $0.hasSuffix(".json") }.compactMap { name in  // "*.tmp" leftovers are ignored
            guard let data = FileManager.default.contents(atPath: certificates + "/" + name),
                  let entry = try? JSONDecoder().decode(Entry.self, from: data) else { return nil }
            return StoredValue(key: entry.key, value: [UInt8](entry.value), createRevision: 0, modRevision: entry.modRevision)
        }
    }

    public func save(_ value: StoredValue) throws(ClusterError) {
        do {
            try FileManager.default.createDirectory(atPath: certificates, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
            let data = try JSONEncoder().encode(Entry(key: value.key, modRevision: value.modRevision, value: Data(value.value)))
            // Rename over the old file; no fsync per record: a file torn by a crash fails to decode
            // and is skipped, and the store has the record anyway.
            let target = path(value.key), tmp = target + ".tmp"
            guard FileManager.default.createFile(atPath: tmp, contents: data, attributes: [.posixPermissions: 0o600]),
                  rename(tmp, target) == 0 else {
                throw ClusterError(.store, "cannot write \(target): \(String(cString: strerror(errno)))")
            }
        } catch {
            throw ClusterError(.store, "cannot write the local cache in \(directory): \(error) (check its permissions)")
        }
    }

    public func remove(_ key: String) {
        unlink(path(key))
    }
}
