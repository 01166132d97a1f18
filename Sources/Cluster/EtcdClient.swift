import ControlClient
import Foundation
import Synchronization
import HTTP1
import TLS

/// etcd v3 over its JSON gateway (POST /v3/…), for background threads: every call blocks.
///
/// Thread-safe: calls may come from several threads at once; each checks an `HTTPClient` out of
/// a small pool for its duration. Calls start with the last endpoint that answered; a transport
/// failure (refused, reset, timeout) or an "unavailable / no leader" answer moves on to the next
/// endpoint, and whole rounds repeat with exponential backoff and jitter until the deadline.
/// Other etcd errors are returned at once with etcd's code and message.
public final class EtcdClient: @unchecked Sendable {
    // @unchecked: the mutable state below (idle clients, preferred endpoint, token) is only
    // touched under `lock`, and an HTTPClient is used by one thread at a time (checked out).

    public struct Configuration: Sendable {
        /// Member URLs, e.g. "https://10.0.0.1:2379".
        public var endpoints: [String]
        public var trustRootsPEMFile: String?
        public var clientCertificatePEMFile: String?
        public var clientKeyPEMFile: String?
        public var username: String?
        public var password: String?
        /// Bounds connect and each read/write of one attempt.
        public var requestTimeout: Double = 5
        /// Bounds a whole call across endpoints and retries; nil: requestTimeout × endpoints.
        public var deadline: Double?
        /// Largest response body accepted (a range over many keys can be large).
        public var maxResponseBody = 64 << 20

        public init(endpoints: [String]) { self.endpoints = endpoints }

        var overallDeadline: Double { deadline ?? requestTimeout * Double(max(1, endpoints.count)) }
    }

    public let configuration: Configuration
    /// Requests sent (every attempt, watches included), for "etcd requests per issuance".
    public let requests = Atomic<Int>(0)
    private let tls: TLSClientContext?
    private let lock = NSLock()
    private var idle: [HTTPClient] = []
    private var preferred = 0
    private var token: String?
    private static let maxIdle = 4

    public init(_ configuration: Configuration) throws(EtcdError) {
        guard !configuration.endpoints.isEmpty else { throw EtcdError(.badResponse, "no etcd endpoints configured") }
        self.configuration = configuration
        if configuration.endpoints.contains(where: { $0.lowercased().hasPrefix("https://") }) {
            do {
                tls = try TLSClientContext(trustRootsPEMFile: configuration.trustRootsPEMFile,
                                           clientCertificatePEMFile: configuration.clientCertificatePEMFile,
                                           clientKeyPEMFile: configuration.clientKeyPEMFile)
            } catch { throw EtcdError(.badResponse, "etcd TLS settings: \(error)") }
        } else {
            tls = nil
        }
    }

    // MARK: KV

    /// Keys in `[key, rangeEnd)` (just `key` without `rangeEnd`), at `revision` (0: latest).
    public func range(key: [UInt8], rangeEnd: [UInt8]? = nil, limit: Int64 = 0, revision: Int64 = 0,
                      keysOnly: Bool = false) throws(EtcdError) -> EtcdRangeResult {
        let request = WireRangeRequest(key: Data(key), range_end: rangeEnd.map { Data($0) }, limit: limit == 0 ? nil : WireInt(limit),
                                       revision: revision == 0 ? nil : WireInt(revision), keys_only: keysOnly ? true : nil)
        let response: WireRangeResponse = try call("/v3/kv/range", request, idempotent: true)
        return response.decoded
    }

    /// Every key starting with `prefix`.
    public func prefix(_ prefix: [UInt8], limit: Int64 = 0, revision: Int64 = 0, keysOnly: Bool = false) throws(EtcdError) -> EtcdRangeResult {
        try range(key: prefix, rangeEnd: etcdPrefixEnd(prefix), limit: limit, revision: revision, keysOnly: keysOnly)
    }

    public func put(key: [UInt8], value: [UInt8], lease: Int64 = 0) throws(EtcdError) -> EtcdPutResult {
        let response: WirePutResponse = try call("/v3/kv/put", WirePutRequest(key: Data(key), value: Data(value), lease: lease == 0 ? nil : WireInt(lease)))
        return response.decoded
    }

    /// Deletes `key`, or every key starting with it when `prefix` is true.
    public func deleteRange(key: [UInt8], prefix: Bool = false) throws(EtcdError) -> EtcdDeleteResult {
        let request = WireDeleteRangeRequest(key: Data(key), range_end: prefix ? Data(etcdPrefixEnd(key)) : nil)
        let response: WireDeleteRangeResponse = try call("/v3/kv/deleterange", request)
        return response.decoded
    }

