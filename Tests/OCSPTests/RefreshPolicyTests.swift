import Foundation
import Testing
@testable import OCSP

@Suite struct RefreshPolicyTests {
    let start = Date(timeIntervalSince1970: 1_800_000_000)

    @Test func refreshesHalfWayThroughTheWindow() {
        let next = start.addingTimeInterval(7 * 86400)
        #expect(RefreshPolicy.refreshTime(thisUpdate: start, nextUpdate: next, now: start, jitter: 0) == start.addingTimeInterval(3.5 * 86400))
    }

    @Test func jitterMovesItByAtMostATenthOfTheWindow() {
        let next = start.addingTimeInterval(1000)
        #expect(RefreshPolicy.refreshTime(thisUpdate: start, nextUpdate: next, now: start, jitter: 1) == start.addingTimeInterval(600))
        #expect(RefreshPolicy.refreshTime(thisUpdate: start, nextUpdate: next, now: start, jitter: -1) == start.addingTimeInterval(400))
        #expect(RefreshPolicy.refreshTime(thisUpdate: start, nextUpdate: next, now: start, jitter: 5) == start.addingTimeInterval(600))
    }

    @Test func neverSoonerThanTheMinimumDelay() {
        // A response fetched late in its window (or with a tiny window) is not asked for in a loop.
        let next = start.addingTimeInterval(4)
        let now = start.addingTimeInterval(3)
        #expect(RefreshPolicy.refreshTime(thisUpdate: start, nextUpdate: next, now: now, jitter: 0) == now.addingTimeInterval(RefreshPolicy.minimumDelay))
    }

    @Test func retriesBackOffUpToAnHour() {
        #expect(RefreshPolicy.retryDelay(failures: 1, jitter: 0) == 30)
        #expect(RefreshPolicy.retryDelay(failures: 2, jitter: 0) == 60)
        #expect(RefreshPolicy.retryDelay(failures: 5, jitter: 0) == 480)
        #expect(RefreshPolicy.retryDelay(failures: 8, jitter: 0) == 3600)
        #expect(RefreshPolicy.retryDelay(failures: 1000, jitter: 0) == 3600)
        #expect(RefreshPolicy.retryDelay(failures: 1, jitter: 1) == 36)
        #expect(RefreshPolicy.retryDelay(failures: 1, jitter: -1) == 24)
    }
}
