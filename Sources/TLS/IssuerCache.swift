import Locking

/// Issuer certificates (those after the leaf in a chain file), shared between chains. At scale
/// most certificates carry the same few intermediates, and parsing one costs ~0.2 ms and ~5 KB
/// with OpenSSL 3.0: 100,000 Let's Encrypt chains would otherwise parse and hold 100,000 copies
/// of two certificates. Keyed by DER; entries are weak, so an issuer no chain uses is freed.
enum IssuerCache {
    private struct Entry: @unchecked Sendable {  // read and written under `state`'s lock only
        weak var certificate: X509Certificate?
    }
    private struct State {
        var entries: [[UInt8]: Entry] = [:]
        /// Dead entries are dropped when the table reaches this size.
        var pruneAt = 64
    }
    private static let state = Locked(State())

    static func certificate(der: UnsafeRawBufferPointer) -> X509Certificate? {
        let key = [UInt8](der)
        if let hit = state.withLock({ $0.entries[key]?.certificate }) { return hit }
        guard let parsed = X509Certificate(der: der) else { return nil }  // outside the lock: it is the slow part
        return state.withLock { s in
            if let raced = s.entries[key]?.certificate { return raced }
            if s.entries.count >= s.pruneAt {
                s.entries = s.entries.filter { $0.value.certificate != nil }
                s.pruneAt = max(64, s.entries.count * 2)
            }
            s.entries[key] = Entry(certificate: parsed)
            return parsed
        }
    }

    /// Live entries, for tests.
    static var count: Int { state.withLock { $0.entries.values.filter { $0.certificate != nil }.count } }
}
