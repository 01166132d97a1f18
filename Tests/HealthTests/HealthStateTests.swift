import Testing
@testable import Health

/// The rise/fall state machine on its own: no sockets, no clocks.
@Suite struct HealthStateTests {
    /// Feeds results, returning the changes they caused.
    static func feed(_ state: inout HealthState, _ results: [Bool]) -> [HealthState.Change] {
        results.map { state.record(passed: $0) }
    }

    @Test func startsUpAndGoesDownOnlyAfterFallFailuresInARow() {
        var s = HealthState(rise: 2, fall: 3)
        #expect(s.up)
        #expect(Self.feed(&s, [false, false]) == [.none, .none])
        #expect(s.up && s.failures == 2)
        #expect(s.record(passed: false) == .wentDown)
        #expect(!s.up && s.failures == 3 && s.passes == 0)
        // Further failures change nothing but the run's length.
        #expect(s.record(passed: false) == .none && s.failures == 4)
    }

    @Test func aPassBetweenFailuresStartsTheCountAgain() {
        var s = HealthState(rise: 2, fall: 3)
        #expect(Self.feed(&s, [false, false, true, false, false]) == [.none, .none, .none, .none, .none])
        #expect(s.up && s.failures == 2 && s.passes == 0)
        #expect(s.record(passed: false) == .wentDown)
    }

    @Test func comesBackOnlyAfterRisePassesInARow() {
        var s = HealthState(rise: 2, fall: 1)
        #expect(s.record(passed: false) == .wentDown)
        #expect(Self.feed(&s, [true, false, true]) == [.none, .none, .none])
        #expect(!s.up && s.passes == 1)
        #expect(s.record(passed: true) == .cameUp)
        #expect(s.up && s.passes == 2 && s.failures == 0)
        #expect(s.record(passed: true) == .none)
    }

    @Test func riseAndFallOfOneFollowEachResult() {
        var s = HealthState(rise: 1, fall: 1)
        #expect(Self.feed(&s, [true, false, false, true, true, false]) == [.none, .wentDown, .none, .cameUp, .none, .wentDown])
    }

    @Test func newThresholdsApplyToTheRunSoFar() {
        // A reload lowering rise lets a server with enough passes already come back on the next one.
        var s = HealthState(rise: 5, fall: 1)
        #expect(Self.feed(&s, [false, true, true, true]) == [.wentDown, .none, .none, .none])
        s.rise = 2
        #expect(s.record(passed: true) == .cameUp)
    }
}
