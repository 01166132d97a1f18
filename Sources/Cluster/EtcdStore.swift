import Config
import ControlClient
import Foundation

/// The cluster's `SharedStore` on etcd (`EtcdClient`, the JSON gateway). Keys are the layout's
/// strings as UTF-8; lists page through large prefixes at one revision, so a node joining a
/// store of 10,000 certificates reads them in bounded responses that all belong together.
public final class EtcdStore: SharedStore, @unchecked Sendable {  // the client is thread-safe; the rest is immutable
    let client: EtcdClient
    /// Keys per range request when listing a prefix.
    let page: Int64
    /// The most keys `list` reads under one prefix: ten times the 100,000 certificates a node is
    /// measured with. Past it the prefix holds more than a node can serve, or the endpoint answers
    /// "more" for ever; either way the node stops reading rather than grow without bound.
    let maxListed: Int

    /// `deadline`: the longest a call may take over every endpoint and retry (nil: the request
    /// timeout per endpoint).
    public convenience init(_ settings: ClusterSettings, deadline: Double? = nil) throws(ClusterError) {
        var configuration = EtcdClient.Configuration(endpoints: settings.endpoints)
        configuration.deadline = deadline
        configuration.trustRootsPEMFile = settings.caFile
        configuration.clientCertificatePEMFile = settings.clientCertificate
        configuration.clientKeyPEMFile = settings.clientKey
        configuration.username = settings.username
        configuration.password = settings.password
        configuration.requestTimeout = min(settings.requestTimeout, deadline ?? settings.requestTimeout)
        do { self.init(client: try EtcdClient(configuration)) } catch { throw Self.map(error) }
    }

    init(client: EtcdClient, page: Int64 = 500, maxListed: Int = 1_000_000) {
        self.client = client; self.page = page; self.maxListed = maxListed
    }

    /// Requests sent to etcd since start.
    public var requestCount: Int { client.requests.load(ordering: .relaxed) }

    /// Each endpoint, and whether it answers /health now (for `GET /cluster`; short timeout).
    public func endpointHealth() -> [(url: String, healthy: Bool)] {
        client.configuration.endpoints.map { ($0, client.isHealthy($0, timeout: 0.5)) }
    }

    static func map(_ error: EtcdError) -> ClusterError {
        switch error.code {
        case .compacted:
            var e = ClusterError(.compacted, error.reason)
            e.compactRevision = error.compactRevision ?? 0
            return e
        case .cancelled: return ClusterError(.cancelled, error.reason)
        case .unreachable, .timeout:
            var e = ClusterError(.unreachable, error.reason)
            e.mayHaveBeenApplied = error.mayHaveBeenApplied
            return e
        default:
            var e = ClusterError(.store, error.description)
            e.mayHaveBeenApplied = error.mayHaveBeenApplied
            return e
        }
    }

    private func run<T>(_ body: () throws(EtcdError) -> T) throws(ClusterError) -> T {
        do { return try body() } catch { throw Self.map(error) }
    }

    private static func value(_ kv: EtcdKeyValue) -> StoredValue {
        StoredValue(key: kv.keyString, value: kv.value, createRevision: kv.createRevision, modRevision: kv.modRevision, lease: kv.lease)
    }

    public func get(_ key: String) throws(ClusterError) -> StoredValue? {
        try run { () throws(EtcdError) in try client.range(key: Array(key.utf8)).kvs.first.map(Self.value) }
    }

    /// Every key under `prefix` at one revision, in pages of `page` keys; at most `maxListed`
    /// keys, so at most `maxListed / page + 1` pages (etcd fills every page but the last).
    public func list(prefix: String) throws(ClusterError) -> (values: [StoredValue], revision: Int64) {
        let end = etcdPrefixEnd(Array(prefix.utf8))
        var start = Array(prefix.utf8)
        var values: [StoredValue] = []
        var revision: Int64 = 0
        let maxPages = maxListed / Int(page) + 1
        var pages = 0
        while pages < maxPages {
            pages += 1
            let result = try run { () throws(EtcdError) in try client.range(key: start, rangeEnd: end, limit: page, revision: revision) }
            if revision == 0 { revision = result.revision }
            values += result.kvs.map(Self.value)
            if values.count > maxListed { break }
            guard result.more, let last = result.kvs.last else { return (values, revision) }
            start = last.key + [0]
        }
        throw ClusterError(.store, "listing \(prefix) stopped after \(values.count) keys in \(pages) pages: a node reads at most "
                           + "\(maxListed) keys (\(maxPages) pages) under one prefix; delete what is no longer needed under it (or give "
                           + "this fleet a prefix of its own), and check that every endpoint is etcd")
    }

