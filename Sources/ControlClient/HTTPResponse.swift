import HTTP1

/// One HTTP response, body fully read.
public struct HTTPResponse: Sendable {
    public var status: Int
    public var headers: [HTTPField]
    public var body: [UInt8]

    public init(status: Int, headers: [HTTPField], body: [UInt8]) { self.status = status; self.headers = headers; self.body = body }

    /// The first value of the field `name` (case-insensitive).
    public func header(_ name: String) -> String? { headers.firstValue(named: name) }
}
