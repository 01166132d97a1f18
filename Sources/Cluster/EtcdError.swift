/// Why an etcd call failed: a stable `code`, etcd's own code and message when it answered, and a
/// `reason` that says what to do next.
public struct EtcdError: Error, Sendable, CustomStringConvertible {
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        let raw: String
        public var description: String { raw }
        /// No endpoint answered before the deadline (refused, reset, TLS failure).
        public static let unreachable = Code(raw: "unreachable")
        /// Endpoints accepted connections but did not answer in time.
        public static let timeout = Code(raw: "timeout")
        /// etcd refused the request (`etcdCode` is the gRPC status code, `message` etcd's text).
        public static let etcd = Code(raw: "etcd")
        /// The revision asked for was compacted away (`compactRevision`): re-read, then watch on.
        public static let compacted = Code(raw: "compacted")
        /// The answer was not what the gateway sends.
        public static let badResponse = Code(raw: "badResponse")
        /// Authentication failed (bad user name or password, or permission denied).
        public static let auth = Code(raw: "auth")
        public static let cancelled = Code(raw: "cancelled")
    }

    public let code: Code
    public let reason: String
    public let etcdCode: Int?
    public let message: String?
    /// For `.compacted`: the oldest revision still available, when etcd said.
    public let compactRevision: Int64?
    /// A write may have been applied even though it failed (the connection broke after sending,
    /// or etcd answered "leader changed" / "request timed out"): read back before retrying it.
    public let mayHaveBeenApplied: Bool
    public let file: String
    public let line: Int

    public init(_ code: Code, _ reason: String, etcdCode: Int? = nil, message: String? = nil, compactRevision: Int64? = nil,
                mayHaveBeenApplied: Bool? = nil, file: String = #fileID, line: Int = #line) {
        self.code = code; self.reason = reason; self.etcdCode = etcdCode; self.message = message
        self.compactRevision = compactRevision; self.file = file; self.line = line
        self.mayHaveBeenApplied = mayHaveBeenApplied
            ?? (message.map { $0.contains("leader changed") || $0.contains("request timed out") } ?? false)
    }

    public var description: String { "etcd \(code): \(reason)" }

    /// gRPC codes (google.golang.org/grpc/codes) etcd uses for its own failures.
    static let grpcUnavailable = 14, grpcUnauthenticated = 16, grpcOutOfRange = 11

    /// etcd's answer to a failed unary call.
    static func fromEtcd(code: Int, message: String) -> EtcdError {
        if message.contains("required revision has been compacted") {
            return EtcdError(.compacted, "\(message): the revision is gone; read the current state and continue from its revision",
                             etcdCode: code, message: message)
        }
        if code == grpcUnauthenticated || message.contains("authentication failed") || message.contains("permission denied")
            || message.contains("user name is empty") {
            return EtcdError(.auth, "\(message): check the etcd user name, password and role", etcdCode: code, message: message)
        }
        return EtcdError(.etcd, message, etcdCode: code, message: message)
    }

    /// Safe to send again for a write: it certainly was not applied.
    var isSafeToResend: Bool { isRetriable && !mayHaveBeenApplied }

    /// Worth trying on another member: the cluster is electing a leader or this member is cut off.
    var isRetriable: Bool {
        guard code == .etcd, let message else { return code == .unreachable || code == .timeout }
        return etcdCode == Self.grpcUnavailable || message.contains("leader changed") || message.contains("no leader")
            || message.contains("request timed out")
    }

    /// The token is no longer known to the member (expired, or the member restarted).
    var isStaleToken: Bool {
        guard let message else { return false }
        return message.contains("invalid auth token") || message.contains("token expired") || message.contains("user name is empty")
    }
}
