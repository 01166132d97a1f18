import Foundation

/// The admin API's routes and access check, apart from sockets so both are unit-tested.
public enum AdminRoute: Equatable, Sendable {
    case health
    case metrics
    /// The node at a glance: version, uptime, listeners, certificate count, ACME and cluster.
    case status
    case listCertificates
    /// One certificate by its name (or, failing that, a name it serves).
    case showCertificate(String)
    case putCertificate(String)
    case deleteCertificate(String)
    case reload
    /// ACME: each managed certificate's expiry, next attempt and last error.
    case acmeStatus
    /// ACME: revoke the certificate served for a name (`?reason=`, RFC 5280 name or code), then
    /// obtain its replacement.
    case acmeRevoke(String, reason: String?)
    /// ACME: obtain a new certificate for a name now, whatever its renewal schedule says.
    case acmeRenew(String)
    /// The cluster: this node, the other live nodes, etcd's state.
    case clusterStatus
    /// Each upstream server's health-check state and counters.
    case upstreams
    /// The hot-path counters as JSON totals (the dashboard's rates).
    case traffic
    /// The OpenAPI 3.1 document describing every route.
    case openAPI
    /// The HTML dashboard, at `/` and `/dashboard`; `POST /dashboard/login` takes the token from its form.
    case dashboard
    case dashboardLogin
    case notFound
    case methodNotAllowed(allow: String)
}

public struct AdminRequest: Sendable {
    public var method: String
    public var path: String
    public var authorization: String?
    public var body: [UInt8]
    public var peerIsLoopback: Bool
    /// The `Cookie` field: the dashboard's session (see `authorize`).
    public var cookie: String?
    public init(method: String, path: String, authorization: String?, body: [UInt8], peerIsLoopback: Bool, cookie: String? = nil) {
        self.method = method; self.path = path; self.authorization = authorization
        self.body = body; self.peerIsLoopback = peerIsLoopback; self.cookie = cookie
    }
}

public struct AdminResponse: Sendable, Equatable {
    public var status: Int
    public var contentType: String
    public var body: [UInt8]
    public var headers: [(String, String)] = []

    public init(status: Int, contentType: String = "application/json", body: String, headers: [(String, String)] = []) {
        self.init(status: status, contentType: contentType, bytes: Array(body.utf8), headers: headers)
    }

    public init(status: Int, contentType: String, bytes: [UInt8], headers: [(String, String)] = []) {
        self.status = status; self.contentType = contentType; self.body = bytes; self.headers = headers
    }

    /// `{"error": reason}` with the status.
    public static func error(_ status: Int, _ reason: String, headers: [(String, String)] = []) -> AdminResponse {
        .json(ErrorAnswer(error: reason), status: status, headers: headers)
    }

    public static func == (a: AdminResponse, b: AdminResponse) -> Bool {
        a.status == b.status && a.contentType == b.contentType && a.body == b.body
            && a.headers.map { "\($0.0): \($0.1)" } == b.headers.map { "\($0.0): \($0.1)" }
    }
}

