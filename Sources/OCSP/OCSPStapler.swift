import Certificates
import ControlClient
import Foundation
import HTTP1
import Locking
import Logs
import TLS

/// OCSP stapling for every certificate the store serves whose leaf names a responder (nginx's
/// `ssl_stapling` with `ssl_stapling_verify`; automatic, as in Caddy). It learns of certificates
/// from the update transaction, asks each responder on its own queue (never on an event loop),
/// puts a verified `good` response on the certificate's `CertifiedKey` for handshakes to staple,
/// and asks again half way to nextUpdate. On failure it retries with backoff and keeps the last
/// good response until its nextUpdate; a revoked, invalid or stale response is never stapled.
public final class OCSPStapler: @unchecked Sendable {  // `entries` and `client` are used on `queue` only; the rest is behind locks
    public enum State: String, Sendable {
        /// Not answered yet.
        case pending
        /// A verified good response is stapled.
        case good
        /// The responder says the certificate is revoked: nothing is stapled.
        case revoked
        /// No usable response (the last attempt's error says why): nothing is stapled.
        case failed
    }

    /// One certificate's stapling, for the admin API and metrics.
    public struct Status: Sendable {
        public var state: State
        public var url: String
        /// The stapled response's nextUpdate.
        public var nextUpdate: Date?
        /// Why the last attempt failed (nil after a good one).
        public var error: String?

        /// "expired" when the stapled response's nextUpdate has passed (handshakes no longer send it).
        public func label(now: Date = Date()) -> String {
            if state == .good, let nextUpdate, nextUpdate <= now { return "expired" }
            return state.rawValue
        }
    }

    private final class Entry: @unchecked Sendable {  // created, read and changed on the stapler's queue only
        let key: CertifiedKey
        let request: OCSPRequest
        var failures = 0
        /// When the pending timer fires; a timer finding another value was superseded.
        var due = Date.distantPast
        init(key: CertifiedKey, request: OCSPRequest) { self.key = key; self.request = request }
    }

    private let queue = DispatchQueue(label: "edgeproxy.ocsp", qos: .utility, attributes: .initiallyInactive)
    private var entries: [String: Entry] = [:]
    private let client: HTTPClient
    private let cache: StapleCache?
    private let statuses = Locked<[String: Status]>([:])
    private let fetchCounts = Locked<[String: Int]>([:])

    /// `cacheDirectory`: where responses are kept across restarts (nil: not kept).
    /// `timeout`: each exchange with a responder.
    public init(cacheDirectory: String?, timeout: Double = 10) {
        var options = HTTPClient.Options()
        options.timeout = timeout
        options.maxResponseBody = 64 << 10  // responses are a few KiB
        client = HTTPClient(options: options)
        cache = cacheDirectory.map { StapleCache(directory: $0) }
    }

    /// Observer of the update transaction (called with its lock held): only queues the change.
    /// Changes before `start` wait, so start-up never waits for a responder.
    public func changed(upserts: [(id: String, bundle: CertificateBundle)], removals: [String]) {
        queue.async { [self] in
            for id in removals { forget(id) }
            for (id, bundle) in upserts { track(id, bundle) }
        }
    }

    /// Once the listeners serve: work through the changes so far, then keep up.
    public func start() {
        queue.async { [cache] in cache?.prune(olderThan: 30 * 86400) }
        queue.activate()
    }

    public func status(_ id: String) -> Status? { statuses.withLock { $0[id] } }

    /// Certificates by stapling state (with "expired"), and responder answers by result since start:
    /// "good", "revoked", "invalid" (refused by the checks), "error" (no answer, or not HTTP 200).
    public func counts(now: Date = Date()) -> (staples: [String: Int], fetches: [String: Int]) {
        var staples: [String: Int] = [:]
        for status in statuses.withLock({ Array($0.values) }) { staples[status.label(now: now), default: 0] += 1 }
        return (staples, fetchCounts.withLock { $0 })
    }

    // MARK: On the queue

