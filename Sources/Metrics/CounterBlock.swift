import Synchronization

/// Counters on cache lines of their own, for counting on the hot path without sharing a written
/// line between loops: the allocation is 128-byte aligned (two lines: adjacent-line prefetch pairs
/// them) and rounded up to whole 128-byte blocks, so no two blocks, and no block and an object
/// header, share a line. Each block has one writing thread (`addSingleWriter`: a relaxed load and
/// store, no locked instruction) or several (`add`); any thread may read.
public final class CounterBlock: @unchecked Sendable {  // the counters are atomics; the rest is immutable
    /// What the block belongs to (a `Metrics` instance's id for its shards; 0 when unused).
    public let owner: Int
    @usableFromInline let counters: UnsafeMutablePointer<Atomic<Int>>
    public let count: Int

    public init(count: Int, owner: Int = 0) {
        self.owner = owner
        self.count = count
        let bytes = (count * MemoryLayout<Int>.stride + 127) / 128 * 128
        counters = UnsafeMutableRawPointer.allocate(byteCount: bytes, alignment: 128)
            .bindMemory(to: Atomic<Int>.self, capacity: count)
        for i in 0..<count { (counters + i).initialize(to: Atomic(0)) }
    }

    deinit {
        counters.deinitialize(count: count)
        UnsafeMutableRawPointer(counters).deallocate()
    }

    /// From the block's one writing thread only. Readers on other threads see either value, never
    /// a torn one.
    @inlinable public func addSingleWriter(_ index: Int, _ n: Int = 1) {
        let counter = counters + index
        counter.pointee.store(counter.pointee.load(ordering: .relaxed) &+ n, ordering: .relaxed)
    }

    /// From any thread.
    @inlinable public func add(_ index: Int, _ n: Int = 1) {
        counters[index].wrappingAdd(n, ordering: .relaxed)
    }

    public func value(_ index: Int) -> Int { counters[index].load(ordering: .relaxed) }
    public func values() -> [Int] { (0..<count).map(value) }
}
