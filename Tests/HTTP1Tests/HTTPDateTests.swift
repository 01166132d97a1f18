import Glibc
import Testing
@testable import HTTP1

@Suite struct HTTPDateTests {
    /// RFC 9110 §5.6.7's example, in its three formats.
    @Test func theThreeFormatsOfTheRFCsExample() {
        #expect(HTTPDate.seconds("Sun, 06 Nov 1994 08:49:37 GMT") == 784_111_777)
        #expect(HTTPDate.seconds("Sunday, 06-Nov-94 08:49:37 GMT", now: 784_111_777) == 784_111_777)
        #expect(HTTPDate.seconds("Sun Nov  6 08:49:37 1994") == 784_111_777)
    }

    /// A two-digit year more than 50 years ahead of now is the last century's.
    @Test func rfc850TwoDigitYearsAreTheClosestNotTooFarAhead() {
        let in2026: Int64 = 1_765_000_000
        #expect(HTTPDate.seconds("Thursday, 01-Jan-70 00:00:00 GMT", now: in2026) == 3_155_760_000)   // 2070: 44 years ahead
        #expect(HTTPDate.seconds("Wednesday, 01-Jan-80 00:00:00 GMT", now: in2026) == 315_532_800)    // 1980, not 2080
        #expect(HTTPDate.seconds("Thursday, 01-Jan-70 00:00:00 GMT", now: 784_111_777) == 0)          // seen in 1994: 1970
    }

    @Test func asctimeWithATwoDigitDay() {
        #expect(HTTPDate.seconds("Wed Oct 21 07:28:00 2015") == 1_445_412_480)
    }

    @Test func leapDaysAndLeapSeconds() {
        #expect(HTTPDate.seconds("Tue, 29 Feb 2000 00:00:00 GMT") == 951_782_400)
        #expect(HTTPDate.seconds("Thu, 29 Feb 2024 12:00:00 GMT") == 1_709_208_000)
        #expect(HTTPDate.seconds("Thu, 29 Feb 2100 00:00:00 GMT") == nil)   // 2100 is not a leap year
        #expect(HTTPDate.seconds("Sat, 31 Dec 2016 23:59:60 GMT") == 1_483_228_800)
    }

    @Test func malformedDatesAreRefused() {
        for text in ["", "GMT", "Sun, 06 Nov 1994 08:49:37", "Sun, 06 Nov 1994 08:49:37 UTC", "Sun, 6 Nov 1994 08:49:37 GMT",
                     "Sun, 06 nov 1994 08:49:37 GMT", "Sun, 06 Nov 94 08:49:37 GMT", "Sun, 06 Nov 1994 24:00:00 GMT",
                     "Sun, 06 Nov 1994 08:60:00 GMT", "Sun, 31 Nov 1994 08:49:37 GMT", "Sun, 00 Nov 1994 08:49:37 GMT",
                     "Xyz, 06 Nov 1994 08:49:37 GMT", "Sun,06 Nov 1994 08:49:37 GMT", "Sun, 06 Nov 1994 08:49:37 GMT ",
                     "Sunday, 06-Nov-1994 08:49:37 GMT", "Sun Nov  6 08:49:37 94", "Sun Nov 6 8:49:37 1994", "120"] {
            #expect(HTTPDate.seconds(text) == nil, "\(text)")
        }
    }

    /// Every format against the C library's own conversion, for dates across four centuries.
    @Test func agreesWithTimegm() {
        var rng = SystemRandomNumberGenerator()
        for _ in 0..<2000 {
            let t = Int.random(in: 0...(4_102_444_800 - 1), using: &rng)   // 1970 ... 2099
            var clock = time_t(t), parts = tm()
            gmtime_r(&clock, &parts)
            #expect(Int(timegm(&parts)) == t)
            for format in ["%a, %d %b %Y %H:%M:%S GMT", "%A, %d-%b-%y %H:%M:%S GMT", "%a %b %e %H:%M:%S %Y"] {
                var buffer = [CChar](repeating: 0, count: 64)
                let n = strftime(&buffer, buffer.count, format, &parts)
                let text = String(decoding: buffer[..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self)
                #expect(HTTPDate.seconds(text, now: Int64(t)) == Int64(t), "\(text)")
            }
        }
    }
}
