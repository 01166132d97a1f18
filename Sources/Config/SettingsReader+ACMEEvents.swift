import Foundation
import Yams

extension SettingsReader {
    static let eventKeys = ["webhooks", "command", "timeout", "retries", "backoff_base", "backoff_cap", "queue", "expiring_within"]

    /// `acme.events`: webhooks (each with its signing secret) and/or a program, and how deliveries retry.
    func acmeEvents(_ node: Node) throws(ConfigError) -> ACMEEventSettings {
        let map = try mapping(node, name: "acme.events", keys: Self.eventKeys)
        var events = ACMEEventSettings()
        if let value = map["webhooks"] {
            events.webhooks = try source.list(value, of: "acme.events.webhooks").map { (item) throws(ConfigError) in try webhook(item) }
        }
        if let value = map["command"] {
            let command = try source.path(value)
            guard FileManager.default.isExecutableFile(atPath: command) else {
                throw source.error("acme.events.command: \(quoted(command)) is not an executable file", at: value)
            }
            events.command = command
        }
        guard !events.webhooks.isEmpty || events.command != nil else {
            throw source.error("acme.events needs `webhooks` (e.g. [{ url: https://hooks.example.com/certs, secret_file: webhook.secret }]) "
                               + "or `command` (a program run as `command KIND NAME` with the event's JSON on stdin)", at: node)
        }
        if let v = map["timeout"] { events.timeout = try source.duration(v) }
        if let v = map["retries"] { events.retries = try source.int(v, in: 0...100) }
        if let v = map["backoff_base"] { events.backoffBase = try source.duration(v) }
        if let v = map["backoff_cap"] { events.backoffCap = try source.duration(v) }
        if events.backoffCap < events.backoffBase {
            throw source.error("acme.events.backoff_cap must not be shorter than backoff_base", at: map["backoff_cap"] ?? node)
        }
        if let v = map["queue"] { events.queue = try source.int(v, in: 1...1_000_000) }
        if let v = map["expiring_within"] { events.expiringWithin = try source.duration(v) }
        return events
    }

    /// `{ url, secret | secret_file }`: a receiver cannot trust an unsigned event, so the secret is required.
    private func webhook(_ node: Node) throws(ConfigError) -> ACMEEventSettings.Webhook {
        let map = try mapping(node, name: "an acme.events.webhooks entry", keys: ["url", "secret", "secret_file"])
        guard let urlNode = map["url"] else {
            throw source.error("an acme.events.webhooks entry needs `url`, where the events are POSTed", at: node)
        }
        let url = try source.string(urlNode, expected: "an http:// or https:// URL")
        guard let parts = URLComponents(string: url), parts.scheme == "http" || parts.scheme == "https", parts.host?.isEmpty == false else {
            throw source.error("acme.events.webhooks url must be an http:// or https:// URL, got \(urlNode.foundDescription)", at: urlNode)
        }
        let secret: String
        switch (map["secret"], map["secret_file"]) {
        case (let value?, nil):
            secret = try source.string(value, expected: "the webhook's signing secret")
        case (nil, let value?):
            let path = try source.path(value)
            guard let text = FileManager.default.contents(atPath: path).map({ String(decoding: $0, as: UTF8.self) }) else {
                throw source.error("acme.events.webhooks secret_file: cannot read \(quoted(path))", at: value)
            }
            secret = text.trimmingCharacters(in: .whitespacesAndNewlines)
        case (.some, .some):
            throw source.error("an acme.events.webhooks entry takes secret or secret_file, not both", at: map["secret_file"]!)
        case (nil, nil):
            throw source.error("an acme.events.webhooks entry needs `secret` or `secret_file`: the receiver checks the "
                               + "X-Edgeproxy-Signature header with it (make one with `openssl rand -hex 32`)", at: node)
        }
        guard !secret.isEmpty else {
            throw source.error("the webhook's secret is empty", at: map["secret"] ?? map["secret_file"]!)
        }
        return ACMEEventSettings.Webhook(url: url, secret: secret)
    }
}
