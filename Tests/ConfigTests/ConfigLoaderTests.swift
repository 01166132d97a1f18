#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Testing
@testable import Config

@Suite struct ExampleConfigTests {
    /// conf/edgeproxy.yaml, found from this file so the test runs from any directory.
    static let examplePath: String = {
        var components = #filePath.split(separator: "/", omittingEmptySubsequences: false)
        components.removeLast(3)  // ConfigTests/<file>, Tests
        return components.joined(separator: "/") + "/conf/edgeproxy.yaml"
    }()

    @Test func exampleLoads() throws {
        let settings = try ConfigLoader.load(path: Self.examplePath)
        #expect(settings.workers == SettingsReader.onlineCores())
        #expect(settings.listen == Listen(https: [SocketAddressSpec(host: "", port: 8443)],
                                          http: [SocketAddressSpec(host: "", port: 8080)], redirectPort: nil))
        #expect(settings.upstreams.keys.sorted() == ["app"])
        #expect(settings.upstreams["app"]?.servers == [SocketAddressSpec(host: "127.0.0.1", port: 9000)])
        #expect(settings.routes.count == 3)
        #expect(settings.routes[1].host == "*.example.com")
        #expect(settings.routes[1].action == .proxy(upstream: "app"))
        #expect(settings.routes[1].maxBodyBytes == 10 << 20)
        #expect(settings.routes[0].action == .respond(FixedResponse(status: 200, body: "ok\n", contentType: "text/plain")))
        #expect(settings.tls.selfSignedNames == ["localhost"])
    }

    /// The example documents the defaults, so what it spells out must equal an empty file,
    /// apart from what it configures on purpose (upstreams and routes).
    @Test func exampleStatesTheDefaults() throws {
        var example = try ConfigLoader.load(path: Self.examplePath)
        let defaults = try parse("")
        example.upstreams = defaults.upstreams
        example.routes = defaults.routes
        // A default path resolves next to the file read, and the two files live apart.
        #expect(example.tls.ocspCache == String(Self.examplePath.dropLast("edgeproxy.yaml".count)) + "ocsp-cache")
        example.tls.ocspCache = defaults.tls.ocspCache
        #expect(example == defaults)
    }
}

@Suite struct DefaultsTests {
    @Test(arguments: ["", "# only a comment\n", "~\n", "---\n"])
    func emptyDocumentGivesDefaults(yaml: String) throws {
        let settings = try parse(yaml)
        #expect(settings.workers == SettingsReader.onlineCores())
        #expect(settings.workers >= 1)
        #expect(settings.listen.https == [SocketAddressSpec(host: "", port: 8443)])
        #expect(settings.listen.http == [SocketAddressSpec(host: "", port: 8080)])
        #expect(settings.listen.redirectPort == nil)
        var tls = TLSSettings(certificateDirectory: nil, certificates: [], defaultName: nil, strictSNI: false,
                              minVersion: .tls12, sessionTickets: 2, ticketKeyRotation: 3600, selfSignedNames: ["localhost"])
        tls.ocspCache = "/etc/edgeproxy/ocsp-cache"
        #expect(settings.tls == tls)
        #expect(settings.timeouts == Timeouts(handshake: 10, header: 15, idle: 60, upstreamConnect: 5,
                                              upstreamResponse: 60, shutdown: 30))
        #expect(settings.limits == Limits(maxHeaderBytes: 16384, maxHeaders: 100, maxBodyBytes: 0,
                                          maxConnectionsPerWorker: 10000))
        #expect(settings.upstreams.isEmpty)
        #expect(settings.routes == [Route(host: nil, pathPrefix: "/",
                                          action: .respond(FixedResponse(status: 200, body: "edgeproxy: no route configured\n",
                                                                         contentType: "text/plain")),
                                          maxBodyBytes: nil, forwardedHeaders: true)])
        #expect(settings.log == LogSettings(access: "stdout", level: "info"))
    }

    @Test func emptySectionsAndEmptyRoutesGiveDefaults() throws {
        let settings = try parse("tls:\ntimeouts: {}\nroutes: []\n")
        #expect(settings == (try parse("")))
    }

    @Test func upstreamAndRouteDefaults() throws {
        let settings = try parse("""
            upstreams:
              app: { servers: "10.0.0.1:80" }
            routes:
              - upstream: app
              - respond: {}
            """)
        #expect(settings.upstreams["app"] == Upstream(name: "app", servers: [SocketAddressSpec(host: "10.0.0.1", port: 80)],
                                                      balance: .roundRobin, keepalive: 32, keepaliveTimeout: 60,
                                                      failTimeout: 10))
        #expect(settings.routes == [
            Route(host: nil, pathPrefix: "/", action: .proxy(upstream: "app"), maxBodyBytes: nil, forwardedHeaders: true),
            Route(host: nil, pathPrefix: "/", action: .respond(FixedResponse(status: 200, body: "", contentType: "text/plain")),
                  maxBodyBytes: nil, forwardedHeaders: true),
        ])
    }
}

