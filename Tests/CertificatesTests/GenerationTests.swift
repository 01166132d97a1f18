import Foundation
import Synchronization
import Testing
@testable import Certificates
@testable import TLS

/// Each thread keeps its own copy of the snapshot and of the ticket keys, refreshed when the
/// generation moves: a swap made on another thread is what the next handshake here sees.
@Suite struct GenerationTests {
    /// Runs `body` on a new thread and waits for it.
    private func onAnotherThread(_ body: @escaping @Sendable () -> Void) {
        let done = DispatchSemaphore(value: 0)
        Thread { body(); done.signal() }.start()
        done.wait()
    }

    @Test func snapshotSwapIsSeenByTheNextHandshake() throws {
        let a = try SnapshotTests.cert("a.test"), b = try SnapshotTests.cert("b.test")
        let first = Snapshot([a], defaultName: nil)
        let store = CertificateStore(first, strictSNI: false)
        #expect(store.local().snapshot === first)
        #expect(store.local().snapshot === first)  // unchanged generation: the copy serves
        let second = Snapshot([a, b], defaultName: nil)
        onAnotherThread { store.replace(with: second, strictSNI: true) }
        let seen = store.local()
        #expect(seen.snapshot === second)
        #expect(seen.strictSNI)
        #expect(seen.snapshot.resolve("b.test", offersECDSA: true, strict: true).1 == .exact)
    }

    /// A thread handshaking for two stores gets each store's own snapshot.
    @Test func copiesBelongToTheirStore() throws {
        let one = Snapshot([try SnapshotTests.cert("one.test")], defaultName: nil)
        let two = Snapshot([try SnapshotTests.cert("two.test")], defaultName: nil)
        let s1 = CertificateStore(one, strictSNI: false), s2 = CertificateStore(two, strictSNI: false)
        #expect(s1.local().snapshot === one)
        #expect(s2.local().snapshot === two)
        #expect(s1.local().snapshot === one)
    }

    /// Several threads keep copies; after a swap on another thread each of them sees it.
    @Test func everyThreadSeesTheSwap() throws {
        let first = Snapshot([try SnapshotTests.cert("first.test")], defaultName: nil)
        let second = Snapshot([try SnapshotTests.cert("second.test")], defaultName: nil)
        let store = CertificateStore(first, strictSNI: false)
        let threads = 4
        let cached = DispatchSemaphore(value: 0), swapped = DispatchSemaphore(value: 0), done = DispatchSemaphore(value: 0)
        let sawSecond = Atomic<Int>(0)
        for _ in 0..<threads {
            Thread {
                if store.local().snapshot === first { cached.signal() }
                swapped.wait()
                if store.local().snapshot === second { sawSecond.wrappingAdd(1, ordering: .relaxed) }
                done.signal()
            }.start()
        }
        for _ in 0..<threads { cached.wait() }
        store.replace(with: second, strictSNI: false)
        for _ in 0..<threads { swapped.signal() }
        for _ in 0..<threads { done.wait() }
        #expect(sawSecond.load(ordering: .relaxed) == threads)
    }

    @Test func ticketKeyChangesAreSeen() {
        let keys = TicketKeys()
        let before = keys.local()
        #expect(before.map(\.name) == keys.names)
        onAnotherThread { keys.rotate() }
        let after = keys.local()
        #expect(after.count == 2)
        #expect(after[1].name == before[0].name)  // the old key still decrypts
        #expect(after.map(\.name) == keys.names)
        let fleet = [TicketKeys.Key.random(notBefore: 1), TicketKeys.Key.random(notBefore: 2)]
        onAnotherThread { keys.install(fleet) }
        #expect(keys.local().map(\.name) == [fleet[1].name, fleet[0].name])
    }
}
