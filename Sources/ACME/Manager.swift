import Config
import Foundation
import Locking
import Logs
import TLS

/// Keeps the configured certificates issued and renewed: a bounded work queue, one thread per
/// worker, each taking the certificate due soonest that no other thread is attending. Each worker
/// holds one issuer per CA, in order of preference: a name that fails `fallbackAfter` times in a
/// row at one CA tries the next (each CA with its own account), and starts from the first again
/// after a success. Requests to
/// the CA block, and serving never waits on them; one slow order holds one thread, not the others.
/// Each certificate has its own schedule; a failure backs that one off (exponential, jittered,
/// capped, never sooner than the CA's Retry-After) and leaves the others alone. What it obtains
/// goes to `install`, the proxy's update path.
public final class ACMEManager: @unchecked Sendable {  // each issuer is used by its own thread only; shared state is in `state`
    /// One certificate's state, for the admin API and the metrics.
    public struct Status: Sendable {
        public var names: [String]
        /// The certificate being served (handed to `install`).
        public var serial: String?
        public var notAfter: Date?
        /// When renewal is planned (jittered inside the ARI window, or by the lifetime rule).
        public var renewAt: Date?
        /// The serial `renewAt` was drawn for.
        var renewSerial: String?
        public var ariWindow: RenewalWindow?
        /// The next time the manager looks at this certificate.
        public var nextAttempt: Date
        /// Consecutive failed attempts (0 after a success).
        public var failures = 0
        public var lastError: String?
        /// The CA's problem document of the last failure, when there was one.
        public var lastProblem: Problem?
        public var lastIssued: Date?
        /// Certificates obtained from the CA since start.
        public var issued = 0
        /// The CA (index into the configured issuers) the next attempt goes to.
        public var issuer = 0
        /// Failed attempts in a row at `issuer`.
        var failuresHere = 0
        /// The CA that issued the served certificate, when this process obtained or renewed it.
        public var issuedBy: Int?
        init(names: [String], now: Date) { self.names = names; nextAttempt = now }
    }

    /// One list per worker thread, one issuer per CA in it: an issuer keeps one connection and
    /// nonce pool, and is not shared.
    private let workers: [[Issuer]]
    private let install: @Sendable (StoredCertificate) throws -> Void
    private struct State {
        /// The renewal settings (`renewal`) and the configured names; the CA-side settings were
        /// used to build the issuers.
        var schedule: ACMESettings
        /// By primary name; `order` keeps the order names were added in, for listings.
        var statuses: [String: Status] = [:]
        var order: [String] = []
        /// Primary names a worker is attending right now.
        var inFlight: Set<String> = []
        /// Names added at run time (on demand): a reload keeps them.
        var added: [[String]] = []
        /// Serials revoked here, by primary name: renewed at once, whatever their schedule says.
        var revoked: [String: String] = [:]
        /// Primary names an operator asked to renew now (`renew`): renewed at the next look,
        /// whatever their schedule says, and until a renewal succeeds.
        var renewNow: Set<String> = []
        var stopped = false

        mutating func add(_ names: [String], now: Date) {
            guard statuses[names[0]] == nil else { return }
            statuses[names[0]] = Status(names: names, now: now)
            order.append(names[0])
        }
    }
    private let state: Locked<State>
    private let attendedObserver = Locked<(@Sendable (String, Bool) -> Void)?>(nil)
    private let events = Locked<CertificateEvents?>(nil)
    private let wake = NSCondition()
    private var woken = false  // guarded by `wake`

    /// How many orders run at once when the caller does not say.
    public static let defaultConcurrency = 4

    /// `install` receives every certificate to serve (stored ones at start, new ones after each
    /// issuance); it throws when the proxy refuses it, which counts as a failed attempt. One worker
    /// thread per issuer (at least one), all for one CA.
    public convenience init(issuers: [Issuer], schedule: ACMESettings, install: @escaping @Sendable (StoredCertificate) throws -> Void) {
        self.init(workers: issuers.map { [$0] }, schedule: schedule, install: install)
    }

