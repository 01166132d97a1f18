import Testing
@testable import Admin
import Foundation
import Metrics

@Suite struct AdminRouterTests {
    @Test func routes() {
        #expect(AdminRouter.route(method: "GET", path: "/healthz") == .health)
        #expect(AdminRouter.route(method: "GET", path: "/metrics") == .metrics)
        #expect(AdminRouter.route(method: "GET", path: "/certificates") == .listCertificates)
        #expect(AdminRouter.route(method: "PUT", path: "/certificates/a.test") == .putCertificate("a.test"))
        #expect(AdminRouter.route(method: "DELETE", path: "/certificates/a.test") == .deleteCertificate("a.test"))
        #expect(AdminRouter.route(method: "POST", path: "/reload") == .reload)
        #expect(AdminRouter.route(method: "GET", path: "/reload") == .methodNotAllowed(allow: "POST"))
        #expect(AdminRouter.route(method: "GET", path: "/nope") == .notFound)
        #expect(AdminRouter.route(method: "POST", path: "/acme/revoke/A.test?reason=keyCompromise") == .acmeRevoke("a.test", reason: "keyCompromise"))
        #expect(AdminRouter.route(method: "POST", path: "/acme/revoke/a.test?x=1&reason=super%73eded") == .acmeRevoke("a.test", reason: "superseded"))
        #expect(AdminRouter.route(method: "POST", path: "/acme/revoke/a.test") == .acmeRevoke("a.test", reason: nil))
        #expect(AdminRouter.route(method: "GET", path: "/acme/revoke/a.test") == .methodNotAllowed(allow: "POST"))
        #expect(AdminRouter.route(method: "POST", path: "/acme/revoke/../x") == .notFound)
        #expect(AdminRouter.route(method: "GET", path: "/upstreams") == .upstreams)
        #expect(AdminRouter.route(method: "POST", path: "/upstreams") == .methodNotAllowed(allow: "GET"))
    }

    @Test func routesTheCommandLineUses() {
        #expect(AdminRouter.route(method: "GET", path: "/status") == .status)
        #expect(AdminRouter.route(method: "POST", path: "/status") == .methodNotAllowed(allow: "GET"))
        #expect(AdminRouter.route(method: "GET", path: "/certificates/a.test") == .showCertificate("a.test"))
        #expect(AdminRouter.route(method: "POST", path: "/certificates/a.test") == .methodNotAllowed(allow: "GET, PUT, DELETE"))
        #expect(AdminRouter.route(method: "GET", path: "/certificates/../x") == .notFound)
        #expect(AdminRouter.route(method: "POST", path: "/acme/renew/A.test") == .acmeRenew("a.test"))
        #expect(AdminRouter.route(method: "GET", path: "/acme/renew/a.test") == .methodNotAllowed(allow: "POST"))
        #expect(AdminRouter.route(method: "POST", path: "/acme/renew/.x") == .notFound)
    }

    @Test func statusRoundTrips() throws {
        var status = NodeStatus(version: "1.2.3", commit: "abc", openssl: "OpenSSL 3", nghttp2: "1.52.0", pid: 7,
                                started: Date(timeIntervalSince1970: 1_800_000_000), uptimeSeconds: 12, config: "/etc/e.yaml",
                                workers: 2, https: ["127.0.0.1:8443"], http: [], certificates: 3, openConnections: 1)
        status.acme = NodeStatus.ACME(managed: 2, failing: 1)
        let decoded = try NodeStatus.decode(Array(status.json.utf8))
        #expect(decoded == status)
        #expect(status.json.contains("\"uptime_seconds\":12"))
    }

    @Test func namesCannotEscapeTheDirectory() {
        #expect(AdminRouter.route(method: "PUT", path: "/certificates/../etc/passwd") == .notFound)
        #expect(AdminRouter.route(method: "PUT", path: "/certificates/.hidden") == .notFound)
        #expect(AdminRouter.route(method: "PUT", path: "/certificates/a%2Fb") == .notFound)
        #expect(AdminRouter.isValidName("*.wild.test"))
    }

    @Test func tokenCheck() {
        #expect(AdminRouter.authorize(token: "s3cret", authorization: "Bearer s3cret", peerIsLoopback: false) == nil)
        #expect(AdminRouter.authorize(token: "s3cret", authorization: "bearer s3cret", peerIsLoopback: true) == nil)
        #expect(AdminRouter.authorize(token: "s3cret", authorization: "Bearer s3cre", peerIsLoopback: true)?.status == 401)
        #expect(AdminRouter.authorize(token: "s3cret", authorization: nil, peerIsLoopback: true)?.status == 401)
        #expect(AdminRouter.authorize(token: "s3cret", authorization: "Basic s3cret", peerIsLoopback: true)?.status == 401)
    }

    @Test func withoutATokenOnlyLoopbackIsServed() {
        #expect(AdminRouter.authorize(token: nil, authorization: nil, peerIsLoopback: true) == nil)
        #expect(AdminRouter.authorize(token: nil, authorization: nil, peerIsLoopback: false)?.status == 403)
    }

    @Test func upstreamServerFamilies() {
        let text = PrometheusText.render(Metrics(), certificates: [], upstreams: [
            PrometheusText.UpstreamServer(upstream: "app", server: "127.0.0.1:9000", up: false, checks: (passed: 5, failed: 3),
                                          lastCheckSeconds: 0.0125, requests: 42),
            PrometheusText.UpstreamServer(upstream: "app", server: "127.0.0.1:9001", up: true, checks: nil, lastCheckSeconds: nil, requests: 7),
        ])
        let lines = Set(text.split(separator: "\n").map(String.init))
        #expect(lines.contains(#"edgeproxy_upstream_server_up{upstream="app",server="127.0.0.1:9000"} 0"#))
        #expect(lines.contains(#"edgeproxy_upstream_server_up{upstream="app",server="127.0.0.1:9001"} 1"#))
        #expect(lines.contains(#"edgeproxy_upstream_health_checks_total{upstream="app",server="127.0.0.1:9000",result="passed"} 5"#))
        #expect(lines.contains(#"edgeproxy_upstream_health_checks_total{upstream="app",server="127.0.0.1:9000",result="failed"} 3"#))
        #expect(lines.contains(#"edgeproxy_upstream_health_check_seconds{upstream="app",server="127.0.0.1:9000"} 0.012500"#))
        #expect(lines.contains(#"edgeproxy_upstream_requests_total{upstream="app",server="127.0.0.1:9001"} 7"#))
        // An unchecked server has no check samples.
        #expect(!text.contains(#"edgeproxy_upstream_health_checks_total{upstream="app",server="127.0.0.1:9001""#))
    }
}