    private func track(_ id: String, _ bundle: CertificateBundle) {
        let previous = entries.removeValue(forKey: id)
        // Builds a certificate served from its start-up index (once; the warm-up would too).
        guard let key = bundle.certified else { forget(id); return }
        let request: OCSPRequest
        do {
            guard let made = try OCSPRequest(leaf: key.leaf, chain: key.chain) else { forget(id); return }  // no responder: nothing to ask
            request = made
        } catch {
            Log.warning("OCSP: \(bundle.source): \(error.reason); it is served without a staple")
            publish(id, Status(state: .failed, url: key.leaf.ocspURLs.first ?? "", error: error.reason))
            return
        }
        let entry = Entry(key: key, request: request)
        entries[id] = entry
        // The same certificate again (a touched file, a warm-up rebuild): its staple and schedule carry over.
        if let previous, previous.request.certIDHash == request.certIDHash, let staple = previous.key.currentStaple() {
            key.setStaple(staple)
            schedule(id, entry, at: previous.due)
            return
        }
        if let cache, let der = cache.load(request.certIDHash) {
            if case .good(let thisUpdate, let nextUpdate) = request.check(response: der) {
                Log.debug("OCSP: \(id): stapling the response kept from before (next update \(nextUpdate))")
                accept(id, entry, der, thisUpdate: thisUpdate, nextUpdate: nextUpdate)
                return
            }
            cache.remove(request.certIDHash)
        }
        publish(id, Status(state: .pending, url: request.url))
        schedule(id, entry, at: Date())
    }

    private func forget(_ id: String) {
        entries[id] = nil
        _ = statuses.withLock { $0.removeValue(forKey: id) }
    }

    private func schedule(_ id: String, _ entry: Entry, at date: Date) {
        entry.due = date
        // Wall time: a refresh days ahead must not slip by the time the machine slept.
        queue.asyncAfter(wallDeadline: .now() + max(0, date.timeIntervalSinceNow)) { [weak entry, self] in
            guard let entry, entries[id] === entry, entry.due == date else { return }
            fetch(id, entry)
        }
    }

    private func fetch(_ id: String, _ entry: Entry) {
        let request = entry.request
        let response: HTTPResponse
        do {
            response = try client.request(method: "POST", url: request.url, headers: [
                HTTPField(name: "Content-Type", value: "application/ocsp-request"),
                HTTPField(name: "Accept", value: "application/ocsp-response"),
            ], body: request.der)
        } catch {
            return failed(id, entry, result: "error", "no answer from \(request.url): \(error.reason)")
        }
        guard response.status == 200 else {
            return failed(id, entry, result: "error", "\(request.url) answered HTTP \(response.status)")
        }
        switch request.check(response: response.body) {
        case .good(let thisUpdate, let nextUpdate):
            count("good")
            if status(id)?.state != .good { Log.info("OCSP: \(id): stapling a good response from \(request.url) (next update \(nextUpdate))") }
            accept(id, entry, response.body, thisUpdate: thisUpdate, nextUpdate: nextUpdate)
            cache?.store(request.certIDHash, response.body)
        case .revoked(let at):
            count("revoked")
            Log.error("OCSP: certificate \(id) (serial \(request.serialHex)) is REVOKED since \(at) according to \(request.url): "
                      + "no staple is sent, and clients checking revocation will refuse it; replace it now")
            entry.key.setStaple(nil)
            cache?.remove(request.certIDHash)
            entry.failures = 0
            publish(id, Status(state: .revoked, url: request.url, error: "revoked since \(at)"))
            schedule(id, entry, at: Date().addingTimeInterval(RefreshPolicy.maximumRetryDelay))
        case .refused(let reason):
            failed(id, entry, result: "invalid", "response from \(request.url) refused: \(reason)")
        }
    }

    private func accept(_ id: String, _ entry: Entry, _ der: [UInt8], thisUpdate: Date, nextUpdate: Date) {
        entry.key.setStaple(OCSPStaple(der: der, nextUpdate: nextUpdate))
        entry.failures = 0
        publish(id, Status(state: .good, url: entry.request.url, nextUpdate: nextUpdate))
        schedule(id, entry, at: RefreshPolicy.refreshTime(thisUpdate: thisUpdate, nextUpdate: nextUpdate, now: Date(),
                                                          jitter: .random(in: -1...1)))
    }

    /// The last good response (if any) stays stapled until its nextUpdate; retried with backoff.
    private func failed(_ id: String, _ entry: Entry, result: String, _ reason: String) {
        count(result)
        entry.failures += 1
        let delay = RefreshPolicy.retryDelay(failures: entry.failures, jitter: .random(in: -1...1))
        let kept = entry.key.currentStaple()
        Log.warning("OCSP: \(id): \(reason); " + (kept.map { "the last good response stays stapled until its next update \($0.nextUpdate)" }
            ?? "no staple is sent") + "; retrying in \(Int(delay)) s")
        publish(id, Status(state: kept == nil ? .failed : .good, url: entry.request.url, nextUpdate: kept?.nextUpdate, error: reason))
        schedule(id, entry, at: Date().addingTimeInterval(delay))
    }

    private func publish(_ id: String, _ status: Status) { statuses.withLock { $0[id] = status } }
    private func count(_ result: String) { fetchCounts.withLock { $0[result, default: 0] += 1 } }
}
