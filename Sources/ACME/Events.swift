import Config
import ControlClient
import Foundation
import HTTP1
import Locking
import Logs
import TLS

extension ACMEError.Code {
    /// A certificate event could not be delivered (webhook or command).
    public static let events = Self(raw: "events")
}

/// One certificate event as consumers receive it: a webhook's body, the command's stdin.
public struct CertificateEvent: Codable, Sendable, Equatable {
    public enum Kind: String, Codable, Sendable, CaseIterable {
        case obtained, renewed, failed, revoked
        case expiringSoon = "expiring_soon"
    }
    /// The same on every node for the same fact (`CertificateEvents.id(fact:)`): receivers and the
    /// fleet deduplicate by it.
    public var id: String
    public var event: Kind
    /// The certificate's primary name, and all its names.
    public var name: String
    public var names: [String]
    /// The certificate the event is about (failed: the one serving, if any; hex, as `GET /acme` shows it).
    public var serial: String?
    public var notAfter: Date?
    public var issuer: String?
    /// The node that saw it happen (`cluster.node`, else the host name).
    public var node: String
    /// failed: what went wrong, the CA's problem document when it sent one, and which failed
    /// attempt in a row this was (1 = the first).
    public var error: String?
    public var problem: Problem?
    public var attempt: Int?
    public var time: Date

    enum CodingKeys: String, CodingKey {
        case id, event, name, names, serial, notAfter = "not_after", issuer, node, error, problem, attempt, time
    }

    public init(id: String, event: Kind, names: [String], serial: String? = nil, notAfter: Date? = nil, issuer: String? = nil,
                node: String, error: String? = nil, problem: Problem? = nil, attempt: Int? = nil, time: Date = Date()) {
        self.id = id; self.event = event; name = names.first ?? ""; self.names = names; self.serial = serial
        self.notAfter = notAfter; self.issuer = issuer; self.node = node; self.error = error; self.problem = problem
        self.attempt = attempt; self.time = time
    }

    /// Every key is present (null when there is nothing to say), so consumers see one shape.
    public func encode(to encoder: Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(id, forKey: .id); try c.encode(event, forKey: .event)
        try c.encode(name, forKey: .name); try c.encode(names, forKey: .names)
        try c.encode(serial, forKey: .serial); try c.encode(notAfter, forKey: .notAfter)
        try c.encode(issuer, forKey: .issuer); try c.encode(node, forKey: .node)
        try c.encode(error, forKey: .error); try c.encode(problem, forKey: .problem)
        try c.encode(attempt, forKey: .attempt); try c.encode(time, forKey: .time)
    }

    /// The bytes delivered: sorted keys, RFC 3339 times.
    public func json() throws -> [UInt8] {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        encoder.dateEncodingStrategy = .iso8601
        return [UInt8](try encoder.encode(self))
    }
}

/// The webhook's signature header: `sha256=` + lower-case hex HMAC-SHA256 of the body under the
/// webhook's secret (the body carries the event's id and time, so a receiver can refuse replays).
public enum WebhookSignature {
    public static let header = "X-Edgeproxy-Signature"

    public static func value(secret: String, body: [UInt8]) throws -> String {
        "sha256=" + (try Digest.hmacSHA256(key: Array(secret.utf8), body)).map { String(format: "%02x", $0) }.joined()
    }
}

/// The deliveries waiting, bounded: one more than `capacity` drops the oldest. No clock and no
/// thread, so the bound and the backoff are tested directly.
struct EventQueue {
    struct Delivery: Sendable {
        var event: CertificateEvent
        /// Index into the targets; nil: not claimed yet (the fleet's claim comes first, then one
        /// delivery per target).
        var target: Int?
        /// Failed attempts so far.
        var attempt = 0
        var due: Date
        /// Age order, given on the first push (a retry keeps its age).
        var sequence: Int?
    }

    let capacity: Int
    private(set) var items: [Delivery] = []
    private var pushed = 0

    init(capacity: Int) { self.capacity = max(1, capacity) }

    /// Adds `delivery`; returns the oldest when the queue was full.
    mutating func push(_ delivery: Delivery) -> Delivery? {
        var delivery = delivery
        if delivery.sequence == nil { pushed += 1; delivery.sequence = pushed }
        items.append(delivery)
        guard items.count > capacity, let oldest = items.indices.min(by: { items[$0].sequence! < items[$1].sequence! }) else { return nil }
        return items.remove(at: oldest)
    }

    /// The delivery due soonest when it is due at `now` (removed); otherwise when the next one is due.
    mutating func take(now: Date) -> (delivery: Delivery?, next: Date?) {
        guard let soonest = items.indices.min(by: { items[$0].due < items[$1].due }) else { return (nil, nil) }
        guard items[soonest].due <= now else { return (nil, items[soonest].due) }
        return (items.remove(at: soonest), nil)
    }

