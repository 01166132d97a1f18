import Certificates
import Config
import ControlClient
import Foundation
import Locking
import Logs
import TLS

/// On-demand TLS: a handshake for a name nothing serves is held (OpenSSL's ClientHello retry)
/// while the manager obtains a certificate for it, when the name is allowed: it must match
/// `names` (when given), and the `ask` endpoint must answer 200 (answers cached both ways). A
/// name with a stored certificate is served without asking, so an `ask` outage never breaks
/// names already issued. A global rate limit bounds how many new names start issuance, the
/// manager's backoff bounds retries of a failing name, and a bounded number of names are looked
/// at once, so a flood of random names costs asks, not orders. Names issued this way are kept in
/// storage and managed (renewed) from then on, by every node of a cluster.
///
/// `shouldWait` runs on event loops and only reads state; everything that blocks (storage, the
/// `ask` request) runs on a background queue.
public final class OnDemandIssuance: CertificateOnDemand, @unchecked Sendable {  // mutable state is in `state`
    public let settings: OnDemandSettings
    private let manager: ACMEManager
    private let storage: ACMEStorage
    private let queue = DispatchQueue(label: "edgeproxy.acme.on-demand", attributes: .concurrent)
    /// Trust for an https `ask` endpoint, loaded once (the system store takes milliseconds to parse).
    private let askTrust: TLSClientContext?
    /// Names looked at (storage, ask) at once; past it, handshakes for more new names do not wait.
    static let maxLookups = 32
    /// Ask answers kept; past it, expired ones are dropped and then the oldest.
    static let maxAskCache = 10_000

    private struct Waiter {
        var id: Int
        var resume: @Sendable () -> Void
    }

    private struct State {
        var store: CertificateStore?
        var waiters: [String: [Waiter]] = [:]
        var nextID = 0
        /// Names being looked at (storage, ask, rate limit) before they reach the manager.
        var lookups: Set<String> = []
        var asked: [String: (allowed: Bool, until: Date)] = [:]
        /// When names started issuance, within the last rate interval.
        var starts: [Date] = []
        var held = 0
        var denied = 0
        var rateLimited = 0
        /// Handshakes not held because `maxLookups` names were being looked at already.
        var busy = 0
    }
    private let state = Locked(State())

    public init(settings: OnDemandSettings, manager: ACMEManager, storage: ACMEStorage) {
        self.settings = settings
        self.manager = manager
        self.storage = storage
        askTrust = settings.ask?.hasPrefix("https:") == true ? try? TLSClientContext(trustRootsPEMFile: nil) : nil
        manager.onAttended { [weak self] primary, succeeded in self?.attended(primary, succeeded) }
    }

    public var maxWait: Double { settings.wait }

    /// The store whose swaps may bring a waited-for name; called once it is open.
    public func attach(_ store: CertificateStore) { state.withLock { $0.store = store } }

    /// Names issued on demand before (this node or another) are managed again: served from
    /// storage at start, renewed like the configured ones. Blocking (storage).
    public func resumeStoredNames() {
        do {
            let names = try storage.loadOnDemandNames()
            for name in names where settings.admits(name) { manager.add([name]) }
            if !names.isEmpty { Log.info("ACME on demand: \(names.count) name(s) issued on demand before are managed again") }
        } catch {
            Log.warning("ACME on demand: cannot read the names issued on demand before (\(error)); they are looked at again when a client asks")
        }
    }

    // MARK: CertificateOnDemand (event loops)

    public func shouldWait(for name: String) -> Bool {
        guard settings.admits(name) else { return false }
        let now = Date()
        if let status = manager.status(of: name) {
            // Managed already: wait while it is obtained, not while it backs off after a failure.
            return status.failures == 0 || status.nextAttempt <= now
        }
        return state.withLock { s in
            if let cached = s.asked[name], cached.until > now, !cached.allowed { return false }
            if s.lookups.contains(name) { return true }
            guard s.lookups.count < Self.maxLookups else { s.busy += 1; return false }
            guard s.starts.filter({ now.timeIntervalSince($0) < settings.rateInterval }).count < settings.rateLimit else {
                s.rateLimited += 1
                return false
            }
            return true
        }
    }

    public func wait(for name: String, resume: @escaping @Sendable () -> Void) {
        let (id, look) = state.withLock { s -> (Int, Bool) in
            s.nextID += 1
            s.held += 1
            s.waiters[name, default: []].append(Waiter(id: s.nextID, resume: resume))
            guard manager.status(of: name) == nil, !s.lookups.contains(name) else { return (s.nextID, false) }
            s.lookups.insert(name)
            return (s.nextID, true)
        }
        queue.asyncAfter(deadline: .now() + settings.wait) { [self] in release(name, only: id) }
        if look { queue.async { [self] in lookUp(name) } }
    }

