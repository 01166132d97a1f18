internal import CNghttp2
#if canImport(Glibc)
import Glibc
#endif

/// nghttp2's memory for the sessions of one event loop, recycled. Every stream costs nghttp2 a few
/// small blocks (the stream, its outbound items, header copies), and a client's batch of HEADERS
/// asks for them in bursts larger than glibc's per-thread cache keeps (7 blocks per size), so most
/// went through the arena's locked paths (an eighth of an HTTP/2 request's user-space time in a
/// profile). Blocks of up to 1 KiB come back to a free list per power-of-two size, up to
/// `keptBytes` of each (so at most 640 KiB per loop after a burst, as HAProxy's per-thread pool
/// cache keeps 512 KiB); larger ones go to malloc and back.
///
/// Like the loop's buffers, it is used from the loop's thread only. Each session holds it, so it
/// outlives the session's last free.
public final class HTTP2Allocator: @unchecked Sendable {
    /// Bytes kept per size class: 2,048 blocks of 64 bytes down to 128 of 1 KiB, enough for the
    /// hundreds of streams a loop's connections open at once.
    public static let keptBytes = 128 * 1024
    static let classes = 5            // 64, 128, 256, 512, 1024-byte blocks
    static let header = 16            // the block's class, then (while free) the next free block; keeps 16-byte alignment
    static let unrecycled = -1

    /// One list head and count per class: plain memory, so the C callbacks reach it without ARC.
    private let lists: UnsafeMutablePointer<FreeList>

    struct FreeList {
        var head: UnsafeMutableRawPointer?
        var count: Int
    }

    public init() {
        lists = .allocate(capacity: Self.classes)
        lists.initialize(repeating: FreeList(head: nil, count: 0), count: Self.classes)
    }

    deinit {
        for c in 0..<Self.classes {
            var block = lists[c].head
            while let b = block {
                block = b.load(fromByteOffset: 8, as: UnsafeMutableRawPointer?.self)
                Glibc.free(b)
            }
        }
        lists.deallocate()
    }

    /// Blocks on the free list of each class (for tests).
    func freeCounts() -> [Int] { (0..<Self.classes).map { lists[$0].count } }

    /// The callbacks for `nghttp2_session_*_new3`; nghttp2 copies the struct.
    var mem: nghttp2_mem {
        nghttp2_mem(mem_user_data: UnsafeMutableRawPointer(lists),
                    malloc: { size, user in HTTP2Allocator.allocate(size, user!.assumingMemoryBound(to: FreeList.self)) },
                    free: { p, user in HTTP2Allocator.release(p, user!.assumingMemoryBound(to: FreeList.self)) },
                    calloc: { n, size, user in
                        let (total, overflow) = n.multipliedReportingOverflow(by: size)
                        guard !overflow, let p = HTTP2Allocator.allocate(total, user!.assumingMemoryBound(to: FreeList.self)) else { return nil }
                        p.initializeMemory(as: UInt8.self, repeating: 0, count: total)
                        return p
                    },
                    realloc: { p, size, user in HTTP2Allocator.reallocate(p, size, user!.assumingMemoryBound(to: FreeList.self)) })
    }

    /// The smallest class whose blocks hold `size` bytes after the header, or nil past the largest.
    @inline(__always)
    static func sizeClass(_ size: Int) -> Int? {
        let need = size + header
        let c = need <= 64 ? 0 : (Int.bitWidth - (need - 1).leadingZeroBitCount) - 6
        return c < classes ? c : nil
    }

    @inline(__always)
    static func capacity(ofClass c: Int) -> Int { (64 << c) - header }

    /// Free blocks a class keeps.
    @inline(__always)
    static func kept(ofClass c: Int) -> Int { keptBytes / (64 << c) }

    static func allocate(_ size: Int, _ lists: UnsafeMutablePointer<FreeList>) -> UnsafeMutableRawPointer? {
        guard size >= 0 else { return nil }
        let block: UnsafeMutableRawPointer
        if let c = sizeClass(size) {
            if let b = lists[c].head {
                lists[c].head = b.load(fromByteOffset: 8, as: UnsafeMutableRawPointer?.self)
                lists[c].count -= 1
                block = b
            } else {
                guard let b = Glibc.malloc(64 << c) else { return nil }
                b.storeBytes(of: c, as: Int.self)
                block = b
            }
        } else {
            guard let b = Glibc.malloc(size + header) else { return nil }
            b.storeBytes(of: unrecycled, as: Int.self)
            block = b
        }
        return block + header
    }

    static func release(_ p: UnsafeMutableRawPointer?, _ lists: UnsafeMutablePointer<FreeList>) {
        guard let p else { return }
        let block = p - header
        let c = block.load(as: Int.self)
        guard c != unrecycled, lists[c].count < kept(ofClass: c) else {
            Glibc.free(block)
            return
        }
        block.storeBytes(of: lists[c].head, toByteOffset: 8, as: UnsafeMutableRawPointer?.self)
        lists[c].head = block
        lists[c].count += 1
    }

    static func reallocate(_ p: UnsafeMutableRawPointer?, _ size: Int, _ lists: UnsafeMutablePointer<FreeList>) -> UnsafeMutableRawPointer? {
        guard let p else { return allocate(size, lists) }
        let block = p - header
        let c = block.load(as: Int.self)
        if c == unrecycled {
            guard let grown = Glibc.realloc(block, size + header) else { return nil }
            // Grown past the classes or not, it stays a malloc block (freed as one).
            return grown + header
        }
        if size <= capacity(ofClass: c) { return p }
        guard let moved = allocate(size, lists) else { return nil }
        moved.copyMemory(from: p, byteCount: capacity(ofClass: c))
        release(p, lists)
        return moved
    }
}
