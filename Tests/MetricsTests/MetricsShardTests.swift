import Foundation
import Metrics
import Synchronization
import Testing

@Suite struct MetricsShardTests {
    /// Runs `body` on `threads` new threads at once and waits for all of them.
    private func onThreads(_ threads: Int, _ body: @escaping @Sendable (Int) -> Void) {
        let done = DispatchGroup()
        for i in 0..<threads {
            done.enter()
            let t = Thread { body(i); done.leave() }
            t.start()
        }
        done.wait()
    }

    @Test func shardsFromSeveralThreadsSum() {
        let m = Metrics()
        onThreads(4) { i in
            // Three threads own a shard; the fourth writes the shared fallback shard meanwhile.
            if i < 3 { m.registerCurrentThread() }
            for _ in 0..<100_000 { m.response(status: 200, http2: i % 2 == 0) }
            for _ in 0..<1_000 { m.connectionOpened() }
            for _ in 0..<400 { m.connectionClosed() }
        }
        let t = m.totals()
        #expect(t[.responses2xx] == 400_000)
        #expect(t[.requestsHTTP1] + t[.requestsHTTP2] == 400_000)
        #expect(t[.requestsHTTP2] == 200_000)
        #expect(t[.openConnections] == 4 * 600)
        #expect(t[.responses5xx] == 0)
    }

    /// A connection opened on one thread may be counted closed on another: only the sum is a gauge.
    @Test func gaugeStaysRightAcrossShards() {
        let m = Metrics()
        onThreads(1) { _ in m.registerCurrentThread(); for _ in 0..<10 { m.connectionOpened() } }
        onThreads(1) { _ in m.registerCurrentThread(); for _ in 0..<7 { m.connectionClosed() } }
        #expect(m.totals()[.openConnections] == 3)
    }

    /// A thread's shard belongs to one Metrics: another instance's events go to its own counters.
    @Test func shardsBelongToTheirInstance() {
        let a = Metrics(), b = Metrics()
        onThreads(1) { _ in
            a.registerCurrentThread()
            a.handshakeCompleted(tls13: true)
            b.handshakeCompleted(tls13: false)
            b.registerCurrentThread()  // replaces a's shard on this thread; a keeps its counts
            b.handshakeFailed()
            a.handshakeFailed()
        }
        #expect(a.totals()[.handshakesTLS13] == 1 && a.totals()[.handshakesTLS12] == 0 && a.totals()[.handshakesFailed] == 1)
        #expect(b.totals()[.handshakesTLS12] == 1 && b.totals()[.handshakesFailed] == 1)
    }

    /// The scrape sees counts from loops while they keep counting (no count is lost or doubled).
    @Test func scrapeWhileCounting() {
        let m = Metrics()
        let stop = Mutex(false)
        onThreads(3) { i in
            if i == 2 {
                var last = 0
                while !stop.withLock({ $0 }) {
                    let now = m.totals()[.upstreamErrors]
                    #expect(now >= last)  // counters never go backwards between scrapes
                    last = now
                }
                return
            }
            m.registerCurrentThread()
            for _ in 0..<200_000 { m.upstreamError() }
            if i == 1 { Thread.sleep(forTimeInterval: 0.01) }
            if i == 0 { Thread.sleep(forTimeInterval: 0.02); stop.withLock { $0 = true } }
        }
        #expect(m.totals()[.upstreamErrors] == 400_000)
    }
}
