import EventLoop
import HTTP1

/// The client connection a request for a PROXY-header upstream belongs to: its ends go into the
/// header, and the upstream connection opened with it serves only that client's requests.
public struct ClientConnection: Sendable {
    public var client: SocketAddress
    public var local: SocketAddress?
    public var owner: ObjectIdentifier
    public init(client: SocketAddress, local: SocketAddress?, owner: ObjectIdentifier) {
        self.client = client; self.local = local; self.owner = owner
    }
}

/// A response head as the proxy hands it to the front.
public struct ProxyResponseHead: Sendable {
    public var status: Int
    public var reason: String
    /// End-to-end fields only (hop-by-hop and framing fields removed).
    public var fields: HTTPFields
    /// Known body length; nil when the origin streams an unknown length.
    public var bodyLength: Int64?
    /// False for HEAD responses, 1xx, 204 and 304: nothing follows the head.
    public var hasBody: Bool
}