    /// `workers[i][k]`: worker thread i's issuer for CA k (the order of `schedule.issuers`).
    public init(workers: [[Issuer]], schedule: ACMESettings, install: @escaping @Sendable (StoredCertificate) throws -> Void) {
        precondition(!workers.isEmpty && workers.allSatisfy { !$0.isEmpty && $0.count == workers[0].count },
                     "the manager needs at least one worker, each with an issuer per CA")
        self.workers = workers
        self.install = install
        let now = Date()
        var initial = State(schedule: schedule)
        for names in schedule.certificates { initial.add(names, now: now) }
        state = Locked(initial)
    }


    /// Hands what storage already holds for the configured names to `install` (no request to the
    /// CA), so a restart serves at once; due or not, renewal happens later on the manager thread.
    public func installStored() {
        for names in state.withLock({ s in s.order.compactMap { s.statuses[$0]?.names } }) {
            do {
                guard let (certificate, leaf) = try workers[0][0].stored(names) else { continue }
                try install(certificate)
                record(names) { $0.serial = leaf.serialHex; $0.notAfter = leaf.notAfter }
            } catch {
                Log.error("ACME: the stored certificate for \(names[0]) cannot be served (\(error)); a new one will be obtained")
            }
        }
    }

    public func start() {
        for i in workers.indices {
            let thread = Thread { [self] in run(workers[i]) }
            thread.name = "edgeproxy-acme-\(i)"
            thread.start()
        }
    }

    /// Adds a certificate to keep issued at run time (it is looked at right away); names already
    /// managed are left as they are.
    public func add(_ names: [String]) {
        guard !names.isEmpty else { return }
        state.withLock { s in
            guard s.statuses[names[0]] == nil else { return }
            s.add(names, now: Date())
            s.added.append(names)
        }
        poke()
    }

    /// Called after every look at a certificate (primary name, whether it ended serving one), on
    /// the worker thread. Set before `start`.
    public func onAttended(_ observer: @escaping @Sendable (String, Bool) -> Void) {
        attendedObserver.withLock { $0 = observer }
    }

    /// Revokes the certificate served for `primary` at the CA, then obtains its replacement at
    /// once (on a worker thread). Blocking: a request to the CA, on its own connection. Returns
    /// the revoked serial.
    public func revoke(_ primary: String, reason: RevocationReason) throws -> String {
        guard let status = status(of: primary) else {
            throw ACMEError(.protocolViolation, "\(primary) is not managed by ACME here (GET /acme lists the names)")
        }
        let names = status.names
        guard let (certificate, leaf) = try workers[0][0].stored(names) else {
            throw ACMEError(.storage, "no stored certificate for \(primary) to revoke")
        }
        // The CA that issued it when known here; after a restart each CA in order, on a
        // connection of its own, until one accepts (another CA refuses a serial it never issued).
        let candidates = status.issuedBy.map { [$0] } ?? Array(workers[0].indices)
        var refusals: [String] = []
        for index in candidates {
            let ca = workers[0][index]
            do {
                try Issuer(configuration: ca.configuration, storage: ca.storage, solvers: []).revoke(certificate, leaf: leaf, reason: reason)
                refusals = []
                break
            } catch {
                refusals.append("\(ca.configuration.directoryURL): \(error)")
            }
        }
        guard refusals.isEmpty else { throw ACMEError(.problem, "no CA revoked \(primary): " + refusals.joined(separator: "; ")) }
        emit(.revoked, names: names, certificate: leaf)
        Log.info("ACME: \(primary) serial \(leaf.serialHex) revoked (\(reason.name)); obtaining a replacement now")
        state.withLock { s in
            s.revoked[primary] = leaf.serialHex
            s.statuses[primary]?.nextAttempt = Date()
        }
        poke()
        return leaf.serialHex
    }

    /// Obtains a new certificate for `primary` now, whatever its schedule says (an operator's
    /// `edgeproxy acme renew`), on a worker thread; returns at once. Nil: not managed here;
    /// else the serial served until now (nil before the first issuance).
    public func renew(_ primary: String) -> Status? {
        let status = state.withLock { s -> Status? in
            guard s.statuses[primary] != nil else { return nil }
            s.renewNow.insert(primary)
            s.statuses[primary]!.nextAttempt = Date()
            return s.statuses[primary]
        }
        if status != nil {
            Log.info("ACME: renewal of \(primary) asked through the admin API")
            poke()
        }
        return status
    }

