/// Per-stream state keyed by stream identifier: a Dictionary whose keys skip SipHash, which
/// showed in profiles (a few lookups per stream, per frame). Identifiers are mixed by one
/// multiplication, seeded per table; peers choose them only within RFC 9113 §5.1.1's increasing
/// order, and a table never holds more than the concurrent-stream limit, so a probe chain stays short.
/// Inlinable, so each user gets it specialized (unspecialized, its accessors allocate).
public struct StreamTable<Value> {
    @usableFromInline var storage: [Key: Value] = [:]

    @inlinable public init() {}

    @inlinable public subscript(id: Int32) -> Value? {
        get { storage[Key(id)] }
        _modify { yield &storage[Key(id)] }
    }

    /// Runs `body` on the stream's value in place (nil: no such stream). One lookup, and no copy of
    /// the value: reading it out and storing it back would copy any buffer it holds.
    @inlinable
    public mutating func update<R>(_ id: Int32, _ body: (inout Value) -> R) -> R? {
        guard let i = storage.index(forKey: Key(id)) else { return nil }
        return body(&storage.values[i])
    }

    @inlinable @discardableResult
    public mutating func removeValue(forKey id: Int32) -> Value? { storage.removeValue(forKey: Key(id)) }

    @inlinable public var count: Int { storage.count }
    @inlinable public var isEmpty: Bool { storage.isEmpty }
    @inlinable public var values: Dictionary<Key, Value>.Values { storage.values }

    public struct Key: Hashable {
        @usableFromInline let id: Int32
        @inlinable init(_ id: Int32) { self.id = id }

        @inlinable public func hash(into hasher: inout Hasher) { hasher.combine(id) }

        /// Fibonacci hashing: the product's high bits, which every bit of the id (and the seed) reaches.
        @inlinable public func _rawHashValue(seed: Int) -> Int {
            Int(bitPattern: (UInt(bitPattern: Int(id) ^ seed) &* 0x9E37_79B9_7F4A_7C15) >> 20)
        }
    }
}
