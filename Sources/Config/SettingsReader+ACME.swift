import Foundation
import Yams

extension SettingsReader {
    static let acmeKeys = ["directory", "email", "ca_root", "eab", "challenges", "storage", "certificates", "renewal", "request_timeout"]
    static let challengeTypes = ["http-01", "tls-alpn-01"]

    /// `acme:` absent → off. When present, `directory` and at least one certificate are required.
    func acme(_ node: Node?, listen: Listen) throws(ConfigError) -> ACMESettings? {
        guard let node else { return nil }
        let map = try mapping(node, name: "acme", keys: Self.acmeKeys)
        guard let directoryNode = map["directory"] else {
            throw source.error("acme needs `directory`, the CA's directory URL "
                               + "(e.g. https://acme-v02.api.letsencrypt.org/directory)", at: node)
        }
        let directory = try source.string(directoryNode, expected: "an https:// URL")
        guard let url = URLComponents(string: directory), url.scheme == "https", url.host?.isEmpty == false else {
            throw source.error("acme.directory must be an https:// URL, got \(directoryNode.foundDescription)", at: directoryNode)
        }
        guard let certificatesNode = map["certificates"] else {
            throw source.error("acme needs `certificates`: the names to obtain, e.g. [example.com, [shop.example.com, www.shop.example.com]]",
                               at: node)
        }
        var acme = ACMESettings(directory: directory, storage: source.resolve(path: "acme"),
                                certificates: try acmeCertificates(certificatesNode))
        if let value = map["email"] {
            let email = try source.string(value, expected: "an e-mail address")
            guard email.contains("@"), !email.contains(" "), !email.hasPrefix("mailto:") else {
                throw source.error("acme.email: expected an e-mail address like ops@example.com, got \(value.foundDescription)", at: value)
            }
            acme.email = email
        }
        if let value = map["ca_root"] {
            let path = try source.path(value)
            guard FileManager.default.isReadableFile(atPath: path) else {
                throw source.error("acme.ca_root: cannot read \(quoted(path)) (a PEM file of the CA API's root certificates)", at: value)
            }
            acme.caRoot = path
        }
        if let value = map["eab"] {
            let eab = try mapping(value, name: "acme.eab", keys: ["key_id", "hmac_key"])
            guard let kid = eab["key_id"], let hmac = eab["hmac_key"] else {
                throw source.error("acme.eab needs both key_id and hmac_key (from the CA's account page)", at: value)
            }
            let key = try source.string(hmac, expected: "a base64url HMAC key")
            guard !key.isEmpty, key.allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "-" || $0 == "_") }) else {
                throw source.error("acme.eab.hmac_key: expected the base64url key the CA gave (letters, digits, - and _, "
                                   + "no padding), got \(hmac.foundDescription)", at: hmac)
            }
            acme.eab = EABSettings(keyID: try source.string(kid, expected: "the CA's key id"), hmacKey: key)
        }
        if let value = map["challenges"] {
            var types: [String] = []
            for item in try source.list(value, of: "acme.challenges") {
                let type = try source.choice(item, Self.challengeTypes)
                guard !types.contains(type) else { throw source.error("acme.challenges lists \(quoted(type)) twice", at: item) }
                types.append(type)
            }
            guard !types.isEmpty else { throw source.error("acme.challenges needs at least one of \(alternatives(Self.challengeTypes))", at: value) }
            acme.challenges = types
        }
        if acme.challenges == ["http-01"] && listen.http.isEmpty {
            throw source.error("acme.challenges is [http-01] but listen.http is empty: the CA could not reach the answers "
                               + "(add a port-80 listener or allow tls-alpn-01)", at: map["challenges"] ?? node)
        }
        if let value = map["storage"] { acme.storage = try source.path(value) }
        if let value = map["request_timeout"] { acme.requestTimeout = try source.duration(value) }
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

    /// Each entry: one name, or a list of names for one certificate (the first names it). A name
    /// may belong to one certificate only; wildcards need DNS-01, which the proxy cannot answer.
    func acmeCertificates(_ node: Node) throws(ConfigError) -> [[String]] {
        var result: [[String]] = []
        var seen: [String: Node] = [:]
        for entry in try source.list(node, of: "acme.certificates") {
            var names: [String] = []
            for item in try source.list(entry, of: "an acme.certificates entry") {
                let name = try source.hostPattern(item, wildcard: true)
                if name.hasPrefix("*.") {
                    throw source.error("\(quoted(name)): wildcard certificates need the DNS-01 challenge, which edgeproxy does not "
                                       + "answer; list the names instead", at: item)
                }
                if let first = seen[name] {
                    throw source.error("\(quoted(name)) is already in the certificate at \(position(first.mark))", at: item)
                }
                seen[name] = item
                names.append(name)
            }
            guard !names.isEmpty else { throw source.error("an acme.certificates entry needs at least one name", at: entry) }
            result.append(names)
        }
        guard !result.isEmpty else { throw source.error("acme.certificates needs at least one name", at: node) }
        return result
    }
}