    /// One certificate's state by its primary name (nil: not managed).
    public func status(of primary: String) -> Status? { state.withLock { $0.statuses[primary] } }

    public func stop() {
        state.withLock { $0.stopped = true }
        poke()
    }

    /// New names or renewal settings (SIGHUP): certificates kept keep their state; new ones are
    /// looked at right away.
    public func update(_ schedule: ACMESettings) {
        let now = Date()
        state.withLock { s in
            let old = s.statuses
            s.schedule = schedule
            s.statuses = [:]
            s.order = []
            for names in schedule.certificates + s.added {
                s.add(names, now: now)
                // Same names: the state carries over. A shorter interval applies at once; a
                // backoff (or the CA's Retry-After) stands.
                guard var kept = old[names[0]], kept.names == names else { continue }
                if kept.failures == 0 { kept.nextAttempt = min(kept.nextAttempt, now.addingTimeInterval(schedule.renewal.checkInterval)) }
                s.statuses[names[0]] = kept
            }
        }
        poke()
    }

    /// In the order the names were configured (or added).
    public var statuses: [Status] { state.withLock { s in s.order.compactMap { s.statuses[$0] } } }

    /// Certificate events (obtained, renewed, failed, expiring soon) go to `events`. Set before `start`.
    public func deliverEvents(to events: CertificateEvents) {
        self.events.withLock { $0 = events }
    }

    /// Where events go; nil: none configured.
    public var eventDelivery: CertificateEvents? { events.withLock { $0 } }

    /// Queues an event about `names` (first = primary) when events are configured, e.g. `.revoked`
    /// after a revocation; returns at once. Each fact is delivered once per fleet.
    public func emit(_ kind: CertificateEvent.Kind, names: [String], certificate: X509Certificate?, error: Error? = nil, attempt: Int? = nil) {
        events.withLock { $0 }?.emit(kind, names: names, certificate: certificate, error: error, attempt: attempt)
    }

    private func poke() {
        wake.lock(); woken = true; wake.broadcast(); wake.unlock()
    }

    /// One worker: takes the certificate due soonest that nobody attends, attends it, repeats;
    /// sleeps until the next one is due or something changes.
    private func run(_ issuers: [Issuer]) {
        while true {
            let (stopped, taken, next) = state.withLock { s -> (Bool, [String]?, Date?) in
                let now = Date()
                let free = s.statuses.values.filter { !s.inFlight.contains($0.names[0]) }
                guard let soonest = free.min(by: { $0.nextAttempt < $1.nextAttempt }) else { return (s.stopped, nil, nil) }
                guard soonest.nextAttempt <= now else { return (s.stopped, nil, soonest.nextAttempt) }
                s.inFlight.insert(soonest.names[0])
                return (s.stopped, soonest.names, nil)
            }
            if stopped { return }
            if let names = taken {
                attend(names, with: issuers)
                let succeeded = state.withLock { s in
                    s.inFlight.remove(names[0])
                    return s.statuses[names[0]].map { $0.failures == 0 && $0.serial != nil } ?? false
                }
                attendedObserver.withLock { $0 }?(names[0], succeeded)
                poke()  // another worker may wait for exactly this name's next attempt
                continue
            }
            wake.lock()
            if !woken { _ = wake.wait(until: next ?? Date().addingTimeInterval(3600)) }
            woken = false
            wake.unlock()
        }
    }

