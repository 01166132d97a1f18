import Cluster
import Foundation
import Synchronization
import Testing

/// Against a real etcd (3.4, Debian's etcd-server) started per test.
@Suite struct EtcdClientTests {
    static func client(_ endpoints: [String], timeout: Double = 2, deadline: Double? = nil) throws -> EtcdClient {
        var configuration = EtcdClient.Configuration(endpoints: endpoints)
        configuration.requestTimeout = timeout
        configuration.deadline = deadline
        return try EtcdClient(configuration)
    }

    @Test func putRangePrefixDelete() throws {
        let etcd = try Etcd()
        let client = try Self.client([etcd.endpoint])
        let first = try client.put(key: "app/a".bytes, value: "1".bytes)
        let second = try client.put(key: "app/b".bytes, value: "2".bytes)
        _ = try client.put(key: "other".bytes, value: "3".bytes)
        #expect(second.revision == first.revision + 1)

        let one = try client.range(key: "app/a".bytes)
        #expect(one.kvs.map(\.valueString) == ["1"])
        #expect(one.kvs.first?.createRevision == first.revision && one.kvs.first?.version == 1)
        #expect(one.revision >= second.revision)
        #expect(try client.range(key: "missing".bytes).kvs.isEmpty)

        let app = try client.prefix("app/".bytes)
        #expect(app.kvs.map(\.keyString) == ["app/a", "app/b"])
        #expect(app.count == 2)
        let limited = try client.prefix("app/".bytes, limit: 1, keysOnly: true)
        #expect(limited.kvs.count == 1 && limited.more && limited.kvs[0].value.isEmpty)
        #expect(try client.prefix("app/".bytes, revision: first.revision).kvs.map(\.keyString) == ["app/a"])

        #expect(try client.deleteRange(key: "app/a".bytes).deleted == 1)
        #expect(try client.deleteRange(key: "app/".bytes, prefix: true).deleted == 1)
        #expect(try client.prefix("app/".bytes).kvs.isEmpty)
        #expect(try client.range(key: "other".bytes).kvs.count == 1)
    }

    @Test func oneClientServesSeveralThreadsAtOnce() throws {
        let etcd = try Etcd()
        let client = try Self.client([etcd.endpoint])
        let failures = Mutex<[String]>([])
        let group = DispatchGroup()
        for t in 0..<4 {
            group.enter()
            Thread {
                for i in 0..<25 {
                    do throws(EtcdError) { _ = try client.put(key: "n/\(t)/\(i)".bytes, value: "v".bytes) } catch {
                        failures.withLock { $0.append(error.description) }
                    }
                }
                group.leave()
            }.start()
        }
        group.wait()
        #expect(failures.withLock { $0 }.isEmpty)
        #expect(try client.prefix("n/".bytes, keysOnly: true).count == 100)
    }

    @Test func txnCreatesIfAbsentOnceAndFences() throws {
        let etcd = try Etcd()
        let client = try Self.client([etcd.endpoint])
        let lock = "locks/renew".bytes
        let won = try client.txn(compare: [.absent(lock)], success: [.put(key: lock, value: "node-1".bytes)],
                                 failure: [.range(key: lock)])
        #expect(won.succeeded)
        let lost = try client.txn(compare: [.absent(lock)], success: [.put(key: lock, value: "node-2".bytes)],
                                  failure: [.range(key: lock)])
        #expect(!lost.succeeded)
        guard case .range(let holder)? = lost.responses.first else { Issue.record("no range result"); return }
        #expect(holder.kvs.first?.valueString == "node-1")
        let modRevision = holder.kvs[0].modRevision

        // Fencing: a write conditioned on the holder's revision succeeds once, then the revision moved.
        let fenced = try client.txn(compare: [.unchanged(lock, since: modRevision), EtcdCompare(key: lock, .value("node-1".bytes))],
                                    success: [.put(key: "certs/a".bytes, value: "x".bytes), .put(key: lock, value: "node-1".bytes)])
        #expect(fenced.succeeded)
        let stale = try client.txn(compare: [.unchanged(lock, since: modRevision)], success: [.delete(key: lock)])
        #expect(!stale.succeeded)
        let version = try client.txn(compare: [EtcdCompare(key: lock, .version(1), .greater)], success: [.delete(key: lock)])
        #expect(version.succeeded)
        #expect(try client.range(key: lock).kvs.isEmpty)
    }

