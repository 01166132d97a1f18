import Config
import EventLoop
import Synchronization
import Testing
@testable import Proxy

/// Upstream names resolved off the loops: literals need no lookup, names are looked up when a
/// configuration is applied and again on refresh, and a failing lookup keeps the last address.
@Suite struct UpstreamAddressesTests {
    final class FakeDNS: Sendable {
        let answers = Mutex<[String: String]>([:])
        let asked = Mutex<[String]>([])
        func resolve(_ host: String, _ port: UInt16) -> SocketAddress? {
            asked.withLock { $0.append(host) }
            return answers.withLock { $0[host] }.flatMap { try? SocketAddress.resolve(host: $0, port: port) }
        }
    }

    func upstream(_ servers: [SocketAddressSpec]) -> [String: Upstream] {
        ["app": Upstream(name: "app", servers: servers, balance: .roundRobin, keepalive: 1, keepaliveTimeout: 1, failTimeout: 1)]
    }

    @Test func literalsNamesRefreshAndFailures() {
        let dns = FakeDNS()
        dns.answers.withLock { $0["origin.internal"] = "10.0.0.1" }
        let addresses = UpstreamAddresses { dns.resolve($0, $1) }
        let name = SocketAddressSpec(host: "origin.internal", port: 8080)
        let literal = SocketAddressSpec(host: "192.0.2.9", port: 80)
        let v6 = SocketAddressSpec(host: "::1", port: 81)
        addresses.apply(upstream([name, literal, v6]))
        #expect(addresses.address(name)?.description == "10.0.0.1:8080")
        #expect(addresses.address(literal)?.description == "192.0.2.9:80" && addresses.address(v6)?.description == "[::1]:81")
        #expect(dns.asked.withLock { $0 } == ["origin.internal"])  // literals are never looked up
        // The name moves; a refresh follows it.
        dns.answers.withLock { $0["origin.internal"] = "10.0.0.2" }
        addresses.refresh(name)
        #expect(addresses.address(name)?.description == "10.0.0.2:8080")
        // It stops resolving: the last address stays.
        dns.answers.withLock { $0["origin.internal"] = nil }
        addresses.refresh(name)
        #expect(addresses.address(name)?.description == "10.0.0.2:8080")
        // A name that never resolved has no address; applying again does not look known names up.
        let unknown = SocketAddressSpec(host: "nowhere.internal", port: 1)
        addresses.apply(upstream([name, unknown]))
        #expect(addresses.address(unknown) == nil && addresses.address(name)?.description == "10.0.0.2:8080")
        #expect(dns.asked.withLock { $0 }.filter { $0 == "origin.internal" }.count == 3)
        // Servers no longer configured are forgotten.
        addresses.apply(upstream([literal]))
        #expect(addresses.address(name) == nil)
    }
}
