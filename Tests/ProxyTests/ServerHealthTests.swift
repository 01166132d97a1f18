import Config
import Foundation
import Metrics
import Testing
@testable import Proxy

/// Requests sent to a server are counted per loop (each loop writes only its own counter) and
/// summed when read.
@Suite struct ServerHealthTests {
    @Test func perLoopCountsSum() {
        let health = UpstreamHealth().server(upstream: "app", SocketAddressSpec(host: "127.0.0.1", port: 9))
        let loops = 4, each = 50_000
        let done = DispatchGroup()
        for index in 0..<loops {
            done.enter()
            Thread {
                let counter = health.requestCounter(loop: index)
                for _ in 0..<each { counter.addSingleWriter(0) }
                done.leave()
            }.start()
        }
        done.wait()
        #expect(health.requests == loops * each)
        // A pool rebuilt on the same loop (a reload) keeps counting on the same counter.
        #expect(health.requestCounter(loop: 2) === health.requestCounter(loop: 2))
        health.requestCounter(loop: 2).addSingleWriter(0)
        #expect(health.requests == loops * each + 1)
    }
}
