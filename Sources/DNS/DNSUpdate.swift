/// RFC 2136 UPDATE messages for the DNS-01 challenge (RFC 8555 §8.4): the TXT record
/// `_acme-challenge.<domain>` with the key authorization's digest, added for present and
/// removed again for clean-up.
public struct DNSUpdate: Sendable {
    /// The zone the records live in (the zone section's name, RFC 2136 §2.3), e.g. "example.test".
    public let zone: String

    public init(zone: String) { self.zone = zone }

    /// RFC 8555 §8.4: the name the CA queries for `domain`.
    public static func challengeName(for domain: String) -> String {
        "_acme-challenge." + (domain.hasPrefix("*.") ? String(domain.dropFirst(2)) : domain)
    }

    /// Adds `_acme-challenge.<domain> TTL IN TXT "value"` (RFC 2136 §2.5.1). Other TXT values
    /// already there stay (several authorizations can be pending for one name).
    public func addChallenge(domain: String, value: String, ttl: UInt32 = 60, id: UInt16 = .random(in: .min ... .max)) -> DNSMessage {
        message(id: id, DNSRecord(name: Self.challengeName(for: domain), ttl: ttl, .txt(value)))
    }

    /// Deletes exactly that TXT record (RFC 2136 §2.5.4: class NONE, TTL 0), leaving others.
    public func deleteChallenge(domain: String, value: String, id: UInt16 = .random(in: .min ... .max)) -> DNSMessage {
        message(id: id, DNSRecord(name: Self.challengeName(for: domain), dnsClass: .none, ttl: 0, .txt(value)))
    }

    /// An UPDATE for this zone with `updates` in the update section and no prerequisites.
    public func message(id: UInt16, _ updates: DNSRecord...) -> DNSMessage {
        DNSMessage(header: DNSHeader(id: id, opcode: .update),
                   questions: [DNSQuestion(name: zone, type: .soa)],
                   authorities: updates)
    }
}
