import Testing
@testable import Config

/// Every kind of mistake, with the exact position and wording an operator would see.
@Suite struct ConfigErrorTests {
    @Test func descriptionIsFileLineColumnMessage() {
        let error = ConfigError(file: "conf/edgeproxy.yaml", line: 3, column: 14, message: "bad")
        #expect(error.description == "conf/edgeproxy.yaml:3:14: bad")
    }

    // MARK: YAML syntax

    @Test func unclosedFlowSequence() {
        expectError("""
            listen:
              https: [":8443"
            timeouts: {}
            """, line: 3, column: 1,
            "invalid YAML: did not find expected ',' or ']' (while parsing a flow sequence at line 2, column 10)")
    }

    @Test func badIndentation() {
        expectError("""
            tls:
              strict_sni: true
             min_version: "1.3"
            """, line: 3, column: 2,
            "invalid YAML: did not find expected key (while parsing a block mapping at line 1, column 1)")
    }

    @Test func tabIndentation() {
        expectError("tls:\n\tstrict_sni: true\n", line: 2, column: 1,
                    "invalid YAML: found character that cannot start any token (while scanning for the next token at line 2, column 1)")
    }

    @Test func secondDocument() {
        expectError("workers: 2\n---\nworkers: 3\n", line: 2, column: 1,
                    "invalid YAML: found a second document; the configuration is a single YAML document")
    }

    /// libyaml's reader rejects control characters; its offset becomes a line and column.
    @Test func controlCharacter() {
        expectError("workers: 2\nlog: { level: in\u{1}fo }\n", line: 2, column: 17,
                    "invalid YAML: control characters are not allowed")
    }

    /// A bare CR ends a line for libyaml's own marks, so it must for the reader's offset too, or
    /// one file's errors are numbered two ways (found by fuzzing).
    @Test func controlCharacterAfterBareCarriageReturns() {
        expectError("workers: 2\rlog: { level: in\u{1}fo }\r", line: 2, column: 17,
                    "invalid YAML: control characters are not allowed")
        expectError("workers: 2\rlog: {\r", line: 3, column: 1,
                    "invalid YAML: did not find expected node content (while parsing a flow node at line 3, column 1)")
    }

    // MARK: keys

