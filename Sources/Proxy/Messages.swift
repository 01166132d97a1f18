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

/// Hop-by-hop fields (RFC 9110 §7.6.1) are for one connection only and never forwarded.
public enum HopByHop {
    static let names = ["connection", "keep-alive", "proxy-connection", "te", "trailer", "transfer-encoding",
                        "upgrade", "proxy-authenticate", "proxy-authorization", "content-length"]

    /// Drops hop-by-hop fields, those the Connection field names, and Content-Length (the forwarder
    /// re-frames bodies and writes its own), in place. Compares bytes: this runs for every field of
    /// every request and response.
    public static func remove(from fields: inout HTTPFields, connection: ConnectionOptions) {
        fields.removeAll { name, _ in isHopByHop(name) || connection.names(name) }
    }

    /// The fields without the hop-by-hop ones (see `remove(from:connection:)`), in a new section with
    /// `room` bytes to spare for the fields a forwarder adds: one allocation, whoever else holds `fields`.
    public static func endToEnd(_ fields: HTTPFields, connection: ConnectionOptions, room: Int = 0) -> HTTPFields {
        fields.filter(room: room) { name, _ in !isHopByHop(name) && !connection.names(name) }
    }

    /// Whether `name` is one of `names` (any case), picked by length first: no list is walked per field.
    public static func isHopByHop(_ name: UnsafeRawBufferPointer) -> Bool {
        switch name.count {
        case 2: return name.equalsLowercased("te")
        case 7: return name.equalsLowercased("upgrade") || name.equalsLowercased("trailer")
        case 10: return name.equalsLowercased("connection") || name.equalsLowercased("keep-alive")
        case 14: return name.equalsLowercased("content-length")
        case 16: return name.equalsLowercased("proxy-connection")
        case 17: return name.equalsLowercased("transfer-encoding")
        case 18: return name.equalsLowercased("proxy-authenticate")
        case 19: return name.equalsLowercased("proxy-authorization")
        default: return false
        }
    }

    static func isHopByHop(_ name: String) -> Bool {
        name.withBytes { isHopByHop($0) }
    }
}
