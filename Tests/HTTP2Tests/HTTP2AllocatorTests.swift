import HTTP1
import Testing
@testable import HTTP2

@Suite struct HTTP2AllocatorTests {
    @Test func sizesFindTheSmallestClassThatHoldsThem() {
        #expect(HTTP2Allocator.sizeClass(0) == 0)
        #expect(HTTP2Allocator.sizeClass(48) == 0)
        #expect(HTTP2Allocator.sizeClass(49) == 1)
        #expect(HTTP2Allocator.sizeClass(112) == 1)
        #expect(HTTP2Allocator.sizeClass(113) == 2)
        #expect(HTTP2Allocator.sizeClass(1008) == 4)
        #expect(HTTP2Allocator.sizeClass(1009) == nil)
        for size in 0...1008 {
            let c = HTTP2Allocator.sizeClass(size)!
            #expect(HTTP2Allocator.capacity(ofClass: c) >= size)
            #expect(c == 0 || HTTP2Allocator.capacity(ofClass: c - 1) < size)
        }
    }

    @Test func freedBlocksServeTheNextAllocationsUpToTheKeptNumber() {
        let a = HTTP2Allocator()
        let mem = a.mem
        let keep = HTTP2Allocator.kept(ofClass: 1)
        #expect(keep == 1024)
        let blocks = (0..<(keep + 10)).map { _ in mem.malloc(100, mem.mem_user_data)! }
        #expect(Set(blocks).count == blocks.count)
        for b in blocks {
            #expect(Int(bitPattern: b) % 16 == 0, "16-byte aligned, as malloc's")
            b.initializeMemory(as: UInt8.self, repeating: 0xAB, count: 100)
        }
        for b in blocks { mem.free(b, mem.mem_user_data) }
        #expect(a.freeCounts() == [0, keep, 0, 0, 0], "the rest went back to malloc")
        let again = mem.malloc(60, mem.mem_user_data)!   // same class (112 usable bytes)
        #expect(blocks.contains(again))
        #expect(a.freeCounts()[1] == keep - 1)
        let zeroed = mem.calloc(10, 10, mem.mem_user_data)!.assumingMemoryBound(to: UInt8.self)
        #expect((0..<100).allSatisfy { zeroed[$0] == 0 }, "calloc clears a recycled block")
        mem.free(zeroed, mem.mem_user_data)
        mem.free(again, mem.mem_user_data)
        mem.free(nil, mem.mem_user_data)
    }

    @Test func reallocKeepsTheBytesAcrossClassesAndBeyondThem() {
        let a = HTTP2Allocator()
        let mem = a.mem
        func pattern(_ i: Int) -> UInt8 { UInt8(truncatingIfNeeded: i &* 7 &+ 3) }
        var p = mem.realloc(nil, 10, mem.mem_user_data)!
        var size = 10
        for i in 0..<size { p.storeBytes(of: pattern(i), toByteOffset: i, as: UInt8.self) }
        for next in [40, 48, 200, 1008, 1009, 5000, 100] {   // within a class, across, past them, back down
            p = mem.realloc(p, next, mem.mem_user_data)!
            #expect((0..<min(size, next)).allSatisfy { p.load(fromByteOffset: $0, as: UInt8.self) == pattern($0) }, "to \(next)")
            for i in 0..<next { p.storeBytes(of: pattern(i), toByteOffset: i, as: UInt8.self) }
            size = next
        }
        mem.free(p, mem.mem_user_data)
        #expect(a.freeCounts().reduce(0, +) == 3, "the 64-, 256- and 1024-byte blocks it grew out of")
    }

    /// Many streams at once, then all closed, twice: the second round runs on recycled blocks.
    @Test func sessionsRunOnRecycledMemory() throws {
        let allocator = HTTP2Allocator()
        let p = try Pair(allocator: allocator)
        for _ in 0..<2 {
            let ids = (0..<50).map { _ in p.client.submitRequest(fields: get + [HTTPField(name: "x-n", value: "1")], hasBody: false) }
            p.run()
            for id in ids {
                #expect(p.server.submitResponse(stream: id, status: 200, fields: [HTTPField(name: "content-type", value: "text/plain")], hasBody: true))
                Array("body of \(id)".utf8).withUnsafeBytes { p.server.sendData(stream: id, $0) }
                p.server.finishData(stream: id)
            }
            p.run()
            #expect(ids.allSatisfy { p.c.bodies[$0] == Array("body of \($0)".utf8) && p.s.closed[$0] == 0 })
            #expect(allocator.freeCounts().reduce(0, +) > 0)
        }
    }
}
