import Config
import HTTP1

/// Request rules shared by the HTTP/1 and HTTP/2 fronts, so each is written once.
enum RequestPolicy {
    /// X-Forwarded-For is extended (a chain of proxies), -Proto and -Host are replaced: a client
    /// must not be able to claim a scheme or host it did not use.
    static func addForwarded(_ fields: inout [HTTPField], client: String, host: String?) {
        if let i = fields.firstIndex(where: { HTTPField.nameEquals($0.name, "x-forwarded-for") }) {
            fields[i].value += ", " + client
        } else {
            fields.append(HTTPField(name: "X-Forwarded-For", value: client))
        }
        fields.removeAll { HTTPField.nameEquals($0.name, "x-forwarded-proto") || HTTPField.nameEquals($0.name, "x-forwarded-host") }
        fields.append(HTTPField(name: "X-Forwarded-Proto", value: "https"))
        if let host { fields.append(HTTPField(name: "X-Forwarded-Host", value: host)) }
    }

    /// The body limit for a route: its own, else the global one (0 = unlimited).
    static func bodyLimit(route: Route, limits: Limits) -> Int64 { route.maxBodyBytes ?? limits.maxBodyBytes }
}
