/// One server's health as its active checks see it, as a pure value: up or down, and the run of
/// equal results that moves it across. `fall` failures in a row take an up server down, `rise`
/// passes in a row bring a down one back (HAProxy's rise/fall, Envoy's healthy/unhealthy
/// thresholds). A server starts up, so a fresh proxy serves before the first check ends.
public struct HealthState: Sendable, Equatable {
    public enum Change: Sendable, Equatable { case none, wentDown, cameUp }

    public private(set) var up = true
    /// Consecutive passed and failed checks (one of them is 0 once a check has run).
    public private(set) var passes = 0
    public private(set) var failures = 0
    public var rise: Int
    public var fall: Int

    public init(rise: Int, fall: Int) { self.rise = rise; self.fall = fall }

    /// Takes one check's result; says whether the server changed sides.
    public mutating func record(passed: Bool) -> Change {
        if passed {
            passes += 1
            failures = 0
            if !up && passes >= rise { up = true; return .cameUp }
        } else {
            failures += 1
            passes = 0
            if up && failures >= fall { up = false; return .wentDown }
        }
        return .none
    }
}
