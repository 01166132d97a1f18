import Foundation

/// `GET /status`: the node at a glance. One Codable type, so the node writes it and
/// `edgeproxy status` reads it with the same field names.
public struct NodeStatus: Codable, Equatable, Sendable {
    public struct ACME: Codable, Equatable, Sendable {
        /// Certificates the ACME manager keeps issued.
        public var managed: Int
        /// Of those, how many failed their last attempt (`GET /acme` says why).
        public var failing: Int
        public init(managed: Int, failing: Int) { self.managed = managed; self.failing = failing }
    }

    public struct Cluster: Codable, Equatable, Sendable {
        public var node: String
        public var etcdConnected: Bool
        public var certificates: Int
        public init(node: String, etcdConnected: Bool, certificates: Int) {
            self.node = node; self.etcdConnected = etcdConnected; self.certificates = certificates
        }
    }

    public var version: String
    public var commit: String
    public var openssl: String
    public var nghttp2: String
    public var pid: Int32
    public var started: Date
    public var uptimeSeconds: Int
    /// The configuration file the node runs (and reloads).
    public var config: String
    public var workers: Int
    public var https: [String]
    public var http: [String]
    /// Certificates in the store, from every source.
    public var certificates: Int
    public var openConnections: Int
    /// nil: ACME is off.
    public var acme: ACME?
    /// nil: a single node.
    public var cluster: Cluster?

    public init(version: String, commit: String, openssl: String, nghttp2: String, pid: Int32, started: Date, uptimeSeconds: Int,
                config: String, workers: Int, https: [String], http: [String], certificates: Int, openConnections: Int,
                acme: ACME? = nil, cluster: Cluster? = nil) {
        self.version = version; self.commit = commit; self.openssl = openssl; self.nghttp2 = nghttp2; self.pid = pid
        self.started = started; self.uptimeSeconds = uptimeSeconds; self.config = config; self.workers = workers
        self.https = https; self.http = http; self.certificates = certificates; self.openConnections = openConnections
        self.acme = acme; self.cluster = cluster
    }

    // Explicit, so an absent `acme`/`cluster` is written as null: scripts can tell "off" from a missing field.
    public func encode(to encoder: Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(version, forKey: .version); try c.encode(commit, forKey: .commit)
        try c.encode(openssl, forKey: .openssl); try c.encode(nghttp2, forKey: .nghttp2)
        try c.encode(pid, forKey: .pid); try c.encode(started, forKey: .started); try c.encode(uptimeSeconds, forKey: .uptimeSeconds)
        try c.encode(config, forKey: .config); try c.encode(workers, forKey: .workers)
        try c.encode(https, forKey: .https); try c.encode(http, forKey: .http)
        try c.encode(certificates, forKey: .certificates); try c.encode(openConnections, forKey: .openConnections)
        try c.encode(acme, forKey: .acme); try c.encode(cluster, forKey: .cluster)
    }

    /// One line of JSON (and a newline), as every admin answer (AdminJSON).
    public var json: String { String(decoding: AdminJSON.encode(self), as: UTF8.self) }

    public static func decode(_ bytes: [UInt8]) throws -> NodeStatus {
        let decoder = JSONDecoder()
        decoder.keyDecodingStrategy = .convertFromSnakeCase
        decoder.dateDecodingStrategy = .iso8601
        return try decoder.decode(NodeStatus.self, from: Data(bytes))
    }
}
