import HTTP1

/// A header block's pseudo-header fields (RFC 9113 §8.3), set apart as the block is decoded: the
/// receiver reads them by name, and forwards the other fields without a pass to take them out.
public struct HTTP2PseudoHeaders: Sendable, Equatable {
    public var method: String?
    public var scheme: String?
    public var authority: String?
    public var path: String?
    /// RFC 8441's extended CONNECT.
    public var connectProtocol: String?
    public var status: String?

    public init() {}

    /// Names nghttp2 does not know never get here (it rejects the block); a repeated one is refused
    /// by it too, so the last value is the only one.
    mutating func set(name: UnsafeRawBufferPointer, value: UnsafeRawBufferPointer) {
        let v = String(decoding: value, as: UTF8.self)
        switch name.count {
        case 5: if name.equalsLowercased(":path") { path = v }
        case 7:
            if name.equalsLowercased(":method") { method = v }
            else if name.equalsLowercased(":scheme") { scheme = v }
            else if name.equalsLowercased(":status") { status = v }
        case 9: if name.equalsLowercased(":protocol") { connectProtocol = v }
        case 10: if name.equalsLowercased(":authority") { authority = v }
        default: break
        }
    }

    /// As fields with their ':' names, in RFC 9113's order (for tests and tools).
    public var fields: [HTTPField] {
        [(":status", status), (":method", method), (":scheme", scheme), (":authority", authority), (":path", path),
         (":protocol", connectProtocol)].compactMap { name, value in value.map { HTTPField(name: name, value: $0) } }
    }
}
