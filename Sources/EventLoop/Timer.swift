/// A re-armable deadline owned by one object (a connection). Re-arming later only stores the new
/// deadline; the loop's heap holds at most one entry per timer and, when that entry comes due
/// early, pushes it again at the stored deadline. Keep-alive traffic re-arms on every request,
/// so this keeps heap work off the per-request path. An owner that goes away cancels its timer,
/// which takes its entry out at once: the heap holds live timers only.
public final class Timer {
    var deadline: UInt64 = 0       // 0: disarmed
    /// Where this timer's entry is in its loop's heap; -1: none.
    var heapIndex = -1
    /// Runs on the loop thread. A connection captures itself `unowned(unsafe)` and cancels the
    /// timer when it closes, before it can go away (the loop holds it until then): a cancelled
    /// timer never fires, and leaves the heap, without keeping the connection's memory (`unowned`
    /// would) or giving it a weak-reference side table, which makes every retain and release of
    /// the object take the runtime's slow path (`weak` would).
    /// Settable, so an owner can hold its timer in a `let` (no lazy getter on every re-arm) and
    /// set what it does once its own init is done.
    public var fire: () -> Void

    public init(fire: @escaping () -> Void = {}) { self.fire = fire }

    public var isArmed: Bool { deadline != 0 }
}

/// A binary min-heap of timers by the deadline of their entry, each timer knowing its place, so
/// an entry can be moved earlier or taken out in O(log n) (a timer cancelled at its owner's close).
struct TimerHeap {
    private var items: [(deadline: UInt64, timer: Timer)] = []

    var nextDeadline: UInt64? { items.first?.deadline }
    var isEmpty: Bool { items.isEmpty }
    var count: Int { items.count }

    /// The deadline of `timer`'s entry, or nil when it has none.
    func queued(_ timer: Timer) -> UInt64? { timer.heapIndex >= 0 ? items[timer.heapIndex].deadline : nil }

    /// Adds an entry for `timer`, which has none, or moves its entry to `deadline`.
    mutating func set(_ timer: Timer, _ deadline: UInt64) {
        if timer.heapIndex >= 0 {
            let i = timer.heapIndex
            let earlier = deadline < items[i].deadline
            items[i].deadline = deadline
            if earlier { siftUp(i) } else { siftDown(i) }
            return
        }
        items.append((deadline, timer))
        timer.heapIndex = items.count - 1
        siftUp(items.count - 1)
    }

    /// Takes out the earliest entry.
    mutating func popFirst() -> Timer? {
        guard let first = items.first?.timer else { return nil }
        remove(at: 0)
        return first
    }

    /// Takes out `timer`'s entry, if it has one.
    mutating func remove(_ timer: Timer) {
        if timer.heapIndex >= 0 { remove(at: timer.heapIndex) }
    }

    private mutating func remove(at i: Int) {
        items[i].timer.heapIndex = -1
        let last = items.removeLast()
        guard i < items.count else { return }
        items[i] = last
        last.timer.heapIndex = i
        if i > 0 && items[(i - 1) / 2].deadline > last.deadline { siftUp(i) } else { siftDown(i) }
    }

    private mutating func siftUp(_ start: Int) {
        var i = start
        while i > 0 {
            let parent = (i - 1) / 2
            if items[parent].deadline <= items[i].deadline { break }
            swapAt(parent, i)
            i = parent
        }
    }

    private mutating func siftDown(_ start: Int) {
        var i = start
        while true {
            let l = 2 * i + 1, r = l + 1
            var m = i
            if l < items.count && items[l].deadline < items[m].deadline { m = l }
            if r < items.count && items[r].deadline < items[m].deadline { m = r }
            if m == i { return }
            swapAt(i, m)
            i = m
        }
    }

    private mutating func swapAt(_ a: Int, _ b: Int) {
        items.swapAt(a, b)
        items[a].timer.heapIndex = a
        items[b].timer.heapIndex = b
    }

    /// The heap order and every timer's index hold (tests).
    var isValid: Bool {
        items.indices.allSatisfy { i in items[i].timer.heapIndex == i && (i == 0 || items[(i - 1) / 2].deadline <= items[i].deadline) }
    }
}
