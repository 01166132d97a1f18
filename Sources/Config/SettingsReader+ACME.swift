import Foundation
import Yams

extension SettingsReader {
    static let acmeKeys = ["directory", "email", "ca_root", "eab", "challenges", "storage", "certificates", "renewal", "request_timeout",
                           "dns", "on_demand", "profile", "issuers", "fallback_after", "events"]
    static let issuerKeys = ["directory", "ca_root", "eab", "challenges", "profile"]
    static let challengeTypes = ["http-01", "tls-alpn-01", "dns-01"]

    /// `acme:` absent → off. When present, a CA (`directory`, or an `issuers` list) and at least
    /// one certificate (or `on_demand`) are required.
    func acme(_ node: Node?, listen: Listen) throws(ConfigError) -> ACMESettings? {
        guard let node else { return nil }
        let map = try mapping(node, name: "acme", keys: Self.acmeKeys)
        var issuers: [ACMEIssuerSettings] = []
        if let list = map["issuers"] {
            for key in Self.issuerKeys where key != "profile" {
                if let value = map[key] {
                    throw source.error("acme.\(key) goes in each acme.issuers entry when there is an issuers list", at: value)
                }
            }
            for item in try source.list(list, of: "acme.issuers") {
                issuers.append(try acmeIssuer(try mapping(item, name: "an acme.issuers entry", keys: Self.issuerKeys), item,
                                              name: "acme.issuers[\(issuers.count)]", listen: listen))
            }
            guard !issuers.isEmpty else { throw source.error("acme.issuers needs at least one CA (directory: https://...)", at: list) }
        } else {
            var first = try acmeIssuer(map, node, name: "acme", listen: listen)
            first.profile = nil  // acme.profile is every CA's default, read below
            issuers = [first]
        }
        guard map["certificates"] != nil || map["on_demand"] != nil else {
            throw source.error("acme needs `certificates`: the names to obtain, e.g. [example.com, [shop.example.com, www.shop.example.com]] "
                               + "(or `on_demand`, to obtain them during their first handshake)", at: node)
        }
        var acme = ACMESettings(directory: issuers[0].directory, storage: source.resolve(path: "acme"), certificates: [])
        acme.issuers = issuers
        let dns01 = issuers.contains { $0.challenges.contains("dns-01") }
        if let value = map["certificates"] {
            (acme.certificates, acme.profiles) = try acmeCertificates(value, wildcards: dns01, onDemand: map["on_demand"] != nil)
        }
        if let value = map["profile"] { acme.profile = try profileName(value) }
        if let value = map["on_demand"] { acme.onDemand = try onDemand(value) }
        if let value = map["fallback_after"] { acme.fallbackAfter = try source.int(value, in: 1...100) }
        if let value = map["dns"] {
            acme.dns = try acmeDNS(value)
        } else if dns01 {
            let at = map["issuers"] ?? map["challenges"] ?? node
            throw source.error("acme.challenges lists dns-01 but there is no acme.dns section (e.g. dns: { provider: rfc2136, "
                               + "server: 192.0.2.53:53, key_name: acme, key_secret: ... })", at: at)
        }
        if let value = map["email"] {
            let email = try source.string(value, expected: "an e-mail address")
            guard email.contains("@"), !email.contains(" "), !email.hasPrefix("mailto:") else {
                throw source.error("acme.email: expected an e-mail address like ops@example.com, got \(value.foundDescription)", at: value)
            }
            acme.email = email
        }
        if let value = map["storage"] { acme.storage = try source.path(value) }
        if let value = map["request_timeout"] { acme.requestTimeout = try source.duration(value) }
        if let value = map["events"] { acme.events = try acmeEvents(value) }
        if let value = map["renewal"] {
            let renewal = try mapping(value, name: "acme.renewal", keys: ["check_interval", "renew_before", "ari", "backoff_base", "backoff_cap"])
            if let v = renewal["check_interval"] { acme.renewal.checkInterval = try source.duration(v) }
            if let v = renewal["renew_before"] { acme.renewal.renewBefore = try source.duration(v) }
            if let v = renewal["ari"] { acme.renewal.ari = try source.bool(v) }
            if let v = renewal["backoff_base"] { acme.renewal.backoffBase = try source.duration(v) }
            if let v = renewal["backoff_cap"] { acme.renewal.backoffCap = try source.duration(v) }
            if acme.renewal.backoffCap < acme.renewal.backoffBase {
                throw source.error("acme.renewal.backoff_cap must not be shorter than backoff_base", at: renewal["backoff_cap"] ?? value)
            }
        }
        return acme
    }