    @Test func leaseGrantKeepAliveRevoke() throws {
        let etcd = try Etcd()
        let client = try Self.client([etcd.endpoint])
        let lease = try client.leaseGrant(ttl: 30)
        #expect(lease.id != 0 && lease.ttl == 30)
        _ = try client.put(key: "members/n1".bytes, value: "up".bytes, lease: lease.id)
        #expect(try client.range(key: "members/n1".bytes).kvs.first?.lease == lease.id)
        let renewed = try client.leaseKeepAlive(id: lease.id)
        #expect(renewed.ttl > 0 && renewed.ttl <= 30)
        try client.leaseRevoke(id: lease.id)
        #expect(try client.range(key: "members/n1".bytes).kvs.isEmpty)
        #expect(try client.leaseKeepAlive(id: lease.id).ttl == 0)
        // etcd's own errors come back with its code and message.
        let error = #expect(throws: EtcdError.self) { try client.leaseRevoke(id: lease.id) }
        #expect(error?.code == .etcd && error?.etcdCode == 5)
        #expect(error?.message?.contains("lease not found") == true)
    }

    @Test func watchDeliversChangesFromARevisionAndCancelsPromptly() throws {
        let etcd = try Etcd()
        let client = try Self.client([etcd.endpoint])
        let before = try client.put(key: "w/old".bytes, value: "0".bytes)
        _ = try client.put(key: "elsewhere".bytes, value: "x".bytes)
        let watch = client.watch(prefix: "w/".bytes, fromRevision: before.revision)
        let seen = Mutex<[EtcdWatchEvent]>([])
        let outcome = Mutex<EtcdError?>(nil)
        let finished = Mutex<Date?>(nil)
        let thread = Thread {
            do throws(EtcdError) {
                try watch.run { batch in
                    seen.withLock { $0 += batch.events }
                    return true
                }
            } catch { outcome.withLock { $0 = error } }
            finished.withLock { $0 = Date() }
        }
        thread.start()
        func waitFor(_ count: Int) -> Bool {
            let deadline = Date().addingTimeInterval(5)
            while Date() < deadline { if seen.withLock({ $0.count }) >= count { return true }; usleep(10_000) }
            return false
        }
        #expect(waitFor(1))
        let put = try client.put(key: "w/new".bytes, value: "1".bytes)
        let deleted = try client.deleteRange(key: "w/old".bytes)
        #expect(waitFor(3))
        let events = seen.withLock { $0 }
        #expect(events.map(\.kind) == [.put, .put, .delete])
        #expect(events.map(\.kv.keyString) == ["w/old", "w/new", "w/old"])
        #expect(events[1].kv.modRevision == put.revision && events[1].kv.valueString == "1")
        #expect(events[2].kv.modRevision == deleted.revision)

        let cancelled = Date()
        watch.cancel()
        let deadline = Date().addingTimeInterval(3)
        while finished.withLock({ $0 }) == nil && Date() < deadline { usleep(5_000) }
        let end = try #require(finished.withLock { $0 })
        #expect(end.timeIntervalSince(cancelled) < 0.5)
        #expect(outcome.withLock { $0 }?.code == .cancelled)
    }

    @Test func watchStopsWhenTheCallbackSaysSo() throws {
        let etcd = try Etcd()
        let client = try Self.client([etcd.endpoint])
        let first = try client.put(key: "s/a".bytes, value: "1".bytes)
        _ = try client.put(key: "s/b".bytes, value: "2".bytes)
        var batches: [EtcdWatchBatch] = []
        try client.watch(prefix: "s/".bytes, fromRevision: first.revision).run { batch in
            batches.append(batch)
            return false
        }
        #expect(batches.count == 1)
        #expect(batches[0].events.first?.kv.keyString == "s/a")
    }

