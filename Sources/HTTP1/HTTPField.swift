/// One field line as it appeared on the wire: the name as sent, the value without surrounding OWS
/// (RFC 9110 §5, RFC 9112 §5).
public struct HTTPField: Sendable, Equatable {
    public var name: String
    public var value: String

    public init(name: String, value: String) {
        self.name = name
        self.value = value
    }
}

extension HTTPField {
    /// Field names are case-insensitive (RFC 9110 §5.1). They are tokens, so ASCII folding is enough
    /// and cheaper than Unicode-aware comparison.
    public static func nameEquals(_ a: String, _ b: String) -> Bool {
        let x = a.utf8, y = b.utf8
        guard x.count == y.count else { return false }
        // Native strings are contiguous: compare their bytes directly (this runs per field per message).
        if let same = x.withContiguousStorageIfAvailable({ p in
            y.withContiguousStorageIfAvailable { q -> Bool in
                for i in 0..<p.count where p[i] != q[i] && ASCII.lower(p[i]) != ASCII.lower(q[i]) { return false }
                return true
            }
        }), let same { return same }
        for (p, q) in zip(x, y) where p != q && ASCII.lower(p) != ASCII.lower(q) {
            return false
        }
        return true
    }
}

extension Array where Element == HTTPField {
    /// The value of the first field called `name` (case-insensitive), if any.
    public func firstValue(named name: String) -> String? {
        first { HTTPField.nameEquals($0.name, name) }?.value
    }
}

/// How a message body is delimited (RFC 9112 §6.3).
public enum BodyFraming: Sendable, Equatable {
    /// No body at all (requests without Content-Length/Transfer-Encoding; HEAD, 1xx, 204, 304 responses).
    case none
    /// Exactly this many bytes (Content-Length; 0 is kept as `.length(0)`, so it can be forwarded as sent).
    case length(Int64)
    /// Transfer-Encoding: chunked; the parsers hand out de-chunked bytes.
    case chunked
    /// Everything until the connection closes (responses only; also tunnels after 101 / CONNECT 2xx).
    case untilClose
}