    @discardableResult
    public func put(_ key: String, _ value: [UInt8], lease: Int64?) throws(ClusterError) -> Int64 {
        try run { () throws(EtcdError) in try client.put(key: Array(key.utf8), value: value, lease: lease ?? 0).revision }
    }

    public func create(_ key: String, _ value: [UInt8], lease: Int64?) throws(ClusterError) -> (created: Bool, existing: StoredValue?, revision: Int64) {
        let k = Array(key.utf8)
        let result = try run { () throws(EtcdError) in
            try client.txn(compare: [.absent(k)], success: [.put(key: k, value: value, lease: lease ?? 0)], failure: [.range(key: k)])
        }
        var existing: StoredValue?
        if !result.succeeded, case .range(let range)? = result.responses.first { existing = range.kvs.first.map(Self.value) }
        return (result.succeeded, existing, result.revision)
    }

    public func put(_ key: String, _ value: [UInt8], fence: String, fenceRevision: Int64) throws(ClusterError) -> Int64? {
        let result = try run { () throws(EtcdError) in
            try client.txn(compare: [EtcdCompare(key: Array(fence.utf8), .createRevision(fenceRevision))],
                           success: [.put(key: Array(key.utf8), value: value)])
        }
        return result.succeeded ? result.revision : nil
    }

    public func put(_ key: String, _ value: [UInt8], ifModRevision: Int64) throws(ClusterError) -> Bool {
        let k = Array(key.utf8)
        return try run { () throws(EtcdError) in try client.txn(compare: [.unchanged(k, since: ifModRevision)], success: [.put(key: k, value: value)]).succeeded }
    }

    public func putAll(_ writes: [ConditionalWrite]) throws(ClusterError) -> Bool {
        let compares = writes.map { w in
            w.ifModRevision == 0 ? EtcdCompare.absent(Array(w.key.utf8)) : EtcdCompare.unchanged(Array(w.key.utf8), since: w.ifModRevision)
        }
        return try run { () throws(EtcdError) in
            try client.txn(compare: compares, success: writes.map { .put(key: Array($0.key.utf8), value: $0.value) }).succeeded
        }
    }

    @discardableResult
    public func delete(_ key: String) throws(ClusterError) -> Int64 {
        try run { () throws(EtcdError) in try client.deleteRange(key: Array(key.utf8)).revision }
    }

    @discardableResult
    public func deletePrefix(_ prefix: String) throws(ClusterError) -> Int64 {
        try run { () throws(EtcdError) in try client.deleteRange(key: Array(prefix.utf8), prefix: true).revision }
    }

    public func delete(_ key: String, ifCreateRevision: Int64) throws(ClusterError) -> Bool {
        let k = Array(key.utf8)
        return try run { () throws(EtcdError) in try client.txn(compare: [EtcdCompare(key: k, .createRevision(ifCreateRevision))], success: [.delete(key: k)]).succeeded }
    }

    public func grantLease(ttl: Int) throws(ClusterError) -> Int64 {
        try run { () throws(EtcdError) in try client.leaseGrant(ttl: Int64(ttl)).id }
    }

    public func keepAlive(lease: Int64) throws(ClusterError) -> Bool {
        try run { () throws(EtcdError) in try client.leaseKeepAlive(id: lease).ttl > 0 }
    }

    public func revoke(lease: Int64) throws(ClusterError) {
        try run { () throws(EtcdError) in try client.leaseRevoke(id: lease) }
    }

    public func watch(prefix: String, from revision: Int64, cancel: WatchCancel, _ handler: ([StoreEvent]) -> Bool) throws(ClusterError) {
        let watch = client.watch(prefix: Array(prefix.utf8), fromRevision: revision)
        cancel.onCancel { watch.cancel() }
        try run { () throws(EtcdError) in
            try watch.run { batch in
                let events: [StoreEvent] = batch.events.isEmpty ? [.progress(revision: batch.revision)] : batch.events.map { e in
                    e.kind == .put ? .put(Self.value(e.kv)) : .delete(key: e.kv.keyString, revision: e.kv.modRevision)
                }
                return handler(events)
            }
        }
    }
}

extension EtcdClient {
    /// Whether the member at `endpoint` answers `GET /health` with health "true" within `timeout`.
    func isHealthy(_ endpoint: String, timeout: Double) -> Bool {
        let http = makeClient()
        guard let response = try? http.request(method: "GET", url: endpoint + "/health", timeout: timeout), response.status == 200,
              let object = try? JSONSerialization.jsonObject(with: Data(response.body)) as? [String: Any] else { return false }
        return (object["health"] as? String) == "true" || (object["health"] as? Bool) == true
    }
}
