import Admin
import Health

extension Control {
    /// The upstream servers' families of `GET /metrics`.
    var upstreamMetrics: [PrometheusText.UpstreamServer] {
        health.statuses.map { s in
            PrometheusText.UpstreamServer(upstream: s.upstream, server: s.address, up: s.state == "up",
                                          checks: s.checked ? (s.checks - s.checkFailures, s.checkFailures) : nil,
                                          lastCheckSeconds: s.lastCheck?.latencySeconds, requests: s.requests)
        }
    }
}
