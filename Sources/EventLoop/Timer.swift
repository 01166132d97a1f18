/// A re-armable deadline owned by one object (a connection). Re-arming only stores the new
/// deadline; the loop's heap holds at most one entry per timer and, when that entry comes due
/// early, pushes it again at the stored deadline. Keep-alive traffic re-arms on every request,
/// so this keeps heap work off the per-request path.
public final class Timer {
    var deadline: UInt64 = 0       // 0: disarmed
    var queuedAt: UInt64 = 0       // deadline of this timer's heap entry; 0: none
    /// Runs on the loop thread. A connection captures itself `unowned(unsafe)` and disarms the
    /// timer when it closes, before it can go away (the loop holds it until then): a disarmed
    /// timer never fires, and may sit in the heap until its old deadline without keeping the
    /// connection's memory (`unowned` would) or giving it a weak-reference side table, which makes
    /// every retain and release of the object take the runtime's slow path (`weak` would).
    /// Settable, so an owner can hold its timer in a `let` (no lazy getter on every re-arm) and
    /// set what it does once its own init is done.
    public var fire: () -> Void

    public init(fire: @escaping () -> Void = {}) { self.fire = fire }

    public var isArmed: Bool { deadline != 0 }
}

struct TimerHeap {
    private var items: [(deadline: UInt64, timer: Timer)] = []

    var nextDeadline: UInt64? { items.first?.deadline }
    var isEmpty: Bool { items.isEmpty }

    mutating func push(_ deadline: UInt64, _ timer: Timer) {
        items.append((deadline, timer))
        var i = items.count - 1
        while i > 0 {
            let parent = (i - 1) / 2
            if items[parent].deadline <= items[i].deadline { break }
            items.swapAt(parent, i)
            i = parent
        }
    }

    mutating func pop() -> (deadline: UInt64, timer: Timer)? {
        guard !items.isEmpty else { return nil }
        let top = items[0]
        let last = items.removeLast()
        if !items.isEmpty {
            items[0] = last
            var i = 0
            while true {
                let l = 2 * i + 1, r = l + 1
                var m = i
                if l < items.count && items[l].deadline < items[m].deadline { m = l }
                if r < items.count && items[r].deadline < items[m].deadline { m = r }
                if m == i { break }
                items.swapAt(i, m)
                i = m
            }
        }
        return top
    }
}
