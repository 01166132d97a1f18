import Foundation

/// JSON for the cluster's records: RFC 3339 times with milliseconds (a record's `stored_at` is
/// how a node measures how long it took to reach it), read with or without fractions; sorted keys.
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
            guard let date = lock.withLock({ fractional.date(from: text) ?? whole.date(from: text) }) else {
                throw DecodingError.dataCorrupted(.init(codingPath: from.codingPath, debugDescription: "not an RFC 3339 time: \(text)"))
            }
            return date
        }
        return decoder
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
