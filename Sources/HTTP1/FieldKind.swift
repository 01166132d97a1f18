/// The fields whose meaning the parsers need, recognised from the name bytes before any String exists.
enum FieldKind {
    case other, host, contentLength, transferEncoding, connection, expect, upgrade

    init(_ name: UnsafeRawBufferPointer) {
        // Dispatch on length first: most fields are rejected by one integer compare.
        switch name.count {
        case 4: self = name.equalsLowercased("host") ? .host : .other
        case 6: self = name.equalsLowercased("expect") ? .expect : .other
        case 7: self = name.equalsLowercased("upgrade") ? .upgrade : .other
        case 10: self = name.equalsLowercased("connection") ? .connection : .other
        case 14: self = name.equalsLowercased("content-length") ? .contentLength : .other
        case 17: self = name.equalsLowercased("transfer-encoding") ? .transferEncoding : .other
        default: self = .other
        }
    }

    /// Hop-by-hop (RFC 9110 §7.6.1), or Content-Length, which a forwarder writes itself: what
    /// `HopByHop.isHopByHop` answers for these names, without comparing them again.
    var isHopByHop: Bool {
        switch self {
        case .contentLength, .transferEncoding, .connection, .upgrade: true
        case .other, .host, .expect: false
        }
    }
}
