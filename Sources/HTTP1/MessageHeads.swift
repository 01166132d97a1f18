/// A parsed request head, with the facts a proxy needs already derived from its fields.
///
/// A reference: the parser makes it once and the session, the front and the access log share it,
/// where a copy of a struct would retain each of its strings and lists again (several times per request).
public final class RequestHead: Sendable, Equatable {
    /// As sent (methods are case-sensitive tokens, RFC 9110 §9.1).
    public let method: String
    /// origin-form "/path?q"; absolute-form is converted to origin-form; "*" only for OPTIONS;
    /// authority-form "host:port" only for CONNECT.
    public let target: String
    /// 0 or 1 (HTTP/1.0, HTTP/1.1).
    public let versionMinor: Int
    /// In order, names as sent, values trimmed of OWS.
    public let fields: HTTPFields
    /// Host value (or absolute-form authority), lower-cased, port kept.
    public let host: String?
    /// .none, .length(n) or .chunked.
    public let framing: BodyFraming
    /// HTTP/1.1 unless "Connection: close"; HTTP/1.0 only with "Connection: keep-alive".
    public let keepAlive: Bool
    /// "Expect: 100-continue" (case-insensitive).
    public let expectContinue: Bool
    /// The Upgrade value, only when Connection lists "upgrade" (and never for HTTP/1.0).
    public let upgrade: String?
    /// What the Connection fields said, for hop-by-hop removal.
    public let connection: ConnectionOptions

    public init(method: String, target: String, versionMinor: Int, fields: HTTPFields, host: String?,
                framing: BodyFraming, keepAlive: Bool, expectContinue: Bool, upgrade: String?,
                connection: ConnectionOptions) {
        self.method = method
        self.target = target
        self.versionMinor = versionMinor
        self.fields = fields
        self.host = host
        self.framing = framing
        self.keepAlive = keepAlive
        self.expectContinue = expectContinue
        self.upgrade = upgrade
        self.connection = connection
    }

    public static func == (a: RequestHead, b: RequestHead) -> Bool {
        a === b || (a.method == b.method && a.target == b.target && a.versionMinor == b.versionMinor && a.fields == b.fields
                    && a.host == b.host && a.framing == b.framing && a.keepAlive == b.keepAlive
                    && a.expectContinue == b.expectContinue && a.upgrade == b.upgrade && a.connection == b.connection)
    }
}

/// A parsed response head.
public struct ResponseHead: Sendable, Equatable {
    public var status: Int
    public var reason: String
    public var versionMinor: Int
    public var fields: HTTPFields
    /// .none, .length(n), .chunked or .untilClose (also for 101 and CONNECT 2xx tunnels).
    public var framing: BodyFraming
    public var keepAlive: Bool
    public var connection: ConnectionOptions
    /// The Content-Length field's value, checked (also when `framing` is .none, as for HEAD).
    public var contentLength: Int64?

    public init(status: Int, reason: String, versionMinor: Int, fields: HTTPFields, framing: BodyFraming,
                keepAlive: Bool, connection: ConnectionOptions, contentLength: Int64? = nil) {
        self.status = status
        self.reason = reason
        self.versionMinor = versionMinor
        self.fields = fields
        self.framing = framing
        self.keepAlive = keepAlive
        self.connection = connection
        self.contentLength = contentLength
    }
}

public enum RequestEvent: Sendable, Equatable {
    /// Feed more bytes (consumed may be 0: keep the unconsumed bytes and append).
    case needMore
    case head(RequestHead)
    /// Body bytes = input[range], indices into the buffer given to this call; already de-chunked.
    case body(Range<Int>)
    /// Message complete; the parser is ready for the next request (pipelining).
    case end(trailers: [HTTPField])
}

public enum ResponseEvent: Sendable, Equatable {
    case needMore
    case head(ResponseHead)
    case body(Range<Int>)
    case end(trailers: [HTTPField])
}