public enum AdminRouter {
    public static func route(method: String, path rawPath: String) -> AdminRoute {
        let path = String(rawPath.prefix { $0 != "?" })
        switch path {
        case "/healthz": return method == "GET" || method == "HEAD" ? .health : .methodNotAllowed(allow: "GET, HEAD")
        case "/metrics": return method == "GET" ? .metrics : .methodNotAllowed(allow: "GET")
        case "/status": return method == "GET" ? .status : .methodNotAllowed(allow: "GET")
        case "/certificates", "/certificates/": return method == "GET" ? .listCertificates : .methodNotAllowed(allow: "GET")
        case "/reload": return method == "POST" ? .reload : .methodNotAllowed(allow: "POST")
        case "/acme": return method == "GET" ? .acmeStatus : .methodNotAllowed(allow: "GET")
        case "/cluster": return method == "GET" ? .clusterStatus : .methodNotAllowed(allow: "GET")
        case "/upstreams": return method == "GET" ? .upstreams : .methodNotAllowed(allow: "GET")
        case "/traffic": return method == "GET" ? .traffic : .methodNotAllowed(allow: "GET")
        case "/openapi.json": return method == "GET" ? .openAPI : .methodNotAllowed(allow: "GET")
        case "/", "/dashboard": return method == "GET" ? .dashboard : .methodNotAllowed(allow: "GET")
        case "/dashboard/login": return method == "POST" ? .dashboardLogin : .methodNotAllowed(allow: "POST")
        default:
            let revoke = "/acme/revoke/", renew = "/acme/renew/"
            if path.hasPrefix(revoke) {
                let name = String(path.dropFirst(revoke.count))
                guard isValidName(name) else { return .notFound }
                guard method == "POST" else { return .methodNotAllowed(allow: "POST") }
                return .acmeRevoke(name.lowercased(), reason: query(rawPath, "reason"))
            }
            if path.hasPrefix(renew) {
                let name = String(path.dropFirst(renew.count))
                guard isValidName(name) else { return .notFound }
                guard method == "POST" else { return .methodNotAllowed(allow: "POST") }
                return .acmeRenew(name.lowercased())
            }
            let prefix = "/certificates/"
            guard path.hasPrefix(prefix) else { return .notFound }
            let name = String(path.dropFirst(prefix.count))
            guard isValidName(name) else { return .notFound }
            switch method {
            case "GET": return .showCertificate(name)
            case "PUT": return .putCertificate(name)
            case "DELETE": return .deleteCertificate(name)
            default: return .methodNotAllowed(allow: "GET, PUT, DELETE")
            }
        }
    }

    /// The value of `key` in the query string (`?a=1&key=value`), percent-decoded; nil when absent.
    static func query(_ rawPath: String, _ key: String) -> String? {
        guard let q = rawPath.firstIndex(of: "?") else { return nil }
        for pair in rawPath[rawPath.index(after: q)...].split(separator: "&") {
            let parts = pair.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            if parts.first == Substring(key) { return parts.count > 1 ? String(parts[1]).removingPercentEncoding ?? String(parts[1]) : "" }
        }
        return nil
    }

    /// Certificate names become file names in the certificate directory: letters, digits, `.`,
    /// `-`, `_`, `*` only, no leading dot (no `..`, no `/`, no hidden files).
    public static func isValidName(_ name: String) -> Bool {
        guard !name.isEmpty, name.count <= 253, !name.hasPrefix(".") else { return false }
        return name.unicodeScalars.allSatisfy { c in
            (c >= "a" && c <= "z") || (c >= "A" && c <= "Z") || (c >= "0" && c <= "9") || c == "." || c == "-" || c == "_" || c == "*"
        }
    }

    /// nil when the request may proceed. With a token configured, every request needs
    /// `Authorization: Bearer TOKEN`; without one, only loopback peers are served. A browser cannot
    /// send the header, so the dashboard's cookie (set from its login, HttpOnly, SameSite=Strict)
    /// holds the token instead, and is taken for GET and HEAD only: it can read, never change
    /// anything, even if a page elsewhere got a request sent with it.
    public static func authorize(token: String?, authorization: String?, peerIsLoopback: Bool,
                                 cookie: String? = nil, method: String = "GET") -> AdminResponse? {
        guard let token else {
            if peerIsLoopback { return nil }
            return .error(403, "the admin API has no token configured and answers loopback clients only; set admin.token")
        }
        if authorization == nil, method == "GET" || method == "HEAD", let session = DashboardPage.session(fromCookie: cookie),
           constantTimeEquals(Array(session.utf8), Array(token.utf8)) {
            return nil
        }
        let challenge = [("WWW-Authenticate", "Bearer realm=\"edgeproxy\"")]
        guard let header = authorization, header.count > 7, header.prefix(7).lowercased() == "bearer " else {
            return .error(401, "missing bearer token (send Authorization: Bearer TOKEN)", headers: challenge)
        }
        guard constantTimeEquals(Array(header.dropFirst(7).utf8), Array(token.utf8)) else {
            return .error(401, "wrong bearer token", headers: challenge)
        }
        return nil
    }

    /// Compares without an early exit, so timing does not tell how much of a guess was right.
    static func constantTimeEquals(_ a: [UInt8], _ b: [UInt8]) -> Bool {
        var diff = UInt8(a.count == b.count ? 0 : 1)
        for i in 0..<max(a.count, b.count) {
            diff |= (i < a.count ? a[i] : 0) ^ (i < b.count ? b[i] : 0)
        }
        return diff == 0
    }
}
