import Foundation

/// `GET /cluster`: this node's view of the fleet. `nodes` is null (and `nodes_error` says why)
/// when etcd cannot list the members within a second.
public struct ClusterReport: Encodable, Sendable {
    public struct Member: Encodable, Sendable {
        public var node: String
        public var started: Date
        public var revision: Int64
        public var certificates: Int
        public var updated: Date
        public init(node: String, started: Date, revision: Int64, certificates: Int, updated: Date) {
            self.node = node; self.started = started; self.revision = revision; self.certificates = certificates; self.updated = updated
        }
    }

    public struct Endpoint: Encodable, Sendable {
        public var url: String
        public var healthy: Bool
        public init(url: String, healthy: Bool) { self.url = url; self.healthy = healthy }
    }

    public var node: String
    public var prefix: String
    public var etcdConnected: Bool
    public var revision: Int64
    public var certificates: Int
    public var refused: Int
    public var outages: Int
    @Nullable public var lastError: String?
    @Nullable public var lastApplied: Date?
    @Nullable public var lastLagSeconds: Double?
    @Nullable public var leader: String?
    @Nullable public var nodes: [Member]?
    @Nullable public var nodesError: String?
    public var endpoints: [Endpoint]

    public init(node: String, prefix: String, etcdConnected: Bool, revision: Int64, certificates: Int, refused: Int, outages: Int,
                lastError: String?, lastApplied: Date?, lastLagSeconds: Double?, leader: String?, nodes: [Member]?, nodesError: String?,
                endpoints: [Endpoint]) {
        self.node = node; self.prefix = prefix; self.etcdConnected = etcdConnected; self.revision = revision
        self.certificates = certificates; self.refused = refused; self.outages = outages; self.lastError = lastError
        self.lastApplied = lastApplied; self.lastLagSeconds = lastLagSeconds; self.leader = leader; self.nodes = nodes
        self.nodesError = nodesError; self.endpoints = endpoints
    }
}