    @Test func compactedHistoryIsADistinctError() throws {
        let etcd = try Etcd()
        let client = try Self.client([etcd.endpoint])
        let first = try client.put(key: "c/a".bytes, value: "1".bytes)
        _ = try client.put(key: "c/a".bytes, value: "2".bytes)
        let last = try client.put(key: "c/a".bytes, value: "3".bytes)
        try client.compact(revision: last.revision)
        let watchError = #expect(throws: EtcdError.self) {
            try client.watch(prefix: "c/".bytes, fromRevision: first.revision).run { _ in true }
        }
        #expect(watchError?.code == .compacted)
        #expect(watchError?.compactRevision == last.revision)
        let rangeError = #expect(throws: EtcdError.self) { try client.range(key: "c/a".bytes, revision: first.revision) }
        #expect(rangeError?.code == .compacted)
        #expect(try client.range(key: "c/a".bytes).kvs.first?.valueString == "3")
    }

    @Test func failsOverFromADeadEndpoint() throws {
        let etcd = try Etcd()
        let dead = "http://127.0.0.1:\(try freePorts(1)[0])"
        let client = try Self.client([dead, etcd.endpoint])
        _ = try client.put(key: "f/a".bytes, value: "1".bytes)
        let started = Date()
        #expect(try client.range(key: "f/a".bytes).kvs.count == 1)
        // The live endpoint is now tried first.
        #expect(Date().timeIntervalSince(started) < 0.5)
        var seen = 0
        try client.watch(prefix: "f/".bytes, fromRevision: 1).run { batch in seen += batch.events.count; return false }
        #expect(seen == 1)
    }

    @Test func aWriteThatMayHaveBeenAppliedIsNotResent() throws {
        let etcd = try Etcd()
        let hung = try SilentListener()
        let client = try Self.client(["http://127.0.0.1:\(hung.port)", etcd.endpoint], timeout: 0.3, deadline: 3)
        // A read moves on to the live member after the hung one times out...
        #expect(try client.range(key: "x".bytes).kvs.isEmpty)
        // ...and is tried there first from then on; a write to the hung member is not repeated elsewhere.
        let other = try Self.client(["http://127.0.0.1:\(hung.port)", etcd.endpoint], timeout: 0.3, deadline: 3)
        let error = #expect(throws: EtcdError.self) { try other.put(key: "x".bytes, value: "1".bytes) }
        #expect(error?.code == .timeout)
        #expect(error?.mayHaveBeenApplied == true)
        #expect(error?.reason.contains("read back before retrying") == true)
        #expect(try client.range(key: "x".bytes).kvs.isEmpty)
    }

    /// Every member refusing connections is etcd down: said at once, not at the deadline.
    @Test func allEndpointsDeadFailsAtOnce() throws {
        let ports = try freePorts(2)
        let client = try Self.client(ports.map { "http://127.0.0.1:\($0)" }, timeout: 0.5, deadline: 5)
        let started = Date()
        let error = #expect(throws: EtcdError.self) { try client.range(key: "x".bytes) }
        let took = Date().timeIntervalSince(started)
        #expect(error?.code == .unreachable)
        #expect(error?.reason.contains("every etcd member refused the connection") == true)
        #expect(took < 1, "took \(took) s")
    }

    /// Members that accept but never answer are waited for up to the deadline.
    @Test func allEndpointsHungFailWithinTheDeadline() throws {
        let hung = [try SilentListener(), try SilentListener()]
        let client = try Self.client(hung.map { "http://127.0.0.1:\($0.port)" }, timeout: 0.3, deadline: 1)
        let started = Date()
        let error = #expect(throws: EtcdError.self) { try client.range(key: "x".bytes) }
        let took = Date().timeIntervalSince(started)
        #expect(error?.code == .timeout)
        #expect(error?.reason.contains("no etcd endpoint answered") == true)
        #expect(took >= 0.9 && took < 2, "took \(took) s")
    }
}