    /// `delivery` after a failed attempt: due again after the backoff (exponential from
    /// `backoffBase`, capped, jittered), or nil once `retries` are used up.
    static func retry(_ delivery: Delivery, now: Date, settings: ACMEEventSettings,
                      random: Double = Double.random(in: 0..<1)) -> Delivery? {
        var next = delivery
        next.attempt += 1
        guard next.attempt <= settings.retries else { return nil }
        next.due = now.addingTimeInterval(RenewalPolicy.backoff(failures: next.attempt, base: settings.backoffBase,
                                                                cap: settings.backoffCap, random: random))
        return next
    }
}

/// Delivers certificate events to the configured webhooks (POST, signed) and command, from a
/// bounded queue on one thread of its own: `emit` never blocks, so neither the ACME manager nor
/// an event loop ever waits on a consumer. Each event is first claimed through the storage (in a
/// cluster: etcd), so a fleet delivers it once, not once per node; then each target gets it,
/// retried with backoff until it answers 2xx (the command: exits 0) or the retries are used up.
/// Events still queued when the process exits are lost.
public final class CertificateEvents: Sendable {
    /// For `GET /acme` and the metrics. Counts are per delivery (one event, one target).
    public struct Status: Codable, Sendable, Equatable {
        public var queued = 0
        public var delivered = 0
        /// Given up after every retry failed.
        public var failed = 0
        /// Dropped because the queue was full.
        public var dropped = 0
        public var retries = 0
        /// Events another node had claimed (it delivers them).
        public var claimedElsewhere = 0
        public var lastError: String?
        public var lastErrorAt: Date?
        enum CodingKeys: String, CodingKey {
            case queued, delivered, failed, dropped, retries, claimedElsewhere = "claimed_elsewhere", lastError = "last_error",
                 lastErrorAt = "last_error_at"
        }
        /// Every key present, as elsewhere in `GET /acme` (null: no error yet).
        public func encode(to encoder: Encoder) throws {
            var c = encoder.container(keyedBy: CodingKeys.self)
            try c.encode(queued, forKey: .queued); try c.encode(delivered, forKey: .delivered); try c.encode(failed, forKey: .failed)
            try c.encode(dropped, forKey: .dropped); try c.encode(retries, forKey: .retries)
            try c.encode(claimedElsewhere, forKey: .claimedElsewhere)
            try c.encode(lastError, forKey: .lastError); try c.encode(lastErrorAt, forKey: .lastErrorAt)
        }
    }

    private enum Target: Sendable {
        case webhook(url: String, secret: String)
        case command(String)
    }

    private struct State {
        var queue: EventQueue
        var status = Status()
        /// Primary name → the serial an expiring_soon event was emitted for.
        var expiring: [String: String] = [:]
        var stopped = false
    }

    public let settings: ACMEEventSettings
    private let storage: ACMEStorage
    private let node: String
    private let targets: [Target]
    private let state: Locked<State>
    private let wake = DispatchSemaphore(value: 0)

    /// How long a claim is kept in a shared storage: longer than any node could take to see the same fact.
    static let claimRetention: Double = 7 * 86400

    public init(settings: ACMEEventSettings, storage: ACMEStorage, node: String) {
        self.settings = settings
        self.storage = storage
        self.node = node
        targets = settings.webhooks.map { .webhook(url: $0.url, secret: $0.secret) } + (settings.command.map { [.command($0)] } ?? [])
        state = Locked(State(queue: EventQueue(capacity: settings.queue)))
    }

    public func start() {
        let thread = Thread { [self] in run() }
        thread.name = "edgeproxy-acme-events"
        thread.start()
    }

    public func stop() {
        state.withLock { $0.stopped = true }
        wake.signal()
    }

    public var status: Status {
        state.withLock { s in
            var status = s.status
            status.queued = s.queue.items.count
            return status
        }
    }

    /// The event id of a fact: the same text on every node gives the same id (128 bits of SHA-256).
    static func id(fact: String) -> String {
        Digest.sha256(Array(fact.utf8)).prefix(16).map { String(format: "%02x", $0) }.joined()
    }

    /// Queues one event about `names` (first = primary) and `certificate`; returns at once. The
    /// id depends only on the fact, so every node that sees it names it alike: a certificate
    /// issued (obtained and renewed share it, should two nodes judge the same serial differently),
    /// revoked or expiring by serial, a failure by serial and attempt number.
    public func emit(_ kind: CertificateEvent.Kind, names: [String], certificate: X509Certificate?, error: Error? = nil,
                     attempt: Int? = nil) {
        guard let primary = names.first else { return }
        let serial = certificate?.serialHex
        let fact = switch kind {
        case .obtained, .renewed: "issued \(primary) \(serial ?? "")"
        case .failed: "failed \(primary) \(serial ?? "none") \(attempt ?? 0)"
        case .revoked, .expiringSoon: "\(kind.rawValue) \(primary) \(serial ?? "")"
        }
        let event = CertificateEvent(id: Self.id(fact: fact), event: kind, names: names, serial: serial, notAfter: certificate?.notAfter,
                                     issuer: certificate?.issuer, node: node, error: error.map { "\($0)" },
                                     problem: (error as? ACMEError)?.problem, attempt: kind == .failed ? attempt : nil)
        enqueue([EventQueue.Delivery(event: event, target: nil, due: Date())])
    }