    /// If every compare holds, runs `success`, otherwise `failure`, atomically.
    public func txn(compare: [EtcdCompare], success: [EtcdOp], failure: [EtcdOp] = []) throws(EtcdError) -> EtcdTxnResult {
        let request = WireTxnRequest(compare: compare.map(Self.wire), success: success.map(Self.wire), failure: failure.map(Self.wire))
        let response: WireTxnResponse = try call("/v3/kv/txn", request)
        return response.decoded
    }

    /// Discards history before `revision` (watches and reads from older revisions then fail
    /// with `.compacted`).
    public func compact(revision: Int64) throws(EtcdError) {
        let _: WireCompactionResponse = try call("/v3/kv/compaction", WireCompactionRequest(revision: WireInt(revision), physical: true))
    }

    // MARK: Leases

    public func leaseGrant(ttl: Int64) throws(EtcdError) -> EtcdLease {
        let response: WireLeaseResponse = try call("/v3/lease/grant", WireLeaseGrantRequest(TTL: WireInt(ttl)))
        return try response.granted()
    }

    /// Renews the lease once; the result's `ttl` is what is left, 0 when the lease is gone
    /// (expired or revoked: grant a new one and re-put its keys).
    public func leaseKeepAlive(id: Int64) throws(EtcdError) -> EtcdLease {
        let response: WireLeaseKeepAliveResponse = try call("/v3/lease/keepalive", WireLeaseIDRequest(ID: WireInt(id)), idempotent: true)
        return try response.renewed(id: id)
    }

    /// Ends the lease now; its keys are deleted.
    public func leaseRevoke(id: Int64) throws(EtcdError) {
        let _: WireLeaseResponse = try call("/v3/lease/revoke", WireLeaseIDRequest(ID: WireInt(id)))
    }

    // MARK: Watch

    /// A watch of every key under `prefix`, from `fromRevision` (0: from now). Run it with
    /// `EtcdWatch.run` on a background thread; cancel it from any thread.
    public func watch(prefix: [UInt8], fromRevision: Int64 = 0, progressNotify: Bool = true) -> EtcdWatch {
        EtcdWatch(client: self, key: prefix, rangeEnd: etcdPrefixEnd(prefix), fromRevision: fromRevision, progressNotify: progressNotify)
    }

    // MARK: Transport

    /// POSTs `request` as JSON to `path` and decodes the answer, with failover and retries.
    /// `idempotent`: sending it twice does no harm (reads, keep-alives); writes are resent to
    /// another member only when they certainly did not reach etcd.
    func call<Request: Encodable, Response: Decodable>(_ path: String, _ request: Request, idempotent: Bool = false) throws(EtcdError) -> Response {
        let body: [UInt8]
        do { body = Array(try JSONEncoder().encode(request)) } catch { throw EtcdError(.badResponse, "encoding \(path): \(error)") }
        let bytes = try withFailover(path, idempotent: idempotent) { endpoint, timeout throws(EtcdError) in
            try self.post(endpoint, path, body, timeout: timeout)
        }
        return try Self.decode(path, bytes)
    }

    /// A 200 answer's body from `path`, decoded; `.badResponse` when it is not what the gateway sends.
    static func decode<Response: Decodable>(_ path: String, _ bytes: [UInt8]) throws(EtcdError) -> Response {
        do { return try JSONDecoder().decode(Response.self, from: Data(bytes)) } catch {
            throw EtcdError(.badResponse, "\(path): unexpected answer (\(error)): \(String(decoding: bytes.prefix(200), as: UTF8.self))")
        }
    }