/// etcd with TLS client-certificate authentication, and with user/password authentication.
@Suite struct EtcdSecurityTests {
    @Test func mutualTLS() throws {
        let etcd = try Etcd(tls: true)
        var configuration = EtcdClient.Configuration(endpoints: [etcd.endpoint])
        configuration.trustRootsPEMFile = etcd.caPath
        configuration.clientCertificatePEMFile = etcd.clientCertPath
        configuration.clientKeyPEMFile = etcd.clientKeyPath
        configuration.requestTimeout = 2
        let client = try EtcdClient(configuration)
        _ = try client.put(key: "t/a".bytes, value: "1".bytes)
        #expect(try client.prefix("t/".bytes).kvs.count == 1)
        var seen = 0
        try client.watch(prefix: "t/".bytes, fromRevision: 1).run { batch in seen += batch.events.count; return false }
        #expect(seen == 1)

        // Without a client certificate the handshake is refused: a transport failure.
        var anonymous = configuration
        anonymous.clientCertificatePEMFile = nil
        anonymous.clientKeyPEMFile = nil
        anonymous.deadline = 1
        let error = #expect(throws: EtcdError.self) { try EtcdClient(anonymous).range(key: "t/a".bytes) }
        #expect(error?.code == .unreachable)
        // A certificate without its key is a configuration error.
        var half = configuration
        half.clientKeyPEMFile = nil
        #expect(throws: EtcdError.self) { try EtcdClient(half) }
    }

    @Test func usernameAndPassword() throws {
        // Short-lived simple tokens, so the test also sees one expire and be renewed.
        let etcd = try Etcd(extraArguments: ["--auth-token", "simple", "--auth-token-ttl", "1"])
        try etcd.ctl(["user", "add", "root:pw"])
        try etcd.ctl(["user", "grant-role", "root", "root"])
        try etcd.ctl(["auth", "enable"])

        var configuration = EtcdClient.Configuration(endpoints: [etcd.endpoint])
        configuration.username = "root"
        configuration.password = "pw"
        configuration.requestTimeout = 2
        let client = try EtcdClient(configuration)
        _ = try client.put(key: "a/k".bytes, value: "1".bytes)
        #expect(try client.range(key: "a/k".bytes).kvs.count == 1)
        usleep(2_500_000)
        #expect(try client.range(key: "a/k".bytes).kvs.count == 1)
        var seen = 0
        try client.watch(prefix: "a/".bytes, fromRevision: 1).run { batch in seen += batch.events.count; return false }
        #expect(seen == 1)

        let anonymous = try EtcdClient(EtcdClient.Configuration(endpoints: [etcd.endpoint]))
        let refused = #expect(throws: EtcdError.self) { try anonymous.range(key: "a/k".bytes) }
        #expect(refused?.code == .auth)
        var wrong = configuration
        wrong.password = "nope"
        let denied = #expect(throws: EtcdError.self) { try EtcdClient(wrong).range(key: "a/k".bytes) }
        #expect(denied?.code == .auth)
    }
}

/// Progress notifications (etcd 3.4 sends them every 10 minutes by default; the experimental
/// interval flag makes that fast enough to test): a batch without events, carrying the revision.
@Suite struct EtcdProgressTests {
    @Test func idleWatchGetsProgressNotifications() throws {
        let etcd = try Etcd(extraArguments: ["--experimental-watch-progress-notify-interval", "200ms"])
        let client = try EtcdClientTests.client([etcd.endpoint])
        let put = try client.put(key: "elsewhere".bytes, value: "1".bytes)
        var progress: EtcdWatchBatch?
        try client.watch(prefix: "quiet/".bytes).run { batch in
            progress = batch
            return false
        }
        #expect(progress?.events.isEmpty == true)
        #expect(progress?.revision == put.revision)
    }
}