    @Test func unknownKeyInRoute() {
        expectError("""
            upstreams:
              app: { servers: ["127.0.0.1:9000"] }
            routes:
              - path: /api/
                upsteam: app
            """, line: 5, column: 5,
            #"unknown key "upsteam" in route (expected one of: host, path, upstream, respond, max_body, forwarded_headers, response_headers)"#)
    }

    @Test func unknownKeyAtTopLevel() {
        expectError("worker: 2\n", line: 1, column: 1,
                    #"unknown key "worker" at the top level (expected one of: workers, listen, tls, timeouts, limits, upstreams, routes, log, http2, admin, acme, cluster)"#)
    }

    @Test func duplicateKey() {
        expectError("""
            timeouts:
              idle: 30s
              header: 5s
              idle: 60s
            """, line: 4, column: 3, #"duplicate key "idle" in timeouts (first given at line 2, column 3)"#)
    }

    @Test func duplicateTopLevelKeyInFlowMapping() {
        expectError(#"log: { level: info, level: debug }"#, line: 1, column: 21,
                    #"duplicate key "level" in log (first given at line 1, column 8)"#)
    }

    @Test func duplicateUpstreamName() {
        expectError("""
            upstreams:
              app: { servers: ":9000" }
              app: { servers: ":9001" }
            """, line: 3, column: 3, #"duplicate key "app" in upstreams (first given at line 2, column 3)"#)
    }

    // MARK: types

    @Test func listWhereMappingExpected() {
        expectError("""
            tls:
              - strict_sni: true
            """, line: 2, column: 3, "expected a mapping for tls, got a list")
    }

    @Test func scalarWhereMappingExpected() {
        expectError("routes:\n  - /api/\n", line: 2, column: 5, #"expected a mapping for route, got "/api/""#)
    }

    @Test func mappingWhereListExpected() {
        expectError("listen:\n  https: { a: b }\n", line: 2, column: 10, "expected a list for listen.https, got a mapping")
    }

    @Test func topLevelMustBeAMapping() {
        expectError("- workers\n", line: 1, column: 1, "expected a mapping for the configuration, got a list")
    }

    @Test func listWhereScalarExpected() {
        expectError("log:\n  level: [info]\n", line: 2, column: 10, #"expected one of "info" or "debug", got a list"#)
    }

    @Test func emptyValueWhereScalarExpected() {
        expectError("timeouts:\n  idle:\n", line: 2, column: 8,
                    #"expected a duration like "30s", "500ms" or "2m", got an empty value"#)
    }

    @Test func badBool() {
        expectError("tls: { strict_sni: maybe }", line: 1, column: 20, #"expected true or false, got "maybe""#)
    }

    @Test func badChoice() {
        expectError("tls: { min_version: 1.1 }", line: 1, column: 21, #"expected one of "1.2" or "1.3", got "1.1""#)
    }

    // MARK: values

    @Test func badDuration() {
        expectError("""
            timeouts:
              idle: 30 seconds
            """, line: 2, column: 9, #"expected a duration like "30s", "500ms" or "2m", got "30 seconds""#)
    }

    @Test func fractionalDuration() {
        expectError("timeouts: { idle: 1.5s }", line: 1, column: 19,
                    #"expected a duration like "30s", "500ms" or "2m", got "1.5s""#)
    }

    @Test func zeroDuration() {
        expectError("tls:\n  ticket_key_rotation: 0s\n", line: 2, column: 24,
                    #"expected a duration greater than zero, got "0s""#)
    }

    @Test func badSize() {
        expectError("""
            limits:
              max_body: 10 MB
            """, line: 2, column: 13, #"expected a size like "512", "16k", "10m" or "1g", got "10 MB""#)
    }

    @Test func sizeTooSmall() {
        expectError("limits: { max_header_bytes: 100 }", line: 1, column: 29,
                    #"expected a size of at least 1024 bytes, got "100""#)
    }

    @Test func badPortInAddress() {
        expectError("""
            listen:
              https: [":8443", ":70000"]
            """, line: 2, column: 20, #"port 70000 in ":70000" is out of range (expected 1 to 65535)"#)
    }

    @Test func zeroPortInAddress() {
        expectError("listen: { http: \"127.0.0.1:0\" }", line: 1, column: 17,
                    #"port 0 in "127.0.0.1:0" is out of range (expected 1 to 65535)"#)
    }

    @Test func badRedirectPort() {
        expectError("listen:\n  redirect_port: 0\n", line: 2, column: 18, #"expected a port from 1 to 65535, got "0""#)
    }

    @Test func malformedAddress() {
        expectError("listen: { https: \"::1:443\" }", line: 1, column: 18,
                    #"expected an address like ":8443", "127.0.0.1:8443" or "[::1]:8443", got "::1:443""#)
    }

    @Test func hostNameInListener() {
        expectError("listen: { https: \"example.com:443\" }", line: 1, column: 18,
                    #"expected an IP address or "localhost" before the port, got "example.com" in "example.com:443""#)
    }

    @Test func workersOutOfRange() {
        expectError("workers: 257", line: 1, column: 10, #"expected "auto" or an integer from 1 to 256, got "257""#)
        expectError("workers: 0", line: 1, column: 10, #"expected "auto" or an integer from 1 to 256, got "0""#)
    }

    @Test func negativeInteger() {
        expectError("limits: { max_headers: -1 }", line: 1, column: 24, #"expected an integer of at least 1, got "-1""#)
    }

    @Test func duplicateListener() {
        expectError("""
            listen:
              https: [":8443"]
              http: ["*:8443"]
            """, line: 3, column: 10, #"listener ":8443" is already listed at line 2, column 11"#)
    }

    @Test func overlappingListener() {
        expectError("listen: { https: [\"127.0.0.1:8443\", \":8443\"] }", line: 1, column: 37,
                    #"listener ":8443" overlaps the one at line 1, column 19, which together cover port 8443 twice (an empty host means every address)"#)
    }

    @Test func noHTTPSListener() {
        expectError("listen: { https: [] }", line: 1, column: 18, "listen.https needs at least one address")
    }

    // MARK: upstreams and routes

    @Test func routeToMissingUpstream() {
        expectError("""
            upstreams:
              app: { servers: ["127.0.0.1:9000"] }
              static: { servers: ["127.0.0.1:9001"] }
            routes:
              - path: /api/
                upstream: api
            """, line: 6, column: 15, #"route refers to upstream "api", which is not defined (defined: app, static)"#)
    }

    @Test func routeWithNoUpstreamsDefined() {
        expectError("routes: [{ upstream: app }]", line: 1, column: 22,
                    #"route refers to upstream "app", which is not defined (no upstreams are defined)"#)
    }

    @Test func routeWithBothActions() {
        expectError("""
            upstreams: { app: { servers: "127.0.0.1:9000" } }
            routes:
              - upstream: app
                respond: { status: 200 }
            """, line: 4, column: 5, "a route takes exactly one of upstream or respond, not both")
    }

    @Test func routeWithNoAction() {
        expectError("routes:\n  - path: /x\n", line: 2, column: 5,
                    "a route needs upstream (proxy to it) or respond (a fixed response)")
    }

    @Test func respondStatusOutOfRange() {
        expectError("routes: [{ respond: { status: 600 } }]", line: 1, column: 31,
                    #"expected an integer from 200 to 599, got "600""#)
        expectError("routes: [{ respond: { status: 101 } }]", line: 1, column: 31,
                    #"expected an integer from 200 to 599, got "101""#)
    }

    @Test func upstreamWithoutServers() {
        expectError("upstreams:\n  app: { balance: least_conn }\n", line: 2, column: 3,
                    #"upstream "app" needs servers (a list of addresses like "127.0.0.1:9000")"#)
        expectError("upstreams:\n  app: { servers: [] }\n", line: 2, column: 19, #"upstream "app" needs at least one server"#)
    }

    @Test func upstreamServerWithoutHost() {
        expectError("upstreams: { app: { servers: [\":9000\"] } }", line: 1, column: 31,
                    #"an upstream server needs a host, like "127.0.0.1:9000""#)
    }

    @Test func badHostPattern() {
        expectError("routes: [{ host: \"api.*.com\", respond: {} }]", line: 1, column: 18,
                    #"expected a host name like "example.com" or "*.example.com", got "api.*.com""#)
        expectError("routes: [{ host: \"-bad.com\", respond: {} }]", line: 1, column: 18,
                    #"expected a host name like "example.com" or "*.example.com", got "-bad.com""#)
    }

    @Test func pathMustStartWithSlash() {
        expectError("routes: [{ path: api/, respond: {} }]", line: 1, column: 18,
                    ##"expected a path prefix starting with "/" (no spaces, "?" or "#"), got "api/""##)
    }

    @Test func certificateEntryNeedsBothFiles() {
        expectError("tls:\n  certificates:\n    - { cert: a.crt }\n", line: 3, column: 7,
                    "a tls.certificates entry needs both cert and key (key is missing)")
    }

    @Test func contentTypeCannotInjectHeaders() {
        expectError(#"routes: [{ respond: { content_type: "text/plain\r\nX-Evil: 1" } }]"#, line: 1, column: 37,
                    #"expected a media type like "text/plain" without control characters, got "text/plain\r\nX-Evil: 1""#)
    }
}

/// Yams builds the tree recursively: nesting past what any configuration needs is refused with a
/// position before it gets there (the fuzzer overflowed the stack with ~1,900 nested `{`).
@Suite struct NestingLimitTests {
    @Test func deepFlowNestingIsRefusedWithItsPosition() {
        let yaml = "routes: " + String(repeating: "[", count: 5000) + String(repeating: "]", count: 5000) + "\n"
        #expect(throws: ConfigError(file: "f.yaml", line: 1, column: 73, message: "nesting too deep: more than 64 nested [ or { are refused")) {
            try ConfigLoader.parse(yaml: yaml, file: "f.yaml", baseDirectory: "/")
        }
    }

    @Test func deepBlockNestingOnOneLineIsRefused() {
        let yaml = "x:\n" + String(repeating: "- ", count: 3000) + "a\n"
        #expect(throws: ConfigError.self) { try ConfigLoader.parse(yaml: yaml, file: "f.yaml", baseDirectory: "/") }
    }

    @Test func aQuoteInsideAWordOpensNothing() {
        // The fuzzer's bypass: a '"' ending a plain scalar must not hide the brackets after it.
        let yaml = "a: [b, c\"]\nd: " + String(repeating: "{", count: 3000) + "\n"
        #expect(throws: ConfigError(file: "f.yaml", line: 2, column: 68, message: "nesting too deep: more than 64 nested [ or { are refused")) {
            try ConfigLoader.parse(yaml: yaml, file: "f.yaml", baseDirectory: "/")
        }
    }

    @Test func quotesCommentsAndApostrophesDoNotCount() throws {
        // Brackets inside quoted scalars and comments are text; an apostrophe in a word opens nothing.
        let yaml = """
        # [[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[
        routes:
          - respond: { status: 200, body: "{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{\\"" }
          - respond: { status: 200, body: 'it''s [[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[' }
            path: /it's
        """
        let settings = try ConfigLoader.parse(yaml: yaml, file: "f.yaml", baseDirectory: "/")
        #expect(settings.routes.count == 2)
    }
}
