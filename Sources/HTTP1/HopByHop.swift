/// Hop-by-hop fields (RFC 9110 §7.6.1) are for one connection only and never forwarded.
public enum HopByHop {
    static let names = ["connection", "keep-alive", "proxy-connection", "te", "trailer", "transfer-encoding",
                        "upgrade", "proxy-authenticate", "proxy-authorization", "content-length"]

    /// The fields without the hop-by-hop ones, those the Connection field names, and Content-Length
    /// (the forwarder re-frames bodies and writes its own), in a new section with `room` bytes to
    /// spare for the fields a forwarder adds: one allocation, whoever else holds `fields`. (Responses
    /// leave them out as they are parsed: `ResponseParser(endToEnd:)`.)
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