    /// One CA's keys (`directory`, `ca_root`, `eab`, `challenges`, `profile`), from the `acme`
    /// section itself or an `acme.issuers` entry (`name` says which, in messages).
    private func acmeIssuer(_ map: MappingReader, _ node: Node, name: String, listen: Listen) throws(ConfigError) -> ACMEIssuerSettings {
        guard let directoryNode = map["directory"] else {
            throw source.error("\(name) needs `directory`, the CA's directory URL "
                               + "(e.g. https://acme-v02.api.letsencrypt.org/directory)", at: node)
        }
        let directory = try source.string(directoryNode, expected: "an https:// URL")
        guard let url = URLComponents(string: directory), url.scheme == "https", url.host?.isEmpty == false else {
            throw source.error("\(name).directory must be an https:// URL, got \(directoryNode.foundDescription)", at: directoryNode)
        }
        var issuer = ACMEIssuerSettings(directory: directory)
        if let value = map["challenges"] {
            var types: [String] = []
            for item in try source.list(value, of: "\(name).challenges") {
                let type = try source.choice(item, Self.challengeTypes)
                guard !types.contains(type) else { throw source.error("\(name).challenges lists \(quoted(type)) twice", at: item) }
                types.append(type)
            }
            guard !types.isEmpty else { throw source.error("\(name).challenges needs at least one of \(alternatives(Self.challengeTypes))", at: value) }
            issuer.challenges = types
        }
        if issuer.challenges == ["http-01"] && listen.http.isEmpty {
            throw source.error("\(name).challenges is [http-01] but listen.http is empty: the CA could not reach the answers "
                               + "(add a port-80 listener or allow tls-alpn-01)", at: map["challenges"] ?? node)
        }
        if let value = map["ca_root"] {
            let path = try source.path(value)
            guard FileManager.default.isReadableFile(atPath: path) else {
                throw source.error("\(name).ca_root: cannot read \(quoted(path)) (a PEM file of the CA API's root certificates)", at: value)
            }
            issuer.caRoot = path
        }
        if let value = map["eab"] {
            let eab = try mapping(value, name: "\(name).eab", keys: ["key_id", "hmac_key"])
            guard let kid = eab["key_id"], let hmac = eab["hmac_key"] else {
                throw source.error("\(name).eab needs both key_id and hmac_key (from the CA's account page)", at: value)
            }
            let key = try source.string(hmac, expected: "a base64url HMAC key")
            guard !key.isEmpty, key.allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "-" || $0 == "_") }) else {
                throw source.error("\(name).eab.hmac_key: expected the base64url key the CA gave (letters, digits, - and _, "
                                   + "no padding), got \(hmac.foundDescription)", at: hmac)
            }
            issuer.eab = EABSettings(keyID: try source.string(kid, expected: "the CA's key id"), hmacKey: key)
        }
        if let value = map["profile"] { issuer.profile = try profileName(value) }
        return issuer
    }

    /// Each entry: one name, a list of names for one certificate (the first names it), or
    /// `{names: [...], profile: NAME}`. A name may belong to one certificate only; wildcards need
    /// DNS-01 (`wildcards`: it is configured). Empty only when names are obtained on demand.
    /// Returns the name lists and the profiles given per certificate (by primary name).
    func acmeCertificates(_ node: Node, wildcards: Bool, onDemand: Bool) throws(ConfigError) -> ([[String]], [String: String]) {
        var result: [[String]] = []
        var profiles: [String: String] = [:]
        var seen: [String: Node] = [:]
        for var entry in try source.list(node, of: "acme.certificates") {
            var profile: String?
            if case .mapping = entry {
                let map = try mapping(entry, name: "an acme.certificates entry", keys: ["names", "profile"])
                guard let names = map["names"] else {
                    throw source.error("an acme.certificates entry written as a mapping needs `names` (and may give `profile`)", at: entry)
                }
                profile = try map["profile"].map { (n) throws(ConfigError) in try profileName(n) }
                entry = names
            }
            var names: [String] = []
            for item in try source.list(entry, of: "an acme.certificates entry") {
                let name = try source.hostPattern(item, wildcard: true)
                if name.hasPrefix("*.") && !wildcards {
                    throw source.error("\(quoted(name)): wildcard certificates need the DNS-01 challenge: add dns-01 to "
                                       + "acme.challenges and an acme.dns provider section, or list the names instead", at: item)
                }
                if let first = seen[name] {
                    throw source.error("\(quoted(name)) is already in the certificate at \(position(first.mark))", at: item)
                }
                seen[name] = item
                names.append(name)
            }
            guard !names.isEmpty else { throw source.error("an acme.certificates entry needs at least one name", at: entry) }
            result.append(names)
            if let profile { profiles[names[0]] = profile }
        }
        guard !result.isEmpty || onDemand else { throw source.error("acme.certificates needs at least one name", at: node) }
        return (result, profiles)
    }

    /// A certificate profile's name as the CA's directory lists it (draft-ietf-acme-profiles):
    /// checked against the directory when ordering; here only its shape.
    private func profileName(_ node: Node) throws(ConfigError) -> String {
        let name = try source.string(node, expected: "a profile name the CA's directory lists, like \"shortlived\"")
        guard !name.isEmpty, name.count <= 64, name.allSatisfy({ $0.isASCII && !$0.isWhitespace && $0 != "\"" }) else {
            throw source.error("expected a profile name the CA's directory lists, like \"shortlived\", got \(node.foundDescription)", at: node)
        }
        return name
    }

    static let onDemandKeys = ["ask", "names", "ask_cache", "ask_timeout", "wait", "rate_limit", "rate_interval"]

    /// `acme.on_demand`: which names a handshake may obtain a certificate for, and how fast.
    func onDemand(_ node: Node) throws(ConfigError) -> OnDemandSettings {
        let map = try mapping(node, name: "acme.on_demand", keys: Self.onDemandKeys)
        var settings = OnDemandSettings()
        if let value = map["ask"] {
            let url = try source.string(value, expected: "an http:// or https:// URL")
            guard let parts = URLComponents(string: url), parts.scheme == "http" || parts.scheme == "https", parts.host?.isEmpty == false else {
                throw source.error("acme.on_demand.ask must be an http:// or https:// URL (asked GET URL?domain=NAME), got \(value.foundDescription)", at: value)
            }
            settings.ask = url
        }
        if let value = map["names"] {
            settings.names = try source.list(value, of: "acme.on_demand.names").map { (item) throws(ConfigError) in
                try source.hostPattern(item, wildcard: true)
            }
        }
        guard settings.ask != nil || !settings.names.isEmpty else {
            throw source.error("acme.on_demand needs `ask` (a URL that answers 200 for names to issue) or `names` (patterns "
                               + "like \"*.customers.example.net\"): without either, any name a client sends would be issued", at: node)
        }
        if let v = map["ask_cache"] { settings.askCache = try source.duration(v, allowZero: true) }
        if let v = map["ask_timeout"] { settings.askTimeout = try source.duration(v) }
        if let v = map["wait"] { settings.wait = try source.duration(v) }
        if let v = map["rate_limit"] { settings.rateLimit = try source.int(v, in: 1...100_000) }
        if let v = map["rate_interval"] { settings.rateInterval = try source.duration(v) }
        return settings
    }

    static let dnsKeys = ["provider", "server", "key_name", "key_secret", "key_secret_file", "zone", "ttl",
                          "propagation_timeout", "check_servers", "command", "command_timeout"]

    /// `acme.dns`: the DNS-01 provider: `rfc2136` (signed UPDATEs to the primary) or `exec`
    /// (an operator's program: `command present|cleanup FQDN VALUE`).
    func acmeDNS(_ node: Node) throws(ConfigError) -> ACMEDNSSettings {
        let map = try mapping(node, name: "acme.dns", keys: Self.dnsKeys)
        guard let providerNode = map["provider"] else {
            throw source.error("acme.dns needs `provider` (rfc2136 or exec)", at: node)
        }
        var dns: ACMEDNSSettings
        if try source.choice(providerNode, ["rfc2136", "exec"]) == "exec" {
            for key in ["server", "key_name", "key_secret", "key_secret_file"] {
                if let value = map[key] { throw source.error("acme.dns.\(key) is for provider rfc2136; exec runs `command` instead", at: value) }
            }
            guard let commandNode = map["command"] else {
                throw source.error("acme.dns with provider exec needs `command`, a program run as `command present|cleanup FQDN VALUE`", at: node)
            }
            let command = try source.path(commandNode)
            guard FileManager.default.isExecutableFile(atPath: command) else {
                throw source.error("acme.dns.command: \(quoted(command)) is not an executable file", at: commandNode)
            }
            dns = ACMEDNSSettings(command: command)
            if let value = map["command_timeout"] { dns.commandTimeout = try source.duration(value) }
        } else {
            for key in ["command", "command_timeout"] {
                if let value = map[key] { throw source.error("acme.dns.\(key) is for provider exec", at: value) }
            }
            dns = try rfc2136(map, node)
        }
        if let value = map["zone"] {
            let zone = try source.hostPattern(value, wildcard: false)
            dns.zone = zone
        }
        if let value = map["ttl"] { dns.ttl = try source.duration(value) }
        if let value = map["propagation_timeout"] { dns.propagationTimeout = try source.duration(value) }
        if let value = map["check_servers"] {
            dns.checkServers = try source.list(value, of: "acme.dns.check_servers").map { (item) throws(ConfigError) in try dnsServer(item) }
        }
        return dns
    }

    private func rfc2136(_ map: MappingReader, _ node: Node) throws(ConfigError) -> ACMEDNSSettings {
        guard let serverNode = map["server"] else {
            throw source.error("acme.dns needs `server`, the primary name server's address (e.g. 192.0.2.53:53)", at: node)
        }
        let server = try dnsServer(serverNode)
        guard let nameNode = map["key_name"] else {
            throw source.error("acme.dns needs `key_name`, the TSIG key's name as in named.conf's key \"NAME\" { ... }", at: node)
        }
        let keyName = try source.string(nameNode, expected: "a TSIG key name")
        let secret: String
        let secretNode: Node
        switch (map["key_secret"], map["key_secret_file"]) {
        case (let value?, nil):
            secret = try source.string(value, expected: "a base64 TSIG secret"); secretNode = value
        case (nil, let value?):
            let path = try source.path(value)
            guard let text = FileManager.default.contents(atPath: path).map({ String(decoding: $0, as: UTF8.self) }) else {
                throw source.error("acme.dns.key_secret_file: cannot read \(quoted(path))", at: value)
            }
            secret = text.trimmingCharacters(in: .whitespacesAndNewlines); secretNode = value
        case (.some, .some):
            throw source.error("acme.dns takes key_secret or key_secret_file, not both", at: map["key_secret_file"]!)
        case (nil, nil):
            throw source.error("acme.dns needs `key_secret` (base64, as in named.conf's secret \"...\";) or `key_secret_file`", at: node)
        }
        guard !secret.isEmpty, Data(base64Encoded: secret) != nil else {
            throw source.error("acme.dns: the TSIG secret is not base64 (copy it from the key's secret \"...\"; line)", at: secretNode)
        }
        return ACMEDNSSettings(server: server, keyName: keyName, keySecret: secret)
    }

    /// host:port with an IP address (the DNS client does not resolve names).
    private func dnsServer(_ node: Node) throws(ConfigError) -> SocketAddressSpec {
        let address = try source.address(node)
        guard ValueSyntax.isIPv4(address.host) || ValueSyntax.isIPv6(address.host) else {
            throw source.error("expected a name server's IP address and port like \"192.0.2.53:53\", got \(node.foundDescription)", at: node)
        }
        return address
    }
}
