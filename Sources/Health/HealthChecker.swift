import Config
import Dispatch
import Foundation
import Logs
import Proxy
import Locking

/// Runs the upstreams' active health checks off the event loops. Each server with a
/// `health_check` is probed once per interval for the whole process (not once per loop): a
/// blocking HTTP/1.1 request on a Dispatch worker (`HealthProbe`), its result fed to the server's
/// `HealthState`, and up/down published to the `ServerHealth` every loop's pool reads when it
/// picks a server. Checks of one server never overlap: the next is scheduled when one ends.
public final class HealthChecker: Sendable {
    /// One checked server: its settings, its state machine and what the admin API shows.
    struct Entry {
        let server: ServerHealth
        var check: HealthCheck
        /// The upstream's `proxy_protocol`: checks open with a header too.
        var proxyProtocol: Int?
        /// The upstream's `tls`: checks go over TLS with the same trust, name and client certificate.
        var tls: UpstreamTLS?
        /// Changes with the check: a check started under an earlier configuration drops its result.
        var generation: Int
        var state: HealthState
        var checks = 0
        var failures = 0
        var last: HealthProbe.Result?
    }

    private struct Table {
        var generation = 0
        var entries: [ObjectIdentifier: Entry] = [:]
    }

    private let board: UpstreamHealth
    private let table = Locked(Table())

    public init(board: UpstreamHealth = .shared) { self.board = board }

    /// Start-up and reload: servers and checks follow `upstreams`. A server kept with the same
    /// check (and proxy_protocol) keeps its schedule; one whose check changed keeps its state and
    /// counts, takes the new rise/fall and is checked again at once; servers without a check are
    /// up. Call before the loops take the configuration, so their pools find the same objects.
    public func apply(_ upstreams: [String: Upstream]) {
        let servers = board.apply(upstreams)
        let started: [(server: ServerHealth, generation: Int, jitter: Double)] = table.withLock { table in
            table.generation += 1
            var next: [ObjectIdentifier: Entry] = [:]
            var started: [(server: ServerHealth, generation: Int, jitter: Double)] = []
            for server in servers {
                guard let upstream = upstreams[server.upstream], let check = upstream.healthCheck else {
                    server.publish(up: true)
                    continue
                }
                let key = ObjectIdentifier(server)
                var entry = table.entries[key] ?? Entry(server: server, check: check, proxyProtocol: upstream.proxyProtocol,
                                                        generation: 0, state: HealthState(rise: check.rise, fall: check.fall))
                if entry.generation == 0 || entry.check != check || entry.proxyProtocol != upstream.proxyProtocol || entry.tls != upstream.tls {
                    entry.check = check
                    entry.proxyProtocol = upstream.proxyProtocol
                    entry.tls = upstream.tls
                    entry.generation = table.generation
                    entry.state.rise = check.rise
                    entry.state.fall = check.fall
                    started.append((server, table.generation, check.jitter))
                }
                server.publish(up: entry.state.up)
                next[key] = entry
            }
            table.entries = next
            return started
        }
        // The first check at once (give or take the jitter), not an interval after start.
        for s in started { schedule(s.server, s.generation, after: Double.random(in: 0...s.jitter)) }
    }

    private func schedule(_ server: ServerHealth, _ generation: Int, after seconds: Double) {
        DispatchQueue.global(qos: .utility).asyncAfter(deadline: .now() + seconds) { [self] in run(server, generation) }
    }

    private func run(_ server: ServerHealth, _ generation: Int) {
        let key = ObjectIdentifier(server)
        // Removed or changed by a reload: that chain ends here.
        guard let current = table.withLock({ t in t.entries[key].flatMap { $0.generation == generation ? $0 : nil } }) else { return }
        let check = current.check
        let result = HealthProbe.run(check, on: server.server, proxyProtocol: current.proxyProtocol,
                                     tls: current.tls.map { ($0, UpstreamTLSContexts.shared.current(server.upstream)) })
        let outcome: (change: HealthState.Change, allDown: Bool)? = table.withLock { t in
            guard var entry = t.entries[key], entry.generation == generation else { return nil }
            entry.checks += 1
            if !result.passed { entry.failures += 1 }
            entry.last = result
            let change = entry.state.record(passed: result.passed)
            server.publish(up: entry.state.up)
            t.entries[key] = entry
            let allDown = change == .wentDown && !t.entries.values.contains { $0.server.upstream == server.upstream && $0.state.up }
            return (change, allDown)
        }
        guard let outcome else { return }
        report(server, check, result, outcome.change, allDown: outcome.allDown)
        schedule(server, generation, after: check.interval + Double.random(in: 0...check.jitter))
    }

