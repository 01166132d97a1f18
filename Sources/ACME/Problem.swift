/// An ACME problem document (RFC 8555 §6.7, RFC 7807): what the CA says went wrong.
public struct Problem: Codable, Sendable, Equatable, CustomStringConvertible {
    public var type: String?
    public var detail: String?
    public var status: Int?
    public var instance: String?
    /// Per-identifier problems (RFC 8555 §6.7.1), e.g. one per name of an order.
    public var subproblems: [Subproblem]?

    public struct Subproblem: Codable, Sendable, Equatable {
        public var type: String?
        public var detail: String?
        public var identifier: Identifier?
    }

    public init(type: String?, detail: String?, status: Int? = nil, subproblems: [Subproblem]? = nil) {
        self.type = type; self.detail = detail; self.status = status; self.subproblems = subproblems
    }

    /// The type without the "urn:ietf:params:acme:error:" namespace (e.g. "badNonce").
    public var shortType: String? { type.map { $0.hasPrefix(Self.namespace) ? String($0.dropFirst(Self.namespace.count)) : $0 } }

    public var description: String {
        var text = "\(type ?? "about:blank"): \(detail ?? "(no detail)")"
        for sub in subproblems ?? [] {
            text += "; \(sub.identifier?.value ?? "?"): \(sub.type ?? "?"): \(sub.detail ?? "")"
        }
        return text
    }

    public func `is`(_ type: String) -> Bool { self.type == type }

    // Error types (RFC 8555 §6.7, Table 1), the ones this client acts on or reports.
    public static let namespace = "urn:ietf:params:acme:error:"
    /// Stale or unknown nonce: retry with the Replay-Nonce of this response (§6.5).
    public static let badNonce = namespace + "badNonce"
    /// onlyReturnExisting found no account for this key (§7.3.1).
    public static let accountDoesNotExist = namespace + "accountDoesNotExist"
    /// EAB required, missing or invalid (§7.3.4).
    public static let externalAccountRequired = namespace + "externalAccountRequired"
    public static let unauthorized = namespace + "unauthorized"
    public static let rateLimited = namespace + "rateLimited"
    public static let connection = namespace + "connection"
    public static let incorrectResponse = namespace + "incorrectResponse"
    public static let malformed = namespace + "malformed"
    public static let orderNotReady = namespace + "orderNotReady"
    public static let badCSR = namespace + "badCSR"
    public static let userActionRequired = namespace + "userActionRequired"
    public static let serverInternal = namespace + "serverInternal"
}

/// Why an ACME operation failed. A struct with a stable `code` rather than an enum, so new
/// failures never break callers (the lesson of swift-certificates' Error.swift).
public struct ACMEError: Error, Sendable, CustomStringConvertible {
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        let raw: String
        public var description: String { raw }
        /// The CA answered with a problem document (see `problem`).
        public static let problem = Code(raw: "problem")
        /// An authorization ended invalid (the challenge's problem is in `problem`).
        public static let authorizationFailed = Code(raw: "authorizationFailed")
        /// An order ended invalid.
        public static let orderFailed = Code(raw: "orderFailed")
        /// Polling did not reach a final state in time.
        public static let timedOut = Code(raw: "timedOut")
        /// No configured solver matches any challenge offered.
        public static let noSolver = Code(raw: "noSolver")
        /// The response was not what RFC 8555 says it should be.
        public static let protocolViolation = Code(raw: "protocolViolation")
        /// Connection, TLS or framing failure talking to the CA.
        public static let transport = Code(raw: "transport")
        public static let storage = Code(raw: "storage")
        /// The DNS-01 provider failed: an UPDATE refused, a zone not found, a name server unreachable.
        public static let dns = Code(raw: "dns")
        public static let unsupportedKey = Code(raw: "unsupportedKey")
    }

    public let code: Code
    public let reason: String
    /// The CA's problem document when it sent one (type, detail, subproblems).
    public let problem: Problem?
    /// HTTP status of the CA response, when there was one.
    public let status: Int?
    /// Seconds the CA asked us to wait (Retry-After on 429/503), for the retry scheduler.
    public let retryAfter: Double?
    public let file: String
    public let line: Int

    public init(_ code: Code, _ reason: String, problem: Problem? = nil, status: Int? = nil, retryAfter: Double? = nil,
                file: String = #fileID, line: Int = #line) {
        self.code = code; self.reason = reason; self.problem = problem; self.status = status
        self.retryAfter = retryAfter; self.file = file; self.line = line
    }

    public var description: String {
        var text = "ACME \(code): \(reason)"
        if let problem { text += " [\(problem)]" }
        if let retryAfter { text += " (retry after \(Int(retryAfter)) s)" }
        return text
    }

    static let unsupportedKey = ACMEError(.unsupportedKey, "ACME account keys must be P-256 (ES256)")
}
