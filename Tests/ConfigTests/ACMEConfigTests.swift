import Foundation
import Testing
@testable import Config

/// The `acme:` section: defaults, every key, and the mistakes an operator can make.
@Suite struct ACMEConfigTests {
    @Test func absentMeansOff() throws {
        #expect(try parse("workers: 1\n").acme == nil)
    }

    @Test func minimalSectionTakesDefaults() throws {
        let acme = try #require(try parse("""
            acme:
              directory: https://ca.example/dir
              certificates: [example.com, [shop.example.com, WWW.shop.example.com]]
            """).acme)
        #expect(acme.directory == "https://ca.example/dir")
        #expect(acme.certificates == [["example.com"], ["shop.example.com", "www.shop.example.com"]])
        #expect(acme.challenges == ["http-01", "tls-alpn-01"])
        #expect(acme.storage == "/etc/edgeproxy/acme")
        #expect(acme.renewal == ACMERenewal())
        #expect(acme.renewal.checkInterval == 3600 && acme.renewal.renewBefore == nil && acme.renewal.ari)
        #expect(acme.renewal.backoffBase == 60 && acme.renewal.backoffCap == 6 * 3600)
        #expect(acme.email == nil && acme.eab == nil && acme.caRoot == nil)
    }

    @Test func everyKey() throws {
        let acme = try #require(try parse("""
            acme:
              directory: https://ca.example/dir
              email: ops@example.com
              eab: { key_id: kid-1, hmac_key: zWNDZM6eQGHWpSRTPal5eIUYFTu7EajVIoguysqZ9wG44nMEtx3MUAsUDkMTQ12W }
              challenges: [tls-alpn-01]
              storage: /var/lib/edgeproxy/acme
              certificates: example.com
              request_timeout: 10s
              renewal: { check_interval: 10m, renew_before: 720h, ari: false, backoff_base: 30s, backoff_cap: 1h }
            """).acme)
        #expect(acme.email == "ops@example.com")
        #expect(acme.eab == EABSettings(keyID: "kid-1", hmacKey: "zWNDZM6eQGHWpSRTPal5eIUYFTu7EajVIoguysqZ9wG44nMEtx3MUAsUDkMTQ12W"))
        #expect(acme.challenges == ["tls-alpn-01"])
        #expect(acme.storage == "/var/lib/edgeproxy/acme")
        #expect(acme.certificates == [["example.com"]])
        #expect(acme.requestTimeout == 10)
        #expect(acme.renewal.checkInterval == 600 && acme.renewal.renewBefore == 720 * 3600 && !acme.renewal.ari)
        #expect(acme.renewal.backoffBase == 30 && acme.renewal.backoffCap == 3600)
    }

    @Test func directoryIsRequiredAndHTTPS() {
        expectError("acme:\n  certificates: [a.example]\n", line: 2, column: 3,
                    "acme needs `directory`, the CA's directory URL (e.g. https://acme-v02.api.letsencrypt.org/directory)")
        expectError("acme:\n  directory: http://ca.example/dir\n  certificates: [a.example]\n", line: 2, column: 14,
                    "acme.directory must be an https:// URL, got \"http://ca.example/dir\"")
    }

    @Test func wildcardsAndRepeatsAreRefused() {
        expectError("acme:\n  directory: https://ca.example/dir\n  certificates: [\"*.example.com\"]\n", line: 3, column: 18,
                    "\"*.example.com\": wildcard certificates need the DNS-01 challenge: add dns-01 to acme.challenges "
                    + "and an acme.dns provider section, or list the names instead")
        expectError("acme:\n  directory: https://ca.example/dir\n  certificates: [a.example, [b.example, a.example]]\n",
                    line: 3, column: 41, "\"a.example\" is already in the certificate at line 3, column 18")
    }

    @Test func http01NeedsAPort80Listener() {
        expectError("listen: { http: [] }\nacme:\n  directory: https://ca.example/dir\n  challenges: [http-01]\n  certificates: [a.example]\n",
                    line: 4, column: 15,
                    "acme.challenges is [http-01] but listen.http is empty: the CA could not reach the answers "
                    + "(add a port-80 listener or allow tls-alpn-01)")
    }

    @Test func eabKeyMustBeUnpaddedBase64URL() {
        expectError("acme:\n  directory: https://ca.example/dir\n  certificates: [a.example]\n  eab: { key_id: k, hmac_key: \"abc=\" }\n",
                    line: 4, column: 31, "acme.eab.hmac_key: expected the base64url key the CA gave (letters, digits, - and _, "
                    + "no padding), got \"abc=\"")
    }

    @Test func unknownChallengeAndBadBackoff() {
        expectError("acme:\n  directory: https://ca.example/dir\n  challenges: [dns-02]\n  certificates: [a.example]\n",
                    line: 3, column: 16, "expected one of \"http-01\", \"tls-alpn-01\" or \"dns-01\", got \"dns-02\"")
        expectError("acme:\n  directory: https://ca.example/dir\n  certificates: [a.example]\n  renewal: { backoff_base: 1h, backoff_cap: 1m }\n",
                    line: 4, column: 45, "acme.renewal.backoff_cap must not be shorter than backoff_base")
    }

    static let dnsBase = "acme:\n  directory: https://ca.example/dir\n  challenges: [dns-01]\n  certificates: [[\"*.example.com\", example.com]]\n"

    @Test func dnsProviderDefaultsAndWildcards() throws {
        let acme = try #require(try parse(Self.dnsBase + """
              dns: { provider: rfc2136, server: "192.0.2.53:53", key_name: acme, key_secret: c2VjcmV0 }
            """).acme)
        #expect(acme.challenges == ["dns-01"])
        #expect(acme.certificates == [["*.example.com", "example.com"]])
        let dns = try #require(acme.dns)
        #expect(dns.server == SocketAddressSpec(host: "192.0.2.53", port: 53))
        #expect(dns.keyName == "acme" && dns.keySecret == "c2VjcmV0")
        #expect(dns.zone == nil && dns.ttl == 60 && dns.propagationTimeout == 60 && dns.checkServers.isEmpty)
    }

    @Test func dnsProviderEveryKey() throws {
        let secretFile = NSTemporaryDirectory() + "/edgeproxy-tsig-\(UUID().uuidString).secret"
        defer { try? FileManager.default.removeItem(atPath: secretFile) }
        try "c2VjcmV0\n".write(toFile: secretFile, atomically: true, encoding: .utf8)
        let acme = try #require(try parse(Self.dnsBase + """
              dns:
                provider: rfc2136
                server: "[2001:db8::53]:5353"
                key_name: acme-key
                key_secret_file: \(secretFile)
                zone: Example.com
                ttl: 2m
                propagation_timeout: 30s
                check_servers: ["127.0.0.1:5300", "192.0.2.54:53"]
            """).acme)
        let dns = try #require(acme.dns)
        #expect(dns.server == SocketAddressSpec(host: "2001:db8::53", port: 5353))
        #expect(dns.keyName == "acme-key" && dns.keySecret == "c2VjcmV0")
        #expect(dns.zone == "example.com" && dns.ttl == 120 && dns.propagationTimeout == 30)
        #expect(dns.checkServers == [SocketAddressSpec(host: "127.0.0.1", port: 5300), SocketAddressSpec(host: "192.0.2.54", port: 53)])
    }

    @Test func dnsExecProvider() throws {
        let dns = try #require(try parse(Self.dnsBase + "  dns: { provider: exec, command: /bin/sh, command_timeout: 20s }\n").acme?.dns)
        #expect(dns.provider == "exec" && dns.command == "/bin/sh" && dns.commandTimeout == 20 && dns.server == nil)
    }

    @Test func dnsMistakes() {
        expectError("acme:\n  directory: https://ca.example/dir\n  challenges: [http-01, dns-01]\n  certificates: [a.example]\n",
                    line: 3, column: 15, "acme.challenges lists dns-01 but there is no acme.dns section (e.g. dns: { provider: rfc2136, "
                        + "server: 192.0.2.53:53, key_name: acme, key_secret: ... })")
        expectError(Self.dnsBase + "  dns: { provider: route53, server: \"192.0.2.53:53\", key_name: a, key_secret: c2VjcmV0 }\n",
                    line: 5, column: 20, "expected one of \"rfc2136\" or \"exec\", got \"route53\"")
        expectError(Self.dnsBase + "  dns: { provider: exec }\n", line: 5, column: 8,
                    "acme.dns with provider exec needs `command`, a program run as `command present|cleanup FQDN VALUE`")
        expectError(Self.dnsBase + "  dns: { provider: exec, command: /bin/sh, server: \"192.0.2.53:53\" }\n", line: 5, column: 52,
                    "acme.dns.server is for provider rfc2136; exec runs `command` instead")
        expectError(Self.dnsBase + "  dns: { provider: exec, command: /etc/passwd }\n", line: 5, column: 35,
                    "acme.dns.command: \"/etc/passwd\" is not an executable file")
        expectError(Self.dnsBase + "  dns: { provider: rfc2136, server: \"ns1.example.com:53\", key_name: a, key_secret: c2VjcmV0 }\n",
                    line: 5, column: 37, "expected an IP address or \"localhost\" before the port, got \"ns1.example.com\" in \"ns1.example.com:53\"")
        expectError(Self.dnsBase + "  dns: { provider: rfc2136, server: \"localhost:53\", key_name: a, key_secret: c2VjcmV0 }\n",
                    line: 5, column: 37, "expected a name server's IP address and port like \"192.0.2.53:53\", got \"localhost:53\"")
        expectError(Self.dnsBase + "  dns: { provider: rfc2136, server: \"192.0.2.53:53\", key_name: a }\n",
                    line: 5, column: 8, "acme.dns needs `key_secret` (base64, as in named.conf's secret \"...\";) or `key_secret_file`")
        expectError(Self.dnsBase + "  dns: { provider: rfc2136, server: \"192.0.2.53:53\", key_name: a, key_secret: \"not base64!\" }\n",
                    line: 5, column: 79, "acme.dns: the TSIG secret is not base64 (copy it from the key's secret \"...\"; line)")
        expectError(Self.dnsBase + "  dns: { provider: rfc2136, server: \"192.0.2.53:53\", key_secret: c2VjcmV0 }\n",
                    line: 5, column: 8, "acme.dns needs `key_name`, the TSIG key's name as in named.conf's key \"NAME\" { ... }")
    }

    @Test func onDemandSection() throws {
        let acme = try #require(try parse("""
            acme:
              directory: https://ca.example/dir
              on_demand:
                ask: http://127.0.0.1:5555/check
                names: ["*.customers.example.net", Shop.example.com]
                ask_cache: 5m
                ask_timeout: 2s
                wait: 4s
                rate_limit: 20
                rate_interval: 10m
            """).acme)
        #expect(acme.certificates.isEmpty)
        let o = try #require(acme.onDemand)
        #expect(o.ask == "http://127.0.0.1:5555/check" && o.names == ["*.customers.example.net", "shop.example.com"])
        #expect(o.askCache == 300 && o.askTimeout == 2 && o.wait == 4 && o.rateLimit == 20 && o.rateInterval == 600)
        let defaults = try #require(try parse("acme:\n  directory: https://ca.example/dir\n  on_demand: { ask: \"https://api.example/ok\" }\n").acme?.onDemand)
        #expect(try parse("acme:\n  directory: https://ca.example/dir\n  certificates: []\n  on_demand: { names: [a.example] }\n").acme?.certificates == [])
        #expect(defaults.names.isEmpty && defaults.askCache == 60 && defaults.wait == 10 && defaults.rateLimit == 10 && defaults.rateInterval == 60)
    }

    @Test func onDemandAdmitsHostNamesCoveredByItsPatterns() {
        var o = OnDemandSettings()
        o.names = ["*.customers.example.net", "shop.example.com"]
        #expect(o.admits("a.customers.example.net") && o.admits("shop.example.com"))
        #expect(!o.admits("a.b.customers.example.net") && !o.admits("customers.example.net") && !o.admits("www.shop.example.com"))
        o.names = []
        #expect(o.admits("anything.example") && !o.admits("localhost") && !o.admits("192.0.2.1") && !o.admits("bad_name.example")
                && !o.admits("-x.example") && !o.admits("a..example"))
    }

    @Test func onDemandMistakes() {
        expectError("acme:\n  directory: https://ca.example/dir\n", line: 2, column: 3,
                    "acme needs `certificates`: the names to obtain, e.g. [example.com, [shop.example.com, www.shop.example.com]] "
                        + "(or `on_demand`, to obtain them during their first handshake)")
        expectError("acme:\n  directory: https://ca.example/dir\n  on_demand: { wait: 5s }\n", line: 3, column: 14,
                    "acme.on_demand needs `ask` (a URL that answers 200 for names to issue) or `names` (patterns "
                        + "like \"*.customers.example.net\"): without either, any name a client sends would be issued")
        expectError("acme:\n  directory: https://ca.example/dir\n  on_demand: { ask: \"ftp://x/check\" }\n", line: 3, column: 21,
                    "acme.on_demand.ask must be an http:// or https:// URL (asked GET URL?domain=NAME), got \"ftp://x/check\"")
        expectError("acme:\n  directory: https://ca.example/dir\n  on_demand: { names: [\"a.*.example\"] }\n", line: 3, column: 24,
                    "expected a host name like \"example.com\" or \"*.example.com\", got \"a.*.example\"")
    }

    @Test func profilesForEveryCertificateOrOne() throws {
        let acme = try #require(try parse("""
            acme:
              directory: https://ca.example/dir
              profile: classic
              certificates:
                - example.com
                - { names: [short.example.com, www.short.example.com], profile: shortlived }
            """).acme)
        #expect(acme.certificates == [["example.com"], ["short.example.com", "www.short.example.com"]])
        #expect(acme.profile(for: "example.com") == "classic" && acme.profile(for: "short.example.com") == "shortlived")
        expectError("acme:\n  directory: https://ca.example/dir\n  certificates: [{ profile: x }]\n", line: 3, column: 18,
                    "an acme.certificates entry written as a mapping needs `names` (and may give `profile`)")
        expectError("acme:\n  directory: https://ca.example/dir\n  certificates: [a.example]\n  profile: \"two words\"\n", line: 4, column: 12,
                    "expected a profile name the CA's directory lists, like \"shortlived\", got \"two words\"")
    }

    @Test func severalIssuersInOrder() throws {
        let acme = try #require(try parse("""
            listen: { http: [":80"] }
            acme:
              issuers:
                - directory: https://first.example/dir
                  challenges: [http-01]
                - directory: https://second.example/dir
                  eab: { key_id: kid, hmac_key: abc_DEF-1 }
                  profile: shortlived
              fallback_after: 2
              profile: classic
              certificates: [example.com]
            """).acme)
        #expect(acme.issuers.map(\.directory) == ["https://first.example/dir", "https://second.example/dir"])
        #expect(acme.issuers[0].challenges == ["http-01"] && acme.issuers[1].challenges == ACMESettings.defaultChallenges)
        #expect(acme.issuers[1].eab == EABSettings(keyID: "kid", hmacKey: "abc_DEF-1") && acme.fallbackAfter == 2)
        #expect(acme.profile(for: "example.com", issuer: 0) == "classic" && acme.profile(for: "example.com", issuer: 1) == "shortlived")
        #expect(acme.directory == "https://first.example/dir")
        #expect(try parse("acme:\n  directory: https://ca.example/dir\n  certificates: [a.example]\n").acme?.fallbackAfter == 3)
    }

    @Test func issuersMistakes() {
        expectError("acme:\n  directory: https://ca.example/dir\n  issuers: [{ directory: https://b.example/dir }]\n  certificates: [a.example]\n",
                    line: 2, column: 14, "acme.directory goes in each acme.issuers entry when there is an issuers list")
        expectError("acme:\n  issuers: [{ directory: https://b.example/dir }, { ca_root: x }]\n  certificates: [a.example]\n",
                    line: 2, column: 51, "acme.issuers[1] needs `directory`, the CA's directory URL (e.g. https://acme-v02.api.letsencrypt.org/directory)")
        expectError("acme:\n  issuers: [{ directory: \"http://b.example/dir\" }]\n  certificates: [a.example]\n",
                    line: 2, column: 26, "acme.issuers[0].directory must be an https:// URL, got \"http://b.example/dir\"")
        expectError("acme:\n  issuers: []\n  certificates: [a.example]\n", line: 2, column: 12,
                    "acme.issuers needs at least one CA (directory: https://...)")
        expectError("acme:\n  issuers: [{ directory: https://b.example/dir, dns: x }]\n  certificates: [a.example]\n", line: 2, column: 49,
                    "unknown key \"dns\" in an acme.issuers entry (expected one of: directory, ca_root, eab, challenges, profile)")
    }
}

