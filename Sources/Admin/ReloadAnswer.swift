import Certificates

/// `POST /reload`: what the certificate sources changed; `error` (and status 422) when the
/// configuration was refused and nothing changed.
public struct ReloadAnswer: Encodable, Sendable {
    public struct Refusal: Encodable, Sendable {
        public var source: String
        public var reason: String
    }

    public var applied: Int
    public var removed: Int
    public var unchanged: Int
    public var refused: [Refusal]
    public var error: String?

    public init(_ report: UpdateReport) {
        applied = report.applied; removed = report.removed; unchanged = report.unchanged
        refused = report.refused.map { Refusal(source: $0.source, reason: $0.reason) }
        error = report.configError
    }
}