    /// Runs `attempt` on the endpoints, the last good one first, until it succeeds, a non-
    /// retriable error comes back, or the deadline passes.
    func withFailover<T>(_ what: String, idempotent: Bool,
                         _ attempt: (_ endpoint: Int, _ timeout: Double) throws(EtcdError) -> T) throws(EtcdError) -> T {
        let endpoints = configuration.endpoints
        let deadline = Date().addingTimeInterval(configuration.overallDeadline)
        var last = EtcdError(.unreachable, "no attempt made")
        var round = 0
        while true {
            let first = lock.withLock { preferred }
            // Every member refusing connections twice in a row is etcd down, not an election:
            // say so at once rather than at the deadline.
            var refusedThisRound = 0
            for i in 0..<endpoints.count {
                let index = (first + i) % endpoints.count
                let remaining = deadline.timeIntervalSinceNow
                if remaining <= 0 { break }
                do {
                    let result = try attempt(index, min(configuration.requestTimeout, remaining))
                    lock.withLock { preferred = index }
                    return result
                } catch {
                    guard idempotent ? error.isRetriable : error.isSafeToResend else {
                        if error.mayHaveBeenApplied && !idempotent {
                            throw EtcdError(error.code, "\(what): \(error.reason); it may have been applied: read back before retrying",
                                            etcdCode: error.etcdCode, message: error.message, mayHaveBeenApplied: true)
                        }
                        throw error
                    }
                    last = error
                    if error.code == .unreachable && error.isSafeToResend { refusedThisRound += 1 }
                }
            }
            if refusedThisRound == endpoints.count && round >= 1 {
                throw EtcdError(.unreachable, "\(what): every etcd member refused the connection (last: \(last.reason)); "
                                + "check that the members in \(endpoints) are running", etcdCode: last.etcdCode, message: last.message)
            }
            let remaining = deadline.timeIntervalSinceNow
            if remaining <= 0 {
                throw EtcdError(last.code, "\(what): no etcd endpoint answered within \(configuration.overallDeadline) s (last: \(last.reason)); check that the members in \(endpoints) are up and reachable",
                                etcdCode: last.etcdCode, message: last.message)
            }
            // Exponential backoff with jitter (0.5–1×), 50 ms doubling up to 1 s.
            let backoff = min(1.0, 0.05 * pow(2, Double(min(round, 5)))) * Double.random(in: 0.5...1)
            Thread.sleep(forTimeInterval: min(backoff, remaining))
            round += 1
        }
    }

    /// One POST to one endpoint: the body on 200, else the error (retriable or not). A stale
    /// token is refreshed once.
    private func post(_ endpoint: Int, _ path: String, _ body: [UInt8], timeout: Double) throws(EtcdError) -> [UInt8] {
        var refreshed = false
        while true {
            let headers = try authHeaders(endpoint, timeout: timeout)
            let response = try send(endpoint, path, body, headers: headers, timeout: timeout)
            if response.status == 200 { return response.body }
            let error = Self.error(from: response, path)
            if credentials != nil && error.isStaleToken && !refreshed {
                lock.withLock { token = nil }
                refreshed = true
                continue
            }
            throw error
        }
    }

    private func send(_ endpoint: Int, _ path: String, _ body: [UInt8], headers: [HTTPField], timeout: Double) throws(EtcdError) -> HTTPResponse {
        requests.add(1, ordering: .relaxed)
        let client = checkOut()
        defer { checkIn(client) }
        let url = configuration.endpoints[endpoint].trimmingSuffix("/") + path
        do {
            return try client.request(method: "POST", url: url, headers: [HTTPField(name: "Content-Type", value: "application/json")] + headers,
                                      body: body, timeout: timeout)
        } catch {
            throw Self.transportError(error, configuration.endpoints[endpoint])
        }
    }

    static func transportError(_ error: HTTPClientError, _ endpoint: String) -> EtcdError {
        let sent = error.requestMaybeSent
        switch error.code {
        case .timeout: return EtcdError(.timeout, "\(endpoint): \(error.reason)", mayHaveBeenApplied: sent)
        case .cancelled: return EtcdError(.cancelled, "cancelled", mayHaveBeenApplied: sent)
        case .badResponse, .tooLarge, .badURL: return EtcdError(.badResponse, "\(endpoint): \(error.reason)", mayHaveBeenApplied: sent)
        default: return EtcdError(.unreachable, "\(endpoint): \(error.reason)", mayHaveBeenApplied: sent)
        }
    }

    static func error(from response: HTTPResponse, _ path: String) -> EtcdError {
        if let wire = try? JSONDecoder().decode(WireError.self, from: Data(response.body)), let code = wire.code {
            return EtcdError.fromEtcd(code: code, message: wire.message ?? wire.error ?? "HTTP \(response.status)")
        }
        return EtcdError(.badResponse, "\(path): HTTP \(response.status): \(String(decoding: response.body.prefix(200), as: UTF8.self))")
    }

    // MARK: Auth

    private var credentials: (String, String)? {
        guard let user = configuration.username else { return nil }
        return (user, configuration.password ?? "")
    }

