import Foundation
import Testing
@testable import Admin

@Suite struct AdminJSONTests {
    @Test func absentValuesAreWrittenAsNull() {
        let text = String(decoding: AdminJSON.encode(RenewingAnswer(renewing: "a.test", serial: nil)), as: UTF8.self)
        #expect(text == "{\"renewing\":\"a.test\",\"serial\":null}\n")
        // Optional fields that are absent when unset stay absent (the reload answer's `error`).
        let deleted = String(decoding: AdminJSON.encode(DeletedAnswer(deleted: "a.test")), as: UTF8.self)
        #expect(deleted == "{\"deleted\":\"a.test\"}\n")
    }

    @Test func errorsAreEscapedJSON() throws {
        let r = AdminResponse.error(422, "bad \"name\"\n")
        let decoded = try JSONSerialization.jsonObject(with: Data(r.body)) as? [String: String]
        #expect(decoded == ["error": "bad \"name\"\n"] && r.contentType == "application/json")
    }

    @Test func keysAreSnakeCaseAndDatesISO8601() {
        let window = ACMEReport.Window(start: Date(timeIntervalSince1970: 0), end: Date(timeIntervalSince1970: 86400))
        let pending = ACMEReport.Pending(http01: 1, tlsALPN01: 2)
        #expect(String(decoding: AdminJSON.encode(window), as: UTF8.self) == "{\"end\":\"1970-01-02T00:00:00Z\",\"start\":\"1970-01-01T00:00:00Z\"}\n")
        #expect(String(decoding: AdminJSON.encode(pending), as: UTF8.self) == "{\"http-01\":1,\"tls-alpn-01\":2}\n")
    }

    /// Every path in openapi.json reaches a route (no 404 from the router), with a name filled in.
    @Test func everyDocumentedPathIsRouted() throws {
        let doc = try #require(try JSONSerialization.jsonObject(with: Data(PackageResources.openapi_json)) as? [String: Any])
        let paths = try #require(doc["paths"] as? [String: [String: Any]])
        #expect(paths.count >= 15)
        for (path, item) in paths {
            for method in item.keys where method != "parameters" {
                let route = AdminRouter.route(method: method.uppercased(), path: path.replacingOccurrences(of: "{name}", with: "a.test"))
                #expect(route != .notFound, "\(method) \(path)")
                if case .methodNotAllowed = route { Issue.record("\(method) \(path) is documented but not allowed") }
            }
        }
    }
}

@Suite struct DashboardAccessTests {
    let token = "s3cret token;"

    @Test func routes() {
        #expect(AdminRouter.route(method: "GET", path: "/") == .dashboard)
        #expect(AdminRouter.route(method: "GET", path: "/dashboard?token=x") == .dashboard)
        #expect(AdminRouter.route(method: "POST", path: "/dashboard/login") == .dashboardLogin)
        #expect(AdminRouter.route(method: "GET", path: "/dashboard/login") == .methodNotAllowed(allow: "POST"))
        #expect(AdminRouter.route(method: "GET", path: "/traffic") == .traffic)
        #expect(AdminRouter.route(method: "GET", path: "/openapi.json") == .openAPI)
    }

    @Test func theCookieReadsButNeverChanges() {
        let cookie = "other=1; edgeproxy_admin=s3cret%20token%3B"
        #expect(AdminRouter.authorize(token: token, authorization: nil, peerIsLoopback: false, cookie: cookie, method: "GET") == nil)
        #expect(AdminRouter.authorize(token: token, authorization: nil, peerIsLoopback: false, cookie: cookie, method: "POST")?.status == 401)
        #expect(AdminRouter.authorize(token: token, authorization: nil, peerIsLoopback: false, cookie: cookie, method: "DELETE")?.status == 401)
        #expect(AdminRouter.authorize(token: token, authorization: nil, peerIsLoopback: false, cookie: "edgeproxy_admin=nope", method: "GET")?.status == 401)
    }

    @Test func loginSetsAStrictHttpOnlyCookie() throws {
        let login = AdminRequest(method: "POST", path: "/dashboard/login", authorization: nil,
                                 body: Array("token=s3cret+token%3B".utf8), peerIsLoopback: false)
        let answer = DashboardPage.respond(.dashboardLogin, login, token: token)
        #expect(answer.status == 303)
        let cookie = try #require(answer.headers.first { $0.0 == "Set-Cookie" }?.1)
        #expect(cookie == "edgeproxy_admin=s3cret%20token%3B; Path=/; HttpOnly; SameSite=Strict")
        #expect(DashboardPage.session(fromCookie: String(cookie.prefix { $0 != ";" })) == token)
        let wrong = AdminRequest(method: "GET", path: "/dashboard?token=nope", authorization: nil, body: [], peerIsLoopback: true)
        let refused = DashboardPage.respond(.dashboard, wrong, token: token)
        #expect(refused.status == 401 && refused.contentType.hasPrefix("text/html"))
        #expect(String(decoding: refused.body, as: UTF8.self).contains("not this node's admin.token"))
    }

    @Test func withoutATokenOnlyLoopbackSeesThePage() {
        let request = { (loopback: Bool) in AdminRequest(method: "GET", path: "/dashboard", authorization: nil, body: [], peerIsLoopback: loopback) }
        #expect(DashboardPage.respond(.dashboard, request(true), token: nil).status == 200)
        #expect(DashboardPage.respond(.dashboard, request(false), token: nil).status == 403)
    }
}
