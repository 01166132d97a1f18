/// The sealer as the cluster's records use it: errors in the cluster's terms.
extension Sealer {
    /// From the configuration's key bytes (the config loader read and checked the files).
    public init(keyBytes: [[UInt8]]) throws(ClusterError) {
        do { try self.init(keys: keyBytes.map { bytes throws(SealerError) in try Key(bytes) }) } catch {
            throw ClusterError(.sealing, error.description)
        }
    }

    func sealRecord(_ plaintext: [UInt8], context: String) throws(ClusterError) -> [UInt8] {
        do { return try seal(plaintext, context: context) } catch { throw ClusterError(.sealing, "\(context): \(error)") }
    }

    func openRecord(_ sealed: [UInt8], context: String) throws(ClusterError) -> [UInt8] {
        do { return try open(sealed, context: context) } catch { throw ClusterError(.badRecord, "\(error)") }
    }

    /// Sealed under the key that seals now (nothing to re-seal).
    func isSealedWithFirstKey(_ sealed: [UInt8]) -> Bool {
        Sealer.keyID(of: sealed) == keys.first?.id
    }
}
