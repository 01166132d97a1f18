import Foundation
import Logs

/// OCSP responses on disk, one file per certificate (`CERTID-SHA256.der`), so a restart staples
/// at once (as Caddy does) instead of after a round trip to the responder. What is read back is
/// checked like a fresh answer. Used from the stapler's queue only. The directory is created on
/// the first write: a proxy whose certificates name no responder never creates it.
struct StapleCache {
    let directory: String

    func load(_ key: String) -> [UInt8]? {
        FileManager.default.contents(atPath: path(key)).map { [UInt8]($0) }
    }

    /// Written whole (temporary file + rename), so a crash never leaves half a response.
    func store(_ key: String, _ der: [UInt8]) {
        do {
            try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
            try Data(der).write(to: URL(fileURLWithPath: path(key)), options: .atomic)
        } catch {
            Log.warning("OCSP cache: cannot write \(path(key)): \(error); staples will be fetched again after a restart")
        }
    }

    func remove(_ key: String) {
        try? FileManager.default.removeItem(atPath: path(key))
    }

    /// Files not rewritten for `age` seconds: their certificates are gone (a live certificate's
    /// response is written again at every refresh, half way through its validity).
    func prune(olderThan age: TimeInterval, now: Date = Date()) {
        guard let names = try? FileManager.default.contentsOfDirectory(atPath: directory) else { return }
        for name in names where name.hasSuffix(".der") {
            let file = (directory as NSString).appendingPathComponent(name)
            if let modified = (try? FileManager.default.attributesOfItem(atPath: file))?[.modificationDate] as? Date,
               now.timeIntervalSince(modified) > age {
                try? FileManager.default.removeItem(atPath: file)
            }
        }
    }

    private func path(_ key: String) -> String { (directory as NSString).appendingPathComponent(key + ".der") }
}