    private func report(_ server: ServerHealth, _ check: HealthCheck, _ result: HealthProbe.Result, _ change: HealthState.Change,
                        allDown: Bool) {
        let name = "upstream \(server.upstream) server \(server.server)"
        switch change {
        case .wentDown:
            Log.warning("\(name) is down after \(check.fall) failed health check(s) in a row (last: \(result.detail)); "
                        + "it gets no requests until \(check.rise) pass")
        case .cameUp:
            Log.info("\(name) is up again after \(check.rise) passed health check(s) in a row")
        case .none:
            if !result.passed { Log.debug("\(name): health check failed: \(result.detail)") }
        }
        if allDown {
            Log.error("upstream \(server.upstream): every server is down; its routes answer 503 until one passes its health check")
        }
    }

    // MARK: What the admin API and metrics show

    /// Every server of every upstream (by upstream name, servers in configuration order), checked or not.
    public var statuses: [ServerStatus] {
        let servers = board.all
        // One snapshot: a check publishes its server's state under this lock, with its counters (a
        // state read after the lock could be newer than the counters: "up" after one pass of two).
        let (entries, up) = table.withLock { t in (t.entries, servers.map(\.isUp)) }
        return zip(servers, up).map { server, up in
            let entry = entries[ObjectIdentifier(server)]
            return ServerStatus(upstream: server.upstream, address: server.server.description,
                                state: up ? "up" : "down", checked: entry != nil,
                                consecutivePasses: entry?.state.passes ?? 0, consecutiveFailures: entry?.state.failures ?? 0,
                                checks: entry?.checks ?? 0, checkFailures: entry?.failures ?? 0, requests: server.requests,
                                lastCheck: entry?.last, check: entry.map { CheckSummary($0.check) })
        }
    }

    /// `GET /upstreams`: `{"upstreams": [{"name", "servers": [...]}]}`.
    public func statusJSON() -> String {
        let groups = Dictionary(grouping: statuses, by: \.upstream).sorted { $0.key < $1.key }
            .map { UpstreamStatus(name: $0.key, servers: $0.value) }
        let encoder = JSONEncoder()
        encoder.keyEncodingStrategy = .convertToSnakeCase
        encoder.dateEncodingStrategy = .iso8601
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        let data = (try? encoder.encode(["upstreams": groups])) ?? Data("{\"upstreams\":[]}".utf8)
        return String(decoding: data, as: UTF8.self) + "\n"
    }
}

public struct UpstreamStatus: Sendable, Encodable {
    public var name: String
    public var servers: [ServerStatus]
}

public struct ServerStatus: Sendable, Encodable {
    public var upstream: String
    public var address: String
    /// "up" or "down" (active checks only; passive skips are per loop and short).
    public var state: String
    /// False: the upstream has no health_check, the server is always up.
    public var checked: Bool
    public var consecutivePasses: Int
    public var consecutiveFailures: Int
    /// Checks run and failed since the server was first configured.
    public var checks: Int
    public var checkFailures: Int
    /// Requests sent to the server, from every loop.
    public var requests: Int
    public var lastCheck: HealthProbe.Result?
    public var check: CheckSummary?
}

/// The check's settings as the admin API shows them.
public struct CheckSummary: Sendable, Encodable {
    public var method: String
    public var path: String
    public var host: String?
    public var expect: String
    public var intervalSeconds: Double
    public var timeoutSeconds: Double
    public var rise: Int
    public var fall: Int

    init(_ c: HealthCheck) {
        method = c.method; path = c.path; host = c.host
        expect = c.expectText
        intervalSeconds = c.interval; timeoutSeconds = c.timeout; rise = c.rise; fall = c.fall
    }
}