    /// `expiring_soon` once per serial when `certificate` (the one serving for `names`) has less
    /// than the threshold left.
    public func look(at certificate: X509Certificate, names: [String], now: Date = Date()) {
        guard let primary = names.first, certificate.notAfter.timeIntervalSince(now) <= expiringWithin(certificate) else { return }
        let serial = certificate.serialHex
        guard state.withLock({ $0.expiring.updateValue(serial, forKey: primary) != serial }) else { return }
        emit(.expiringSoon, names: names, certificate: certificate)
    }

    /// `expiring_within`, or a sixth of the lifetime (half of what the default renewal leaves) capped at 7 days.
    func expiringWithin(_ certificate: X509Certificate) -> Double {
        settings.expiringWithin ?? min(7 * 86400, certificate.notAfter.timeIntervalSince(certificate.notBefore) / 6)
    }

    private func enqueue(_ deliveries: [EventQueue.Delivery]) {
        let dropped = state.withLock { s in
            deliveries.compactMap { s.queue.push($0) }.map { d in
                s.status.dropped += 1
                return d
            }
        }
        for d in dropped {
            Log.warning("certificate events: the queue is full (\(settings.queue)); dropped the oldest, \(d.event.event.rawValue) "
                        + "for \(d.event.name) (raise acme.events.queue, or check the receivers)")
        }
        wake.signal()
    }

    /// The delivery thread: takes what is due, sleeps until the next is due or something is queued.
    private func run() {
        var clients: [Int: HTTPClient] = [:]  // one per webhook, keeping its connection between events
        while true {
            let (stopped, taken) = state.withLock { s in (s.stopped, s.queue.take(now: Date())) }
            if stopped { return }
            guard let delivery = taken.delivery else {
                _ = wake.wait(timeout: taken.next.map { .now() + max(0, $0.timeIntervalSinceNow) } ?? .distantFuture)
                continue
            }
            attempt(delivery, clients: &clients)
        }
    }

    private func attempt(_ delivery: EventQueue.Delivery, clients: inout [Int: HTTPClient]) {
        let event = delivery.event
        do {
            guard let target = delivery.target else {
                let keep = event.event == .expiringSoon
                    ? max(Self.claimRetention, (event.notAfter ?? Date()).timeIntervalSinceNow + 86400) : Self.claimRetention
                guard try storage.claimEvent(id: event.id, keepFor: keep) else {
                    state.withLock { $0.status.claimedElsewhere += 1 }
                    return
                }
                enqueue(targets.indices.map { EventQueue.Delivery(event: event, target: $0, due: Date()) })
                return
            }
            try deliver(event, to: target, clients: &clients)
            state.withLock { $0.status.delivered += 1 }
        } catch {
            let now = Date()
            let next = EventQueue.retry(delivery, now: now, settings: settings)
            let what = "\(event.event.rawValue) for \(event.name) (id \(event.id))"
            Log.warning("certificate events: \(what): \(error); "
                        + (next.map { "attempt \($0.attempt) failed, next in \(String(format: "%.1f", $0.due.timeIntervalSince(now))) s" }
                           ?? "given up after \(delivery.attempt + 1) attempts (acme.events.retries)"))
            state.withLock { s in
                s.status.lastError = "\(what): \(error)"
                s.status.lastErrorAt = now
                if next == nil { s.status.failed += 1 } else { s.status.retries += 1 }
            }
            if let next { enqueue([next]) }
        }
    }

    private func deliver(_ event: CertificateEvent, to target: Int, clients: inout [Int: HTTPClient]) throws {
        let body = try event.json()
        switch targets[target] {
        case .webhook(let url, let secret):
            var options = HTTPClient.Options()
            options.timeout = settings.timeout
            options.maxResponseBody = 64 << 10
            let client = clients[target] ?? HTTPClient(options: options)
            clients[target] = client
            let headers = [HTTPField(name: "Content-Type", value: "application/json"),
                           HTTPField(name: "X-Edgeproxy-Event", value: event.event.rawValue),
                           HTTPField(name: "X-Edgeproxy-Event-Id", value: event.id),
                           HTTPField(name: "X-Edgeproxy-Timestamp", value: String(Int(Date().timeIntervalSince1970))),
                           HTTPField(name: WebhookSignature.header, value: try WebhookSignature.value(secret: secret, body: body))]
            let response: HTTPResponse
            do { response = try client.request(method: "POST", url: url, headers: headers, body: body) } catch {
                throw ACMEError(.events, "webhook \(url): \(error)")
            }
            guard (200..<300).contains(response.status) else {
                throw ACMEError(.events, "webhook \(url) answered \(response.status), not 2xx")
            }
        case .command(let command):
            // The JSON is a few hundred bytes: it fits the pipe whether or not the program reads it.
            try ExternalProgram.run(command, [event.event.rawValue, event.name], input: body, timeout: settings.timeout,
                                    what: "certificate event \(event.event.rawValue) for \(event.name)", code: .events,
                                    setting: "acme.events.command")
        }
    }
}
