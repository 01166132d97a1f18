import Dispatch
@testable import EventLoop
import Testing

@Suite struct TimerHeapTests {
    /// Random sets (new entries, moves earlier and later), removals and pops against a plain
    /// dictionary: the heap keeps its order and every timer's index, and pops in deadline order.
    @Test func matchesAReferenceUnderRandomOperations() {
        var rng = SystemRandomNumberGenerator()
        let timers = (0..<64).map { _ in Timer() }
        var heap = TimerHeap()
        var reference: [ObjectIdentifier: UInt64] = [:]
        for _ in 0..<20_000 {
            let t = timers[Int.random(in: 0..<timers.count, using: &rng)]
            switch Int.random(in: 0..<4, using: &rng) {
            case 0, 1:
                let d = UInt64.random(in: 1...1_000, using: &rng)
                heap.set(t, d)
                reference[ObjectIdentifier(t)] = d
            case 2:
                heap.remove(t)
                reference[ObjectIdentifier(t)] = nil
            default:
                let earliest = reference.values.min()
                let popped = heap.popFirst()
                #expect((popped == nil) == (earliest == nil))
                if let popped {
                    #expect(reference[ObjectIdentifier(popped)] == earliest)
                    #expect(popped.heapIndex == -1)
                    reference[ObjectIdentifier(popped)] = nil
                }
            }
            #expect(heap.isValid)
            #expect(heap.count == reference.count)
            #expect(heap.queued(t) == reference[ObjectIdentifier(t)])
        }
        var last: UInt64 = 0
        while let t = heap.popFirst() {
            let d = reference.removeValue(forKey: ObjectIdentifier(t))!
            #expect(d >= last)
            last = d
        }
        #expect(reference.isEmpty)
    }

    /// Connections that close cancel their timers: the loop's heap does not keep an entry per
    /// connection closed within the last timeout (a disarmed timer keeps its entry for a re-arm).
    @Test func cancelledTimersLeaveTheHeapAtOnce() throws {
        let loop = try EventLoop(index: 0)
        loop.start(name: "timer-test")
        defer { loop.stop() }
        let done = DispatchSemaphore(value: 0)
        nonisolated(unsafe) var counts: [Int] = []
        nonisolated(unsafe) var fired = 0
        loop.execute {
            let timers = (0..<1000).map { _ in ActionTimer { fired += 1 } }
            for t in timers { loop.arm(t, seconds: 10) }
            counts.append(loop.queuedTimers)
            for t in timers[..<500] { loop.disarm(t) }
            counts.append(loop.queuedTimers)
            for t in timers { loop.cancel(t) }
            counts.append(loop.queuedTimers)
            let soon = ActionTimer { fired += 1; done.signal() }
            loop.arm(soon, seconds: 30)
            loop.arm(soon, seconds: 0.01)   // earlier: its one entry moves up
            counts.append(loop.queuedTimers)
        }
        #expect(done.wait(timeout: .now() + 5) == .success)
        #expect(counts == [1000, 1000, 0, 1])
        #expect(fired == 1)
    }
}
