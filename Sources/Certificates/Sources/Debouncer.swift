/// Coalesces file events: a certificate and its key written one after the other become one
/// update. Fires once no event arrived for `quiet` seconds, or `maxDelay` after the first event
/// of a burst (so a directory that never stops changing still gets applied). Pure: times are
/// passed in, so it is unit-tested without a clock.
public struct Debouncer: Sendable {
    public let quiet: Double
    public let maxDelay: Double
    private var firstAt: Double?
    private var lastAt: Double = 0
    public private(set) var pending: Set<String> = []

    public init(quiet: Double = 0.02, maxDelay: Double = 0.25) {
        self.quiet = quiet; self.maxDelay = maxDelay
    }

    /// Records an event about `base`; returns when to call `fire` next.
    public mutating func event(_ base: String, at now: Double) -> Double {
        if firstAt == nil { firstAt = now }
        lastAt = now
        pending.insert(base)
        return deadline!
    }

    /// When the pending batch is due; nil when nothing is pending.
    public var deadline: Double? {
        guard let firstAt else { return nil }
        return min(lastAt + quiet, firstAt + maxDelay)
    }

    /// The batch, if it is due at `now` (and then the debouncer starts over); nil otherwise.
    public mutating func fire(at now: Double) -> Set<String>? {
        guard let due = deadline, now >= due else { return nil }
        let batch = pending
        pending = []
        firstAt = nil
        return batch
    }
}
