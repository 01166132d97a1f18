import Foundation
import Testing
@testable import Config

/// `acme.events`: where certificate events go and how their deliveries retry.
extension ACMEConfigTests {
    static let eventsBase = "acme:\n  directory: https://ca.example/dir\n  certificates: [a.example]\n"

    @Test func eventsAbsentMeansNone() throws {
        #expect(try parse(Self.eventsBase).acme?.events == nil)
    }

    @Test func eventsEveryKey() throws {
        let secretFile = NSTemporaryDirectory() + "/edgeproxy-webhook-\(UUID().uuidString).secret"
        defer { try? FileManager.default.removeItem(atPath: secretFile) }
        try "from-a-file\n".write(toFile: secretFile, atomically: true, encoding: .utf8)
        let events = try #require(try parse(Self.eventsBase + """
              events:
                webhooks:
                  - { url: "https://hooks.example/certs", secret: s3cret }
                  - { url: "http://127.0.0.1:9000/x?y=1", secret_file: \(secretFile) }
                command: /bin/sh
                timeout: 5s
                retries: 3
                backoff_base: 2s
                backoff_cap: 1m
                queue: 50
                expiring_within: 240h
            """).acme?.events)
        #expect(events.webhooks == [ACMEEventSettings.Webhook(url: "https://hooks.example/certs", secret: "s3cret"),
                                    ACMEEventSettings.Webhook(url: "http://127.0.0.1:9000/x?y=1", secret: "from-a-file")])
        #expect(events.command == "/bin/sh" && events.timeout == 5 && events.retries == 3)
        #expect(events.backoffBase == 2 && events.backoffCap == 60 && events.queue == 50 && events.expiringWithin == 240 * 3600)
    }

    @Test func eventsDefaults() throws {
        let events = try #require(try parse(Self.eventsBase + "  events: { command: /bin/sh }\n").acme?.events)
        #expect(events.webhooks.isEmpty && events.timeout == 10 && events.retries == 10)
        #expect(events.backoffBase == 1 && events.backoffCap == 600 && events.queue == 1000 && events.expiringWithin == nil)
    }

    @Test func eventsMistakes() {
        expectError(Self.eventsBase + "  events: { timeout: 5s }\n", line: 4, column: 11,
                    "acme.events needs `webhooks` (e.g. [{ url: https://hooks.example.com/certs, secret_file: webhook.secret }]) "
                        + "or `command` (a program run as `command KIND NAME` with the event's JSON on stdin)")
        expectError(Self.eventsBase + "  events: { webhooks: [{ url: \"https://h.example/x\" }] }\n", line: 4, column: 24,
                    "an acme.events.webhooks entry needs `secret` or `secret_file`: the receiver checks the "
                        + "X-Edgeproxy-Signature header with it (make one with `openssl rand -hex 32`)")
        expectError(Self.eventsBase + "  events: { webhooks: [{ url: \"ftp://h.example/x\", secret: s }] }\n", line: 4, column: 31,
                    "acme.events.webhooks url must be an http:// or https:// URL, got \"ftp://h.example/x\"")
        expectError(Self.eventsBase + "  events: { webhooks: [{ url: \"https://h.example/x\", secret: s, secret_file: /nonexistent }] }\n",
                    line: 4, column: 78, "an acme.events.webhooks entry takes secret or secret_file, not both")
        expectError(Self.eventsBase + "  events: { webhooks: [{ url: \"https://h.example/x\", secret_file: /nonexistent/secret }] }\n",
                    line: 4, column: 67, "acme.events.webhooks secret_file: cannot read \"/nonexistent/secret\"")
        expectError(Self.eventsBase + "  events: { command: /nonexistent/hook }\n", line: 4, column: 22,
                    "acme.events.command: \"/nonexistent/hook\" is not an executable file")
        expectError(Self.eventsBase + "  events: { command: /bin/sh, backoff_base: 1m, backoff_cap: 2s }\n", line: 4, column: 62,
                    "acme.events.backoff_cap must not be shorter than backoff_base")
        expectError(Self.eventsBase + "  events: { command: /bin/sh, queue: 0 }\n", line: 4, column: 38,
                    "expected an integer from 1 to 1000000, got \"0\"")
        expectError(Self.eventsBase + "  events: { command: /bin/sh, colour: red }\n", line: 4, column: 31,
                    "unknown key \"colour\" in acme.events (expected one of: webhooks, command, timeout, retries, backoff_base, "
                        + "backoff_cap, queue, expiring_within)")
    }
}