    /// One look at one certificate: ask the CA for its renewal window (ARI) when offered, renew
    /// when the planned time has come (or obtain when there is none), then plan the next look.
    private func attend(_ names: [String], with issuers: [Issuer]) {
        let (settings, known) = state.withLock { s in (s.schedule, s.statuses[names[0]]) }
        let schedule = settings.renewal
        let ca = min(known?.issuer ?? 0, issuers.count - 1)
        let issuer = issuers[ca]
        let profile = settings.profile(for: names[0], issuer: ca)
        // Renewal information and `replaces` concern the CA that issued the certificate; after a
        // restart that is taken to be the first one.
        let issuedHere = (known?.issuedBy ?? 0) == ca
        var window: RenewalWindow?
        var ariRetry: Double?
        do {
            let current = try issuer.stored(names)
            if schedule.ari, issuedHere, let leaf = current?.leaf {
                // A shared storage keeps the CA's answer for the fleet: one node asks per interval,
                // not every node (the CA's rate limits count the fleet's requests together).
                let shared = try? issuer.storage.loadRenewalInfo(name: names[0], serial: leaf.serialHex)
                if let shared, Date().timeIntervalSince(shared.fetched) < min(schedule.checkInterval, shared.retryAfter ?? .infinity) {
                    window = shared.window; ariRetry = shared.retryAfter
                } else {
                    do {
                        if let (info, retry) = try issuer.account().renewalInfo(for: leaf) {
                            window = info.suggestedWindow; ariRetry = retry
                            try? issuer.storage.saveRenewalInfo(SharedRenewalInfo(window: info.suggestedWindow, retryAfter: retry, fetched: Date()),
                                                                name: names[0], serial: leaf.serialHex)
                        }
                    } catch {
                        Log.warning("ACME renewalInfo for \(names[0]) failed (the lifetime rule applies instead): \(error)")
                    }
                }
            }
            // The renewal time is drawn once per serial and window, so its jitter (or the random
            // point inside the ARI window, RFC 9773 §4.2) is what actually happens.
            var leaf = current?.leaf
            var renewAt = leaf.map { leaf in
                known?.renewSerial == leaf.serialHex && known?.ariWindow == window && known?.renewAt != nil ? known!.renewAt!
                    : agreed(names, leaf, window, RenewalPolicy.renewalTime(notBefore: leaf.notBefore, notAfter: leaf.notAfter,
                                                                            ariWindow: window, renewBefore: schedule.renewBefore), issuer)
            }
            let (revoked, asked) = state.withLock { ($0.revoked[names[0]], $0.renewNow.contains(names[0])) }
            var mustRenew = renewAt.map { Date() >= $0 } ?? true
            if let leaf, leaf.serialHex == revoked { mustRenew = true }
            if asked { mustRenew = true }
            if let current, !mustRenew, current.leaf.serialHex != known?.serial {
                // Stored by another process, or not taken before: serve it, or replace it if it cannot be.
                do { try install(current.certificate) } catch {
                    Log.error("ACME: the stored certificate for \(names[0]) cannot be served (\(error)); obtaining a new one")
                    mustRenew = true
                }
            }
            if mustRenew {
                Log.info(leaf == nil ? "ACME: obtaining a certificate for \(names.joined(separator: ", "))"
                                     : "ACME: renewing \(names[0]) (serial \(leaf!.serialHex), expires \(leaf!.notAfter))")
                // Looked at again under the lock: a certificate other than the one judged here was
                // just issued by another thread or node, and stays unless the lifetime rule says otherwise.
                let judged = leaf?.serialHex
                let fresh = try issuer.certificate(for: names, replacing: issuedHere ? leaf : nil, profile: profile) { other in
                    other.serialHex == judged
                        || RenewalPolicy.isDue(notBefore: other.notBefore, notAfter: other.notAfter, renewBefore: schedule.renewBefore)
                }
                let freshLeaf = try X509Certificate.parseChain(pem: fresh.chainPEM)[0]
                try install(fresh)
                if freshLeaf.serialHex != judged {
                    emit(leaf == nil ? .obtained : .renewed, names: names, certificate: freshLeaf)
                    let report = issuer.lastReport
                    Log.info("ACME: certificate for \(names.joined(separator: ", ")) installed (serial \(freshLeaf.serialHex))"
                             + (report.map { " after \($0.requests) CA requests in \(String(format: "%.2f", $0.seconds)) s" } ?? ""))
                    record(names) { $0.issued += 1; $0.lastIssued = Date(); $0.issuedBy = ca }
                }
                if freshLeaf.serialHex != revoked { state.withLock { _ = $0.revoked.removeValue(forKey: names[0]) } }
                state.withLock { _ = $0.renewNow.remove(names[0]) }
                leaf = freshLeaf
                window = nil  // a window is the CA's word on one serial; the next look asks about this one
                renewAt = agreed(names, freshLeaf, nil, RenewalPolicy.renewalTime(notBefore: freshLeaf.notBefore, notAfter: freshLeaf.notAfter,
                                                                                  renewBefore: schedule.renewBefore), issuer)
            }
            guard let leaf, let renewAt else { throw ACMEError(.protocolViolation, "no certificate after issuance") }
            events.withLock { $0 }?.look(at: leaf, names: names)
            // Look again at the planned renewal, but at least every check interval (the CA may move
            // the ARI window) and when ARI says to ask again. A certificate due the moment it was
            // issued (renew_before longer than the CA's lifetime) waits a whole interval.
            let now = Date()
            var next = min(renewAt, now.addingTimeInterval(schedule.checkInterval))
            if renewAt <= now {
                Log.warning("ACME: the certificate for \(names[0]) is due for renewal as soon as it is issued "
                            + "(renew_before is longer than the CA's lifetime?); renewing every check_interval")
                next = now.addingTimeInterval(schedule.checkInterval)
            }
            if let ariRetry { next = min(next, now.addingTimeInterval(max(ariRetry, 60))) }
            record(names) {
                $0.serial = leaf.serialHex; $0.notAfter = leaf.notAfter; $0.renewAt = renewAt; $0.renewSerial = leaf.serialHex
                $0.ariWindow = window; $0.failures = 0; $0.lastError = nil; $0.lastProblem = nil; $0.nextAttempt = next
                $0.issuer = 0; $0.failuresHere = 0
            }
        } catch {
            // From the end of the attempt: a slow failure (long polling) still waits its backoff.
            let now = Date()
            let failures = (known?.failures ?? 0) + 1
            var failuresHere = (known?.failuresHere ?? 0) + 1
            var nextCA = ca
            if failuresHere >= settings.fallbackAfter && issuers.count > 1 {
                // The next CA starts with the shortest backoff (it has not failed yet), never
                // sooner than this CA's Retry-After asked of this name.
                nextCA = (ca + 1) % issuers.count
                failuresHere = 0
            }
            let next = RenewalPolicy.nextAttempt(after: error, failures: nextCA == ca ? failures : 1, now: now,
                                                 base: schedule.backoffBase, cap: schedule.backoffCap)
            Log.error("ACME: \(names.joined(separator: ", ")): \(error); attempt \(failures) failed, next at \(next) "
                      + "(in \(String(format: "%.1f", next.timeIntervalSince(now))) s"
                      + (nextCA == ca ? "" : ", at the next CA, \(issuers[nextCA].configuration.directoryURL)")
                      + "; anything already serving keeps serving)")
            record(names) {
                $0.failures = failures; $0.lastError = "\(error)"; $0.lastProblem = (error as? ACMEError)?.problem
                $0.nextAttempt = next; $0.issuer = nextCA; $0.failuresHere = failuresHere
            }
            // The certificate that still serves (if any) is named in the event, and may be expiring.
            let held = try? issuer.stored(names)?.leaf
            emit(.failed, names: names, certificate: held, error: error, attempt: failures)
            if let held { events.withLock { $0 }?.look(at: held, names: names) }
        }
    }

    /// The renewal time the storage agreed on (a shared store: the first node's draw), or this
    /// node's own draw when the storage cannot say.
    private func agreed(_ names: [String], _ leaf: X509Certificate, _ window: RenewalWindow?, _ proposed: Date, _ issuer: Issuer) -> Date {
        do { return try issuer.storage.agreeRenewal(name: names[0], serial: leaf.serialHex, window: window, proposed: proposed) } catch {
            Log.warning("ACME: cannot agree on the renewal time of \(names[0]) with the other nodes (\(error)); using this node's")
            return proposed
        }
    }

    private func record(_ names: [String], _ change: (inout Status) -> Void) {
        state.withLock { s in
            if s.statuses[names[0]]?.names == names { change(&s.statuses[names[0]]!) }
        }
    }
}