    // MARK: Background

    /// Stored → managed without asking; else ask, take a slot of the rate limit, and hand the
    /// name to the manager. Any refusal releases the name's handshakes at once (default certificate).
    private func lookUp(_ name: String) {
        defer { state.withLock { _ = $0.lookups.remove(name) } }
        if (try? storage.loadCertificate(name: name)) != nil {
            Log.info("ACME on demand: \(name) has a stored certificate; serving it without asking")
            manager.add([name])
            return
        }
        guard allowed(name) else {
            state.withLock { $0.denied += 1 }
            release(name)
            return
        }
        let now = Date()
        let started = state.withLock { s -> Bool in
            s.starts.removeAll { now.timeIntervalSince($0) >= settings.rateInterval }
            guard s.starts.count < settings.rateLimit else { s.rateLimited += 1; return false }
            s.starts.append(now)
            return true
        }
        guard started else {
            Log.warning("ACME on demand: \(name) not issued: \(settings.rateLimit) names already started issuance in the last "
                        + "\(Int(settings.rateInterval)) s (acme.on_demand.rate_limit)")
            release(name)
            return
        }
        do { try storage.saveOnDemandName(name) } catch {
            Log.warning("ACME on demand: cannot record \(name) in storage (\(error)); it is issued, but renewed only while this process runs")
        }
        Log.info("ACME on demand: obtaining a certificate for \(name), asked for by a handshake")
        manager.add([name])
    }

    /// `ask` (cached both ways), or yes when there is none. An unreachable endpoint is a no that
    /// is not cached.
    private func allowed(_ name: String) -> Bool {
        guard let ask = settings.ask else { return true }
        let now = Date()
        if let cached = state.withLock({ $0.asked[name] }), cached.until > now { return cached.allowed }
        var options = HTTPClient.Options()
        options.timeout = settings.askTimeout
        options.keepAlive = false
        options.maxResponseBody = 64 << 10
        let url = ask + (ask.contains("?") ? "&" : "?") + "domain=" + (name.addingPercentEncoding(withAllowedCharacters: .urlQueryAllowed) ?? name)
        let allowed: Bool
        do {
            let response = try HTTPClient(tls: askTrust, options: options)
                .request(method: "GET", url: url)
            allowed = response.status == 200
            if !allowed { Log.info("ACME on demand: \(name) refused by \(ask) (status \(response.status))") }
        } catch {
            Log.warning("ACME on demand: \(name) not issued: asking \(ask) failed (\(error)); names already issued keep serving")
            return false
        }
        state.withLock { s in
            if s.asked.count >= Self.maxAskCache {
                s.asked = s.asked.filter { $0.value.until > now }
                while s.asked.count >= Self.maxAskCache, let oldest = s.asked.min(by: { $0.value.until < $1.value.until }) {
                    s.asked[oldest.key] = nil
                }
            }
            s.asked[name] = (allowed, now.addingTimeInterval(settings.askCache))
        }
        return allowed
    }

    /// The manager finished a look at `primary`: a failure releases its handshakes (they take the
    /// default); a success releases them once the store serves the name (`swapped`).
    private func attended(_ primary: String, _ succeeded: Bool) {
        if !succeeded { release(primary); return }
        if let store = state.withLock({ $0.store }) { swapped(store) }
    }

    /// After every swap of the store: handshakes waiting for a name that now serves go on.
    public func swapped(_ store: CertificateStore) {
        let waiting = state.withLock { Array($0.waiters.keys) }
        for name in waiting where store.serves(name) { release(name) }
    }

    private func release(_ name: String, only id: Int? = nil) {
        let released = state.withLock { s -> [Waiter] in
            guard var list = s.waiters[name] else { return [] }
            let out = id.map { id in list.filter { $0.id == id } } ?? list
            list.removeAll { w in out.contains { $0.id == w.id } }
            s.waiters[name] = list.isEmpty ? nil : list
            return out
        }
        for w in released { w.resume() }
    }

    /// For `GET /acme` and the metrics.
    public struct Status: Sendable {
        public var waiting: Int
        public var lookingUp: [String]
        public var held: Int
        public var denied: Int
        public var rateLimited: Int
        public var busy: Int
        public var startsInInterval: Int
    }

    public var status: Status {
        let now = Date()
        return state.withLock { s in
            Status(waiting: s.waiters.values.reduce(0) { $0 + $1.count }, lookingUp: s.lookups.sorted(), held: s.held,
                   denied: s.denied, rateLimited: s.rateLimited, busy: s.busy,
                   startsInInterval: s.starts.filter { now.timeIntervalSince($0) < settings.rateInterval }.count)
        }
    }
}
