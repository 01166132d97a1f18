/// A re-armable deadline. Re-arming later only stores the new deadline; the loop's heap holds at
/// most one entry per timer and, when that entry comes due early, pushes it again at the stored
/// deadline. Keep-alive traffic re-arms on every request, so this keeps heap work off the
/// per-request path.
///
/// A connection is its own timer (a subclass overriding `fire`), as nginx's connection carries
/// its timer event: no timer object and no closure per connection. The heap holds the timer while
/// it has an entry; an owner that closes cancels it, which takes the entry out at once (a disarmed
/// one's entry stays until its old deadline, for a re-arm to reuse). Owners with an occasional
/// deadline of their own use `ActionTimer`.
open class Timer {
    var deadline: UInt64 = 0       // 0: disarmed
    /// Where this timer's entry is in its loop's heap; -1: none.
    var heapIndex = -1

    public init() {}

    /// Runs on the loop thread when the deadline passes (after it was disarmed: a re-arm arms again).
    open func fire() {}

    public var isArmed: Bool { deadline != 0 }
}

/// A timer that runs a closure. An owner captures itself `unowned(unsafe)` and cancels (or
/// disarms for good) before it goes away: `unowned` would keep its memory, `weak` would give it a
/// side table that sends every retain and release of the object down the runtime's slow path.
public final class ActionTimer: Timer {
    private let action: () -> Void

    public init(_ action: @escaping () -> Void) {
        self.action = action
        super.init()
    }

    override public func fire() { action() }
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