@Suite struct FullSchemaTests {
    @Test func everyKeyIsRead() throws {
        let settings = try parse("""
            workers: 4
            listen:
              https: ["127.0.0.1:443", "[::1]:443"]
              http: "*:80"
              redirect_port: 443
            tls:
              certificate_dir: certs
              certificates:
                - { cert: certs/example.crt, key: /keys/example.key }
              default: Example.COM
              strict_sni: true
              min_version: 1.3
              session_tickets: 0
              ticket_key_rotation: 30m
              self_signed: [localhost, "*.test"]
            timeouts: { handshake: 500ms, header: 2, idle: 1m, upstream_connect: 1s, upstream_response: 2h, shutdown: 5s }
            limits: { max_header_bytes: 32k, max_headers: 50, max_body: 1g, max_connections_per_worker: 7 }
            upstreams:
              app:
                servers: ["127.0.0.1:9000", "localhost:9001"]
                balance: least_conn
                keepalive: 0
                keepalive_timeout: 90s
                fail_timeout: 0
              static: { servers: "[::1]:8000" }
            routes:
              - host: "*.Example.com"
                path: /api/
                upstream: app
                max_body: 10m
                forwarded_headers: false
              - host: "*"
                upstream: static
              - respond: { status: 404, body: "nope\\n", content_type: "text/html; charset=utf-8" }
            log: { access: logs/access.log, level: debug }
            """)
        #expect(settings.workers == 4)
        #expect(settings.listen == Listen(https: [SocketAddressSpec(host: "127.0.0.1", port: 443),
                                                  SocketAddressSpec(host: "::1", port: 443)],
                                          http: [SocketAddressSpec(host: "", port: 80)], redirectPort: 443))
        var tls = TLSSettings(
            certificateDirectory: "/etc/edgeproxy/certs",
            certificates: [CertificateFiles(cert: "/etc/edgeproxy/certs/example.crt", key: "/keys/example.key")],
            defaultName: "example.com", strictSNI: true, minVersion: .tls13, sessionTickets: 0,
            ticketKeyRotation: 1800, selfSignedNames: ["localhost", "*.test"])
        tls.ocspCache = "/etc/edgeproxy/ocsp-cache"
        #expect(settings.tls == tls)
        #expect(settings.timeouts == Timeouts(handshake: 0.5, header: 2, idle: 60, upstreamConnect: 1,
                                              upstreamResponse: 7200, shutdown: 5))
        #expect(settings.limits == Limits(maxHeaderBytes: 32768, maxHeaders: 50, maxBodyBytes: 1 << 30,
                                          maxConnectionsPerWorker: 7))
        #expect(settings.upstreams["app"] == Upstream(
            name: "app", servers: [SocketAddressSpec(host: "127.0.0.1", port: 9000), SocketAddressSpec(host: "localhost", port: 9001)],
            balance: .leastConnections, keepalive: 0, keepaliveTimeout: 90, failTimeout: 0))
        #expect(settings.upstreams["static"]?.servers == [SocketAddressSpec(host: "::1", port: 8000)])
        #expect(settings.routes == [
            Route(host: "*.example.com", pathPrefix: "/api/", action: .proxy(upstream: "app"),
                  maxBodyBytes: 10 << 20, forwardedHeaders: false),
            Route(host: nil, pathPrefix: "/", action: .proxy(upstream: "static"), maxBodyBytes: nil, forwardedHeaders: true),
            Route(host: nil, pathPrefix: "/", action: .respond(FixedResponse(status: 404, body: "nope\n",
                                                                             contentType: "text/html; charset=utf-8")),
                  maxBodyBytes: nil, forwardedHeaders: true),
        ])
        #expect(settings.log == LogSettings(access: "/etc/edgeproxy/logs/access.log", level: "debug"))
    }

    /// The schema as first specified, comments and all.
    @Test func specificationSampleLoads() throws {
        let settings = try parse("""
            workers: auto                 # or an integer 1..256; auto = online cores
            listen:
              https: [":8443"]            # list or single string; "host:port", ":port", "[::1]:port"
              http: [":8080"]             # port-80 role (ACME HTTP-01 + redirect to https); [] or omitted = off
              redirect_port: 8443         # optional; default the first https port
            tls:
              certificate_dir: certs      # optional
              certificates:               # optional list of {cert: file, key: file}
                - { cert: certs/example.crt, key: certs/example.key }
              default: example.com        # optional
              strict_sni: false
              min_version: "1.2"          # "1.2" | "1.3"
              session_tickets: 2          # tickets per TLS 1.3 handshake; 0 = off
              ticket_key_rotation: 1h
              self_signed: [localhost]    # names for a generated certificate when none is configured; default [localhost]
            timeouts: { handshake: 10s, header: 15s, idle: 60s, upstream_connect: 5s, upstream_response: 60s, shutdown: 30s }
            limits: { max_header_bytes: 16k, max_headers: 100, max_body: 0, max_connections_per_worker: 10000 }
            upstreams:
              app:
                servers: ["127.0.0.1:9000"]
                balance: round_robin       # or least_conn
                keepalive: 32
                keepalive_timeout: 60s
                fail_timeout: 10s
            routes:                        # first match wins
              - host: "*.example.com"      # optional: exact name or one-label wildcard; omitted = any host
                path: /api/                # prefix, default "/"
                upstream: app              # exactly one of upstream / respond
                max_body: 10m
                forwarded_headers: true    # default true
              - respond: { status: 200, body: "edgeproxy is running\\n", content_type: "text/plain" }
            log: { access: stdout, level: info }   # access: stdout | off | file path
            """)
        #expect(settings.listen.redirectPort == 8443)
        #expect(settings.tls.certificates == [CertificateFiles(cert: "/etc/edgeproxy/certs/example.crt",
                                                               key: "/etc/edgeproxy/certs/example.key")])
        #expect(settings.tls.defaultName == "example.com")
        #expect(settings.routes.map(\.action) == [
            .proxy(upstream: "app"),
            .respond(FixedResponse(status: 200, body: "edgeproxy is running\n", contentType: "text/plain")),
        ])
    }

    @Test func workersAuto() throws {
        #expect(try parse("workers: auto").workers == SettingsReader.onlineCores())
    }

    @Test func emptyHTTPListTurnsTheRoleOff() throws {
        #expect(try parse("listen: { http: [] }").listen.http.isEmpty)
        #expect(try parse("listen:\n  http:\n").listen.http.isEmpty)
    }

    @Test func accessLogKeywordsAreNotPaths() throws {
        #expect(try parse("log: { access: off }").log.access == "off")
        #expect(try parse("log: { access: stdout }").log.access == "stdout")
    }
}

