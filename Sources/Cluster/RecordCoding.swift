import Foundation

/// JSON for the cluster's records: RFC 3339 times with milliseconds (a record's `stored_at` is
/// how a node measures how long it took to reach it), read with or without fractions, in years
/// 0001 to 9999; sorted keys.
enum RecordCoding {
    static func encoder() -> JSONEncoder {
        let encoder = JSONEncoder()
        encoder.outputFormatting = .sortedKeys
        encoder.dateEncodingStrategy = .custom { date, to in
            var container = to.singleValueContainer()
            try container.encode(lock.withLock { fractional.string(from: date) })
        }
        return encoder
    }

    static func decoder() -> JSONDecoder {
        let decoder = JSONDecoder()
        decoder.dateDecodingStrategy = .custom { from in
            let text = try from.singleValueContainer().decode(String.self)
            guard isDateTime(text), let date = lock.withLock({ fractional.date(from: text) ?? whole.date(from: text) }),
                  years.contains(date.timeIntervalSince1970) else {
                throw DecodingError.dataCorrupted(.init(codingPath: from.codingPath, debugDescription: "not an RFC 3339 time: \(text)"))
            }
            return date
        }
        return decoder
    }

    /// 0001-01-01T00:00:00Z to the end of 9999 as the formatter reads them (Julian before 1582): the
    /// times whose four-digit year writes back as it reads (year 0 and before come out unsigned).
    static let years: Range<Double> = lock.withLock {
        whole.date(from: "0001-01-01T00:00:00Z")!.timeIntervalSince1970 ..< whole.date(from: "9999-12-31T23:59:59Z")!.timeIntervalSince1970 + 1
    }

    /// RFC 3339 §5.6 date-time: "YYYY-MM-DDTHH:MM:SS", up to 9 digits of fraction, "Z" or "±HH:MM".
    /// The formatters alone also take longer years (wrapped around into others), signed years,
    /// one-digit fields and leading white space.
    static func isDateTime(_ text: String) -> Bool {
        let b = Array(text.utf8)
        func digits(_ from: Int, _ count: Int) -> Bool {
            from + count <= b.count && b[from..<(from + count)].allSatisfy { $0 >= UInt8(ascii: "0") && $0 <= UInt8(ascii: "9") }
        }
        func byte(_ i: Int, _ c: Unicode.Scalar) -> Bool { i < b.count && b[i] == UInt8(ascii: c) }
        guard digits(0, 4), byte(4, "-"), digits(5, 2), byte(7, "-"), digits(8, 2), byte(10, "T"), digits(11, 2), byte(13, ":"),
              digits(14, 2), byte(16, ":"), digits(17, 2) else { return false }
        var i = 19
        if byte(i, ".") {
            i += 1
            let start = i
            while digits(i, 1) { i += 1 }
            guard (1...9).contains(i - start) else { return false }
        }
        if byte(i, "Z") { return i + 1 == b.count }
        return (byte(i, "+") || byte(i, "-")) && digits(i + 1, 2) && byte(i + 3, ":") && digits(i + 4, 2) && i + 6 == b.count
    }

    // Shared formatters (making one per date costs more than the record), used under `lock`.
    private static let lock = NSLock()
    nonisolated(unsafe) private static let fractional: ISO8601DateFormatter = {
        let f = ISO8601DateFormatter()
        f.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        return f
    }()
    nonisolated(unsafe) private static let whole = ISO8601DateFormatter()
}
