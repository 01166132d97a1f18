import Foundation

/// When to ask the responder again. Pure, so the schedule is unit-tested without a clock.
public enum RefreshPolicy {
    /// Never sooner than this after a good response, however short its validity.
    public static let minimumDelay: TimeInterval = 10
    /// The first retry after a failure; it doubles per failure in a row up to `maximumRetryDelay`.
    public static let firstRetryDelay: TimeInterval = 30
    public static let maximumRetryDelay: TimeInterval = 3600

    /// Half way between thisUpdate and nextUpdate (Caddy's point; HAProxy also refreshes well
    /// before expiry), moved by up to ±10 % of the window (`jitter` in -1...1) so a fleet does not
    /// ask at once, and never sooner than `minimumDelay` from `now`. A failed refresh leaves the
    /// other half of the window for retries while the last good response is still stapled.
    public static func refreshTime(thisUpdate: Date, nextUpdate: Date, now: Date, jitter: Double) -> Date {
        let window = max(0, nextUpdate.timeIntervalSince(thisUpdate))
        let at = thisUpdate.addingTimeInterval(window * (0.5 + 0.1 * clamp(jitter)))
        return max(at, now.addingTimeInterval(minimumDelay))
    }

    /// The wait after `failures` (≥ 1) failed attempts in a row: 30 s doubling, capped at an hour,
    /// ±20 % (`jitter` in -1...1), so a responder that is down is not asked in a tight loop.
    public static func retryDelay(failures: Int, jitter: Double) -> TimeInterval {
        let base = min(maximumRetryDelay, firstRetryDelay * pow(2, Double(min(max(failures, 1), 20) - 1)))
        return base * (1 + 0.2 * clamp(jitter))
    }

    private static func clamp(_ jitter: Double) -> Double { min(1, max(-1, jitter)) }
}
