import Glibc

/// HTTP-date (RFC 9110 §5.6.7), read as seconds since 1970-01-01 00:00:00 UTC. A recipient must
/// accept all three formats: IMF-fixdate ("Sun, 06 Nov 1994 08:49:37 GMT"), the obsolete RFC 850
/// form ("Sunday, 06-Nov-94 08:49:37 GMT") and asctime's ("Sun Nov  6 08:49:37 1994"). Pure and
/// byte-wise: no formatter, locale or calendar.
public enum HTTPDate {
    /// `now` (seconds since 1970) places RFC 850's two-digit years.
    public static func seconds(_ text: String, now: Int64 = Int64(Glibc.time(nil))) -> Int64? {
        var s = Array(text.utf8)[...]
        // The day name only has to be one: nothing is checked against the date it names.
        guard let comma = s.firstIndex(of: ASCII.comma) else { return asctime(s) }
        guard isDayName(s[..<comma]) else { return nil }
        s = s[(comma + 1)...]
        guard s.popFirst() == ASCII.sp else { return nil }
        if s.count > 2, s[s.startIndex + 2] == UInt8(ascii: "-") { return rfc850(s, now: now) }
        // IMF-fixdate: day SP month SP year SP time SP "GMT"
        guard let day = number(&s, digits: 2), space(&s), let month = month(&s), space(&s),
              let year = number(&s, digits: 4), space(&s), let time = time(&s), space(&s), gmt(&s), s.isEmpty else { return nil }
        return epoch(year: year, month: month, day: day, time: time)
    }

    /// "06-Nov-94 08:49:37 GMT": a two-digit year that would put the date more than 50 years after
    /// `now` is the last year in the past with those digits (RFC 9110 §5.6.7).
    private static func rfc850(_ text: ArraySlice<UInt8>, now: Int64) -> Int64? {
        var s = text
        guard let day = number(&s, digits: 2), dash(&s), let month = month(&s), dash(&s),
              let yy = number(&s, digits: 2), space(&s), let time = time(&s), space(&s), gmt(&s), s.isEmpty else { return nil }
        guard let ahead = epoch(year: 2000 + yy, month: month, day: day, time: time) else { return nil }
        return ahead > now + 50 * 31_556_952 ? epoch(year: 1900 + yy, month: month, day: day, time: time) : ahead
    }

    /// "Sun Nov  6 08:49:37 1994": day name SP month SP (2DIGIT / SP DIGIT) SP time SP year.
    private static func asctime(_ text: ArraySlice<UInt8>) -> Int64? {
        var s = text
        guard s.count > 3, isDayName(s.prefix(3)) else { return nil }
        s = s.dropFirst(3)
        guard space(&s), let month = month(&s), space(&s) else { return nil }
        if s.first == ASCII.sp { s = s.dropFirst() }
        guard let day = number(&s, digits: s.count > 1 && ASCII.isDigit(s[s.startIndex + 1]) ? 2 : 1), space(&s),
              let time = time(&s), space(&s), let year = number(&s, digits: 4), s.isEmpty else { return nil }
        return epoch(year: year, month: month, day: day, time: time)
    }

    private static let dayNames = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"]
    private static let longDayNames = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"]
    private static let months = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]

    /// Case-sensitive, as the grammar's literals are.
    private static func isDayName(_ s: ArraySlice<UInt8>) -> Bool {
        dayNames.contains { s.elementsEqual($0.utf8) } || longDayNames.contains { s.elementsEqual($0.utf8) }
    }

    private static func month(_ s: inout ArraySlice<UInt8>) -> Int? {
        guard let i = months.firstIndex(where: { s.starts(with: $0.utf8) }) else { return nil }
        s = s.dropFirst(3)
        return i + 1
    }

    /// "hh:mm:ss" as (hour, minute, second); 60 seconds is a leap second.
    private static func time(_ s: inout ArraySlice<UInt8>) -> (Int, Int, Int)? {
        guard let h = number(&s, digits: 2), colon(&s), let m = number(&s, digits: 2), colon(&s),
              let sec = number(&s, digits: 2), h < 24, m < 60, sec <= 60 else { return nil }
        return (h, m, sec)
    }

    private static func number(_ s: inout ArraySlice<UInt8>, digits: Int) -> Int? {
        guard s.count >= digits else { return nil }
        var n = 0
        for b in s.prefix(digits) {
            guard ASCII.isDigit(b) else { return nil }
            n = n * 10 + Int(b - UInt8(ascii: "0"))
        }
        s = s.dropFirst(digits)
        return n
    }

    private static func literal(_ s: inout ArraySlice<UInt8>, _ l: String) -> Bool {
        guard s.starts(with: l.utf8) else { return false }
        s = s.dropFirst(l.utf8.count)
        return true
    }
    private static func space(_ s: inout ArraySlice<UInt8>) -> Bool { literal(&s, " ") }
    private static func dash(_ s: inout ArraySlice<UInt8>) -> Bool { literal(&s, "-") }
    private static func colon(_ s: inout ArraySlice<UInt8>) -> Bool { literal(&s, ":") }
    private static func gmt(_ s: inout ArraySlice<UInt8>) -> Bool { literal(&s, "GMT") }

    /// Days from 1970-01-01 to a proleptic Gregorian date (Howard Hinnant's days_from_civil); nil
    /// for a day the month does not have.
    private static func epoch(year: Int, month: Int, day: Int, time: (Int, Int, Int)) -> Int64? {
        let leap = year % 4 == 0 && (year % 100 != 0 || year % 400 == 0)
        let lengths = [31, leap ? 29 : 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31]
        guard day >= 1, day <= lengths[month - 1] else { return nil }
        let y = month <= 2 ? year - 1 : year
        let era = (y >= 0 ? y : y - 399) / 400
        let yoe = y - era * 400
        let doy = (153 * (month + (month > 2 ? -3 : 9)) + 2) / 5 + day - 1
        let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy
        let days = era * 146_097 + doe - 719_468
        return Int64(days) * 86_400 + Int64(time.0 * 3600 + time.1 * 60 + time.2)
    }
}
