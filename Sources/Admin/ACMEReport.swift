import Foundation

/// `GET /acme`: each managed certificate's schedule and last failure, pending challenges, and the
/// DNS-01, on-demand and event parts (null when off).
public struct ACMEReport: Encodable, Sendable {
    public struct Certificate: Encodable, Sendable {
        public var name: String
        public var names: [String]
        @Nullable public var profile: String?
        /// The CA the next attempt goes to.
        public var issuer: String
        /// The CA that issued the served certificate, when this process obtained it.
        @Nullable public var issuedBy: String?
        @Nullable public var serial: String?
        @Nullable public var notAfter: Date?
        @Nullable public var renewAt: Date?
        @Nullable public var ariWindow: Window?
        public var nextAttempt: Date
        public var failures: Int
        public var issued: Int
        @Nullable public var lastIssued: Date?
        @Nullable public var lastError: String?
        @Nullable public var lastProblem: Problem?

        public init(name: String, names: [String], profile: String?, issuer: String, issuedBy: String?, serial: String?,
                    notAfter: Date?, renewAt: Date?, ariWindow: Window?, nextAttempt: Date, failures: Int, issued: Int,
                    lastIssued: Date?, lastError: String?, lastProblem: Problem?) {
            self.name = name; self.names = names; self.profile = profile; self.issuer = issuer; self.issuedBy = issuedBy
            self.serial = serial; self.notAfter = notAfter; self.renewAt = renewAt; self.ariWindow = ariWindow
            self.nextAttempt = nextAttempt; self.failures = failures; self.issued = issued; self.lastIssued = lastIssued
            self.lastError = lastError; self.lastProblem = lastProblem
        }
    }

    /// The CA's suggested renewal window (ARI, RFC 9773).
    public struct Window: Encodable, Sendable {
        public var start: Date
        public var end: Date
        public init(start: Date, end: Date) { self.start = start; self.end = end }
    }

    /// The CA's problem document (RFC 8555 §6.7); absent parts are empty strings.
    public struct Problem: Encodable, Sendable {
        public struct Subproblem: Encodable, Sendable {
            public var type: String
            public var detail: String
            public var identifier: String
            public init(type: String, detail: String, identifier: String) { self.type = type; self.detail = detail; self.identifier = identifier }
        }
        public var type: String
        public var detail: String
        public var subproblems: [Subproblem]
        public init(type: String, detail: String, subproblems: [Subproblem]) { self.type = type; self.detail = detail; self.subproblems = subproblems }
    }

    /// Challenge answers being served now.
    public struct Pending: Encodable, Sendable {
        public var http01: Int
        public var tlsALPN01: Int
        enum CodingKeys: String, CodingKey { case http01 = "http-01", tlsALPN01 = "tls-alpn-01" }
        public init(http01: Int, tlsALPN01: Int) { self.http01 = http01; self.tlsALPN01 = tlsALPN01 }
    }

    public struct OnDemand: Encodable, Sendable {
        public var waiting: Int
        public var lookingUp: [String]
        public var held: Int
        public var denied: Int
        public var rateLimited: Int
        public var refusedBusy: Int
        public var startedInInterval: Int
        public init(waiting: Int, lookingUp: [String], held: Int, denied: Int, rateLimited: Int, refusedBusy: Int, startedInInterval: Int) {
            self.waiting = waiting; self.lookingUp = lookingUp; self.held = held; self.denied = denied; self.rateLimited = rateLimited
            self.refusedBusy = refusedBusy; self.startedInInterval = startedInInterval
        }
    }

    public struct DNS: Encodable, Sendable {
        public var provider: String
        public var recordsPresent: Int
        public var presented: Int
        public var failed: Int
        @Nullable public var lastPropagationSeconds: Double?
        @Nullable public var lastError: String?
        public init(provider: String, recordsPresent: Int, presented: Int, failed: Int, lastPropagationSeconds: Double?, lastError: String?) {
            self.provider = provider; self.recordsPresent = recordsPresent; self.presented = presented; self.failed = failed
            self.lastPropagationSeconds = lastPropagationSeconds; self.lastError = lastError
        }
    }

    /// Certificate events' deliveries: queued now, totals since start.
    public struct Events: Encodable, Sendable {
        public var queued: Int
        public var delivered: Int
        public var failed: Int
        public var dropped: Int
        public var retries: Int
        public var claimedElsewhere: Int
        @Nullable public var lastError: String?
        @Nullable public var lastErrorAt: Date?
        public init(queued: Int, delivered: Int, failed: Int, dropped: Int, retries: Int, claimedElsewhere: Int, lastError: String?,
                    lastErrorAt: Date?) {
            self.queued = queued; self.delivered = delivered; self.failed = failed; self.dropped = dropped; self.retries = retries
            self.claimedElsewhere = claimedElsewhere; self.lastError = lastError; self.lastErrorAt = lastErrorAt
        }
    }

    public var certificates: [Certificate]
    public var pendingChallenges: Pending
    @Nullable public var onDemand: OnDemand?
    @Nullable public var dns: DNS?
    @Nullable public var events: Events?

    public init(certificates: [Certificate], pendingChallenges: Pending, onDemand: OnDemand?, dns: DNS?, events: Events?) {
        self.certificates = certificates; self.pendingChallenges = pendingChallenges; self.onDemand = onDemand; self.dns = dns
        self.events = events
    }
}