@Suite struct PathResolutionTests {
    @Test func relativePathsResolveAgainstTheBaseDirectory() throws {
        let yaml = """
            tls:
              certificate_dir: ./certs
              certificates: [{ cert: a/b.crt, key: /abs/b.key }]
            log: { access: access.log }
            """
        let settings = try ConfigLoader.parse(yaml: yaml, file: "x.yaml", baseDirectory: "/srv/proxy/")
        #expect(settings.tls.certificateDirectory == "/srv/proxy/certs")
        #expect(settings.tls.certificates == [CertificateFiles(cert: "/srv/proxy/a/b.crt", key: "/abs/b.key")])
        #expect(settings.log.access == "/srv/proxy/access.log")
    }

    /// `load` resolves against the file's own directory, made absolute, whatever the working directory.
    @Test func loadResolvesAgainstTheConfigDirectory() throws {
        var template = Array("/tmp/edgeproxy-config-XXXXXX".utf8CString)
        let directory = try #require(template.withUnsafeMutableBufferPointer { mkdtemp($0.baseAddress!) }
            .map { String(cString: $0) })
        defer { rmdir(directory) }
        let path = directory + "/edgeproxy.yaml"
        let yaml = "tls: { certificate_dir: certs }\nlog: { access: logs/access.log }\n"
        #expect(yaml.withCString { text in
            let file = fopen(path, "w")
            defer { if let file { fclose(file) } }
            return file.map { fputs(text, $0) >= 0 } ?? false
        })
        defer { unlink(path) }

        let absolute = try ConfigLoader.load(path: path)
        #expect(absolute.tls.certificateDirectory == directory + "/certs")
        #expect(absolute.log.access == directory + "/logs/access.log")

    }

    /// A relative config path is made absolute from the working directory (read, never changed
    /// here: tests of other modules share the process).
    @Test func configDirectoryIsAbsolute() throws {
        var buffer = [CChar](repeating: 0, count: 4096)
        let cwd = try #require(getcwd(&buffer, buffer.count).map { String(cString: $0) })
        #expect(ConfigLoader.directory(of: "edgeproxy.yaml") == cwd)
        #expect(ConfigLoader.directory(of: "./edgeproxy.yaml") == cwd)
        #expect(ConfigLoader.directory(of: "conf/edgeproxy.yaml") == cwd + "/conf")
        #expect(ConfigLoader.directory(of: "/etc/edgeproxy/edgeproxy.yaml") == "/etc/edgeproxy")
        #expect(ConfigLoader.directory(of: "/edgeproxy.yaml") == "/")
    }

    @Test func unreadableFileIsReportedWithTheSystemReason() {
        let path = "/nonexistent/edgeproxy.yaml"
        #expect(throws: ConfigError(file: path, line: 0, column: 0,
                                    message: "cannot read configuration file: No such file or directory")) {
            try ConfigLoader.load(path: path)
        }
    }

    @Test func endlessFileIsRefusedAfterTheLimit() {
        #expect(throws: ConfigError(file: "/dev/zero", line: 0, column: 0,
                                    message: "cannot read configuration file: more than 16 MiB: not a configuration file")) {
            try ConfigLoader.load(path: "/dev/zero")
        }
    }

    @Test func directoryIsReportedWithTheSystemReason() {
        #expect(throws: ConfigError(file: "/tmp", line: 0, column: 0,
                                    message: "cannot read configuration file: Is a directory")) {
            try ConfigLoader.load(path: "/tmp")
        }
    }
}

