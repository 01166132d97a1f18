import Foundation
import Testing
@testable import ACME

@Suite struct RenewalPolicyTests {
    let notBefore = Date(timeIntervalSince1970: 1_700_000_000)
    var notAfter: Date { notBefore.addingTimeInterval(90 * 86400) }

    @Test func thirdOfLifetimeWithEarlyJitter() {
        let latest = RenewalPolicy.renewalTime(notBefore: notBefore, notAfter: notAfter, random: 0)
        #expect(latest == notBefore.addingTimeInterval(60 * 86400))
        let earliest = RenewalPolicy.renewalTime(notBefore: notBefore, notAfter: notAfter, random: 0.999999)
        #expect(earliest < latest && earliest > latest.addingTimeInterval(-3 * 86400 - 1))
        #expect(!RenewalPolicy.isDue(notBefore: notBefore, notAfter: notAfter, now: notBefore.addingTimeInterval(59 * 86400)))
        #expect(RenewalPolicy.isDue(notBefore: notBefore, notAfter: notAfter, now: notBefore.addingTimeInterval(61 * 86400)))
    }

    /// A 6-day certificate (a CA's short-lived profile) renews at half its life, with 3 days to spare.
    @Test func shortLivedCertificatesRenewAtHalfTheirLifetime() {
        let sixDays = notBefore.addingTimeInterval(6 * 86400)
        #expect(RenewalPolicy.renewalTime(notBefore: notBefore, notAfter: sixDays, random: 0) == notBefore.addingTimeInterval(3 * 86400))
        #expect(!RenewalPolicy.isDue(notBefore: notBefore, notAfter: sixDays, now: notBefore.addingTimeInterval(2.9 * 86400)))
        #expect(RenewalPolicy.isDue(notBefore: notBefore, notAfter: sixDays, now: notBefore.addingTimeInterval(3.1 * 86400)))
    }

    /// 10,000 certificates issued in one week are not renewed in one burst: the jitter spreads
    /// them over more than a week, and no hour takes more than a small share.
    @Test func aWeeksWorthOfCertificatesRenewsSpreadOut() {
        var perHour: [Int: Int] = [:]
        var times: [Date] = []
        for i in 0..<10_000 {
            let issued = notBefore.addingTimeInterval(Double(i % 7) * 86400 + Double(i % 24) * 3600)
            let at = RenewalPolicy.renewalTime(notBefore: issued, notAfter: issued.addingTimeInterval(90 * 86400))
            times.append(at)
            perHour[Int(at.timeIntervalSince1970 / 3600), default: 0] += 1
        }
        #expect(times.max()!.timeIntervalSince(times.min()!) > 8 * 86400)
        #expect(perHour.values.max()! < 200, "\(perHour.values.max()!) renewals in one hour")
    }

    @Test func ariWindowWinsAndIsSampledUniformly() {
        let window = RenewalWindow(start: notBefore.addingTimeInterval(10 * 86400), end: notBefore.addingTimeInterval(12 * 86400))
        #expect(RenewalPolicy.renewalTime(notBefore: notBefore, notAfter: notAfter, ariWindow: window, random: 0) == window.start)
        #expect(RenewalPolicy.renewalTime(notBefore: notBefore, notAfter: notAfter, ariWindow: window, random: 0.5)
                == notBefore.addingTimeInterval(11 * 86400))
        #expect(RenewalPolicy.isDue(notBefore: notBefore, notAfter: notAfter, ariWindow: window, now: window.start))
        // An inverted window is invalid (RFC 9773 §4.2): fall back to the lifetime rule.
        let inverted = RenewalWindow(start: window.end, end: window.start)
        #expect(RenewalPolicy.renewalTime(notBefore: notBefore, notAfter: notAfter, ariWindow: inverted, random: 0)
                == notBefore.addingTimeInterval(60 * 86400))
    }

    @Test func decodesRenewalInfo() throws {
        let body = #"{"suggestedWindow":{"start":"2025-01-02T04:00:00Z","end":"2025-01-03T04:00:00.5Z"},"explanationURL":"https://ca/x"}"#
        let info = try RenewalInfo.decode(Array(body.utf8))
        #expect(info.suggestedWindow.start == Date(timeIntervalSince1970: 1_735_790_400))
        #expect(info.explanationURL == "https://ca/x")
    }

    @Test func backoffGrowsWithJitterAndCap() {
        #expect(RenewalPolicy.backoff(failures: 1, base: 60, random: 0) == 30)
        #expect(RenewalPolicy.backoff(failures: 1, base: 60, random: 0.999) < 60)
        #expect(RenewalPolicy.backoff(failures: 3, base: 60, random: 0) == 120)
        #expect(RenewalPolicy.backoff(failures: 50, base: 60, cap: 6 * 3600, random: 0.999) <= 6 * 3600)
        #expect(RenewalPolicy.backoff(failures: 50, base: 60, cap: 6 * 3600, random: 0) == 3 * 3600)
        // Never a tight loop: even the first retry waits.
        #expect(RenewalPolicy.backoff(failures: 0, base: 60, random: 0) >= 30)
    }

    @Test func retryAfterIsHonouredWhenLonger() {
        let now = Date(timeIntervalSince1970: 0)
        let limited = ACMEError(.problem, "rate limited", status: 429, retryAfter: 7200)
        #expect(RenewalPolicy.nextAttempt(after: limited, failures: 1, now: now, random: 0) == now.addingTimeInterval(7200))
        let plain = ACMEError(.transport, "reset")
        #expect(RenewalPolicy.nextAttempt(after: plain, failures: 1, now: now, random: 0) == now.addingTimeInterval(30))
    }
}
