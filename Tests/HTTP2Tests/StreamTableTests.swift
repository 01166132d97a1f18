import Testing
@testable import HTTP2

@Suite struct StreamTableTests {
    @Test func storesFindsChangesInPlaceAndRemoves() {
        var table = StreamTable<[Int]>()
        // Consecutive client ids and ids strided by powers of two (a peer aiming at one bucket).
        let ids = Set(Array(stride(from: Int32(1), to: 401, by: 2)) + (1...20).map { Int32(1) << $0 | 1 })
        for id in ids { table[id] = [Int(id)] }
        #expect(table.count == ids.count)
        for id in ids { table[id]!.append(0) }
        for id in ids { #expect(table[id] == [Int(id), 0]) }
        #expect(table[2] == nil && table[403] == nil)
        for id in ids { table.removeValue(forKey: id) }
        #expect(table.isEmpty)
    }

    @Test func spreadsStridedIdsOverBuckets() {
        // The bucket is the hash's low bits: ids that differ only above them must still spread.
        let hashes = Set((0..<64).map { StreamTable<Int>.Key(Int32(1 + 2048 * $0))._rawHashValue(seed: 12345) & 127 })
        #expect(hashes.count > 32)
    }
}