    /// The gateway takes the token bare in `Authorization` (not "Bearer …": that is refused as
    /// an invalid token).
    func authHeaders(_ endpoint: Int, timeout: Double) throws(EtcdError) -> [HTTPField] {
        guard let (user, password) = credentials else { return [] }
        if let token = lock.withLock({ token }) { return [HTTPField(name: "Authorization", value: token)] }
        let body: [UInt8]
        do { body = Array(try JSONEncoder().encode(WireAuthenticateRequest(name: user, password: password))) } catch {
            throw EtcdError(.badResponse, "encoding credentials: \(error)")
        }
        let response: HTTPResponse
        do { response = try send(endpoint, "/v3/auth/authenticate", body, headers: [], timeout: timeout) } catch {
            // Authenticating twice is harmless, and the caller's own request has not gone out yet.
            throw EtcdError(error.code, "authenticating: \(error.reason)", etcdCode: error.etcdCode, message: error.message, mayHaveBeenApplied: false)
        }
        guard response.status == 200 else {
            let error = Self.error(from: response, "/v3/auth/authenticate")
            if error.isRetriable { throw error }
            throw EtcdError(.auth, "etcd refused user \(user): \(error.message ?? error.reason); check the user name and password",
                            etcdCode: error.etcdCode, message: error.message)
        }
        guard let fresh = try Self.token(from: response.body) else {
            throw EtcdError(.auth, "etcd gave no token for user \(user): is authentication enabled (etcdctl auth enable)?")
        }
        lock.withLock { token = fresh }
        return [HTTPField(name: "Authorization", value: fresh)]
    }

    /// The token in an authenticate answer's body, nil when there is none. It goes into a header
    /// field as it is, so one with anything but visible ASCII (what etcd's simple and JWT tokens
    /// are made of) is refused: a CR or LF would end the field, and the request, early.
    static func token(from body: [UInt8]) throws(EtcdError) -> String? {
        guard let wire = try? JSONDecoder().decode(WireAuthenticateResponse.self, from: Data(body)), let token = wire.token, !token.isEmpty else {
            return nil
        }
        guard token.utf8.allSatisfy({ $0 > 0x20 && $0 < 0x7F }) else {
            throw EtcdError(.badResponse, "/v3/auth/authenticate: the token etcd gave holds bytes other than visible ASCII, which a header field cannot carry")
        }
        return token
    }

    // MARK: Pool

    func makeClient() -> HTTPClient {
        var options = HTTPClient.Options()
        options.timeout = configuration.requestTimeout
        options.maxResponseBody = configuration.maxResponseBody
        options.userAgent = "edgeproxy-cluster/0.1"
        return HTTPClient(tls: tls, options: options)
    }

    private func checkOut() -> HTTPClient {
        lock.withLock { idle.popLast() } ?? makeClient()
    }

    private func checkIn(_ client: HTTPClient) {
        lock.withLock { if idle.count < Self.maxIdle { idle.append(client) } }
    }

    static func wire(_ compare: EtcdCompare) -> WireCompare {
        var wire = WireCompare(result: compare.relation.rawValue, target: "", key: Data(compare.key))
        switch compare.target {
        case .createRevision(let r): wire.target = "CREATE"; wire.create_revision = WireInt(r)
        case .modRevision(let r): wire.target = "MOD"; wire.mod_revision = WireInt(r)
        case .version(let v): wire.target = "VERSION"; wire.version = WireInt(v)
        case .value(let v): wire.target = "VALUE"; wire.value = Data(v)
        }
        return wire
    }

    static func wire(_ op: EtcdOp) -> WireRequestOp {
        switch op {
        case .put(let key, let value, let lease):
            return WireRequestOp(request_put: WirePutRequest(key: Data(key), value: Data(value), lease: lease == 0 ? nil : WireInt(lease)))
        case .delete(let key, let rangeEnd):
            return WireRequestOp(request_delete_range: WireDeleteRangeRequest(key: Data(key), range_end: rangeEnd.map { Data($0) }))
        case .range(let key, let rangeEnd):
            return WireRequestOp(request_range: WireRangeRequest(key: Data(key), range_end: rangeEnd.map { Data($0) }))
        }
    }
}

extension String {
    func trimmingSuffix(_ suffix: String) -> String { hasSuffix(suffix) ? String(dropLast(suffix.count)) : self }
}

extension EtcdClient {
    /// Drops the cached token, so the next call authenticates again.
    func forgetToken() { lock.withLock { token = nil } }
}
