import Config
import Foundation
import Glibc
import Metrics
import TestSupport
import Testing
@testable import Health
@testable import Proxy

/// The checker against real sockets: a port nobody listens on fails, a listener answering 200 passes.
@Suite struct HealthCheckerTests {
    static func upstream(_ name: String, _ servers: [SocketAddressSpec], check: HealthCheck?) -> [String: Upstream] {
        var u = Upstream(name: name, servers: servers, balance: .roundRobin, keepalive: 1, keepaliveTimeout: 1, failTimeout: 1)
        u.healthCheck = check
        return [name: u]
    }

    static func fastCheck(rise: Int = 1, fall: Int = 2) -> HealthCheck {
        var c = HealthCheck(path: "/health")
        c.interval = 0.05; c.timeout = 1; c.rise = rise; c.fall = fall
        return c
    }

    static func waitUntil(_ seconds: Double = 5, _ condition: () -> Bool) -> Bool {
        let deadline = Date().addingTimeInterval(seconds)
        while Date() < deadline { if condition() { return true }; usleep(10_000) }
        return condition()
    }

    @Test func aRefusingServerGoesDownAfterFallChecks() throws {
        let board = UpstreamHealth()
        let checker = HealthChecker(board: board)
        let dead = SocketAddressSpec(host: "127.0.0.1", port: UInt16(try freePorts(1)[0]))  // nothing listens there
        checker.apply(Self.upstream("app", [dead], check: Self.fastCheck(fall: 2)))
        let server = board.server(upstream: "app", dead)
        #expect(server.isUp)  // up until proven otherwise
        #expect(Self.waitUntil { !server.isUp })
        let status = try #require(checker.statuses.first)
        #expect(status.state == "down" && status.checked && status.checks >= 2 && status.checkFailures == status.checks)
        #expect(status.lastCheck?.passed == false && status.lastCheck?.status == nil)
        #expect(checker.statusJSON().contains("\"consecutive_failures\""))
        // Dropping the check makes the server usable again at once.
        checker.apply(Self.upstream("app", [dead], check: nil))
        #expect(server.isUp && checker.statuses.first?.checked == false)
    }

    @Test func aServerKeptAcrossAReloadKeepsItsObjectAndRemovedOnesGo() {
        let board = UpstreamHealth()
        let a = SocketAddressSpec(host: "127.0.0.1", port: 1), b = SocketAddressSpec(host: "127.0.0.1", port: 2)
        board.apply(Self.upstream("app", [a, b], check: nil))
        let kept = board.server(upstream: "app", a)
        kept.requestCounter(loop: 0).addSingleWriter(0)
        board.apply(Self.upstream("app", [a], check: nil))
        #expect(board.server(upstream: "app", a) === kept && kept.requests == 1)
        #expect(board.all.map(\.server) == [a])
        // The same address under another upstream is another server.
        board.apply(Self.upstream("web", [a], check: nil))
        #expect(board.server(upstream: "web", a) !== kept)
    }
}