@Suite struct AdminAndWatchTests {
    @Test func adminIsOffUnlessPresent() throws {
        #expect(try parse("").admin == nil)
        #expect(try parse("").tls.watch)
        #expect(try parse("admin: {}\n").admin == AdminSettings(listen: SocketAddressSpec(host: "127.0.0.1", port: 9901), token: nil))
    }

    @Test func adminWithToken() throws {
        let s = try parse("admin:\n  listen: \":9901\"\n  token: \"0123456789abcdef\"\n")
        #expect(s.admin == AdminSettings(listen: SocketAddressSpec(host: "", port: 9901), token: "0123456789abcdef"))
    }

    @Test func watchCanBeTurnedOff() throws {
        #expect(try parse("tls: {watch: false}\n").tls.watch == false)
    }

    @Test func reachableAdminNeedsAToken() {
        expectError("admin:\n  listen: \"0.0.0.0:9901\"\n", line: 2, column: 11,
                    #"admin.listen "0.0.0.0:9901" is reachable from other hosts: set admin.token (or token_file), or listen on 127.0.0.1 / [::1]"#)
    }

    @Test func shortTokensAndBothTokenFormsAreRefused() {
        expectError("admin: {token: short}\n", line: 1, column: 16, "admin.token is too short: use at least 16 characters")
        expectError("admin:\n  token: \"0123456789abcdef\"\n  token_file: x\n", line: 3, column: 15,
                    "give admin.token or admin.token_file, not both (token is at line 2, column 10)")
        expectError("admin: {token_file: /nonexistent/token}\n", line: 1, column: 21,
                    #"cannot read a token from "/nonexistent/token" (expected the token on its first line)"#)
    }
}
