import Foundation

/// Tables for people: columns padded to their widest cell, two spaces apart, `-` for nothing.
enum Table {
    static func render(_ header: [String], _ rows: [[String]]) -> String {
        let all = [header] + rows
        let widths = header.indices.map { column in all.map { $0.indices.contains(column) ? $0[column].count : 0 }.max() ?? 0 }
        return all.map { row in
            row.indices.map { i in
                // The last column is not padded: no trailing spaces.
                i == row.count - 1 ? row[i] : row[i].padding(toLength: widths[i], withPad: " ", startingAt: 0)
            }.joined(separator: "  ")
        }.joined(separator: "\n")
    }

    /// `key  value` lines, keys aligned.
    static func fields(_ pairs: [(String, String)]) -> String {
        let width = pairs.map(\.0.count).max() ?? 0
        return pairs.map { $0.0.padding(toLength: width, withPad: " ", startingAt: 0) + "  " + $0.1 }.joined(separator: "\n")
    }

    /// A JSON value from the admin API as a cell: null → `-`, lists joined with commas.
    static func cell(_ value: Any?) -> String {
        switch value {
        case nil, is NSNull: return "-"
        case let s as String: return s.isEmpty ? "-" : s
        // Foundation hands JSON numbers and booleans back as NSNumber, and 0 and 1 cast to Bool:
        // only the boolean kind ("c") is yes/no.
        case let n as NSNumber: return String(cString: n.objCType) == "c" ? (n.boolValue ? "yes" : "no") : n.stringValue
        case let list as [Any]: return list.isEmpty ? "-" : list.map { cell($0) }.joined(separator: ",")
        default: return "\(value!)"
        }
    }

    /// Days from now until an ISO 8601 date (negative: past), for expiry columns.
    static func daysLeft(_ value: Any?) -> String {
        guard let text = value as? String, let date = ISO8601DateFormatter().date(from: text) else { return "-" }
        return String(Int((date.timeIntervalSinceNow / 86400).rounded(.down)))
    }

    /// `1d 2h`, `3h 4m`, `5m 6s`: an uptime people read at a glance.
    static func duration(_ seconds: Int) -> String {
        let d = seconds / 86400, h = seconds % 86400 / 3600, m = seconds % 3600 / 60, s = seconds % 60
        if d > 0 { return "\(d)d \(h)h" }
        if h > 0 { return "\(h)h \(m)m" }
        return m > 0 ? "\(m)m \(s)s" : "\(s)s"
    }
}

enum JSONOutput {
    /// One line of JSON with sorted keys.
    static func string(_ value: Any) throws -> String {
        String(decoding: try JSONSerialization.data(withJSONObject: value, options: [.sortedKeys, .fragmentsAllowed]), as: UTF8.self)
    }

    /// An admin API answer as it came, ending in one newline.
    static func print(_ raw: [UInt8]) {
        let text = String(decoding: raw, as: UTF8.self)
        Swift.print(text, terminator: text.hasSuffix("\n") ? "" : "\n")
    }
}
