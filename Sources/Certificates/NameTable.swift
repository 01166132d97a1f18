/// SNI name → entry, split into 256 immutable shards so that a snapshot update copies only the
/// shards it touches (a few hundred entries each at 100,000 names) instead of one dictionary
/// holding every name. Lookups cost one extra hash.
public struct NameTable: Sendable {
    final class Shard: Sendable {
        let map: [String: Snapshot.Entry]
        init(_ map: [String: Snapshot.Entry]) { self.map = map }
    }

    static let shardCount = 256
    private static let empty = Shard([:])
    private var shards: [Shard] = Array(repeating: NameTable.empty, count: NameTable.shardCount)
    public private(set) var count = 0

    public init() {}

    init(_ map: [String: Snapshot.Entry]) {
        set(map.map { ($0.key, Optional($0.value)) })
    }

    @inline(__always)
    static func shard(of name: String) -> Int { name.hashValue & (shardCount - 1) }

    public subscript(name: String) -> Snapshot.Entry? {
        shards[Self.shard(of: name)].map[name]
    }

    /// Sets (or with nil removes) entries; each touched shard is copied once per call.
    mutating func set(_ changes: [(String, Snapshot.Entry?)]) {
        var byShard: [Int: [(String, Snapshot.Entry?)]] = [:]
        for change in changes { byShard[Self.shard(of: change.0), default: []].append(change) }
        for (index, list) in byShard {
            var map = shards[index].map
            for (name, entry) in list {
                let had = map[name] != nil
                map[name] = entry
                count += (entry != nil ? 1 : 0) - (had ? 1 : 0)
            }
            shards[index] = Shard(map)
        }
    }
}
