import Foundation
import TLS

/// A CA-suggested renewal window (ACME Renewal Information, RFC 9773 §4.2 `suggestedWindow`).
public struct RenewalWindow: Codable, Sendable, Equatable {
    public var start: Date
    public var end: Date
    public init(start: Date, end: Date) { self.start = start; self.end = end }
}

/// The body of a renewalInfo response (RFC 9773 §4.2).
public struct RenewalInfo: Decodable, Sendable {
    public var suggestedWindow: RenewalWindow
    public var explanationURL: String?

    /// The certificate identifier (RFC 9773 §4.1): base64url(AKI keyIdentifier) "." base64url(serial
    /// DER content). nil without an AKI (the CA could not have issued it, so there is nothing to ask).
    public static func certificateID(_ leaf: X509Certificate) -> String? {
        guard let aki = leaf.authorityKeyIdentifier, !aki.isEmpty else { return nil }
        return Base64URL.encode(aki) + "." + Base64URL.encode(leaf.serialDERContent)
    }

    /// Timestamps are RFC 3339 (RFC 9773 §4.2), with or without fractional seconds.
    public static func decode(_ body: [UInt8]) throws -> RenewalInfo {
        let decoder = JSONDecoder()
        decoder.dateDecodingStrategy = .custom { d in
            let text = try d.singleValueContainer().decode(String.self)
            let plain = ISO8601DateFormatter()
            let fractional = ISO8601DateFormatter()
            fractional.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
            guard let date = plain.date(from: text) ?? fractional.date(from: text) else {
                throw DecodingError.dataCorrupted(.init(codingPath: d.codingPath, debugDescription: "not RFC 3339: \(text)"))
            }
            return date
        }
        return try decoder.decode(RenewalInfo.self, from: Data(body))
    }
}

/// When to renew and when to retry: pure functions of dates and a random number in [0, 1), so a
/// scheduler can call them and tests can pin them.
public enum RenewalPolicy {
    /// Certificates valid for less than this renew at half their lifetime, not a third.
    public static let shortLived: Double = 10 * 86400

    /// Without ARI, renew once a third of the lifetime remains (Let's Encrypt's advice for 90-day
    /// certificates: at 60 days), or half of it for short-lived certificates (under 10 days: a
    /// 6-day certificate renews with 3 days to spare), or once `renewBefore` seconds remain when
    /// the operator set that, brought forward by up to 1/30 of the lifetime at random so a fleet
    /// with certificates from one batch does not renew in the same minute.
    public static func renewalTime(notBefore: Date, notAfter: Date, ariWindow: RenewalWindow? = nil, renewBefore: Double? = nil,
                                   random: Double = Double.random(in: 0..<1)) -> Date {
        // RFC 9773 §4.2: pick a uniformly random time inside the window; ignore a window whose end
        // is not after its start (the RFC says such a window is invalid).
        if let window = ariWindow, window.end > window.start {
            return window.start.addingTimeInterval(window.end.timeIntervalSince(window.start) * random)
        }
        let lifetime = max(0, notAfter.timeIntervalSince(notBefore))
        let share = lifetime < shortLived ? lifetime / 2 : lifetime / 3
        return notAfter.addingTimeInterval(-(renewBefore ?? share) - lifetime / 30 * random)
    }

    /// Whether a certificate is due now (same rule as `renewalTime`, without jitter). Also true
    /// when an ARI window has started: the CA may ask for early renewal (e.g. revocation ahead).
    public static func isDue(notBefore: Date, notAfter: Date, ariWindow: RenewalWindow? = nil, renewBefore: Double? = nil,
                             now: Date = Date()) -> Bool {
        if let window = ariWindow, window.end > window.start { return now >= window.start }
        return now >= renewalTime(notBefore: notBefore, notAfter: notAfter, renewBefore: renewBefore, random: 0)
    }

    /// Wait after `failures` consecutive failed attempts (1 = the first failure): exponential from
    /// `base`, capped at `cap`, with "equal jitter" (half fixed, half random) so retries neither
    /// synchronise nor collapse to zero.
    public static func backoff(failures: Int, base: Double = 60, cap: Double = 6 * 3600,
                               random: Double = Double.random(in: 0..<1)) -> Double {
        let exponent = Double(min(max(failures - 1, 0), 30))
        let ceiling = min(cap, base * pow(2, exponent))
        return ceiling / 2 + ceiling / 2 * random
    }

    /// When to try again after a failure: the backoff, or the CA's Retry-After (429/503, RFC 8555
    /// §6.6) when that is later — never sooner than the CA asked.
    public static func nextAttempt(after error: Error, failures: Int, now: Date = Date(), base: Double = 60,
                                   cap: Double = 6 * 3600, random: Double = Double.random(in: 0..<1)) -> Date {
        let wait = backoff(failures: failures, base: base, cap: cap, random: random)
        let asked = (error as? ACMEError)?.retryAfter ?? 0
        return now.addingTimeInterval(max(wait, asked))
    }
}
