import Certificates
import Foundation

/// A certificate as the fleet stores it at `certificates/NAME`: JSON with the chain in PEM and the
/// private key sealed (`Sealer`, with the record's etcd key as associated data, so a record copied
/// to another key does not open). No plaintext private key ever leaves the process.
public struct CertificateRecord: Codable, Sendable, Equatable {
    public var names: [String]
    /// PEM, leaf first.
    public var chain: String
    /// The sealed PEM private key, base64.
    public var sealedKey: String
    public var serial: String
    public var notAfter: Date
    /// "acme", "api", "import".
    public var source: String
    /// The node that stored it, and when.
    public var node: String
    public var storedAt: Date

    enum CodingKeys: String, CodingKey {
        case names, chain, sealedKey = "sealed_key", serial, notAfter = "not_after", source, node, storedAt = "stored_at"
    }

    /// Seals `keyPEM` for `etcdKey` and describes `bundle` (already validated by the caller).
    public static func encode(bundle: CertificateBundle, chainPEM: [UInt8], keyPEM: [UInt8], etcdKey: String, sealer: Sealer,
                              source: String, node: String) throws(ClusterError) -> [UInt8] {
        let sealed = try sealer.sealRecord(keyPEM, context: etcdKey)
        let record = CertificateRecord(names: bundle.names, chain: String(decoding: CertificateDirectory.splitPEM(chainPEM).certificates, as: UTF8.self),
                                       sealedKey: Data(sealed).base64EncodedString(), serial: bundle.serialHex, notAfter: bundle.notAfter,
                                       source: source, node: node, storedAt: Date())
        let encoder = RecordCoding.encoder()
        do { return [UInt8](try encoder.encode(record)) } catch {
            throw ClusterError(.badRecord, "cannot encode the record for \(etcdKey): \(error)")
        }
    }

    /// Decodes the record found at `etcdKey` and opens its key; the caller validates the pair.
    public static func decode(_ bytes: [UInt8], etcdKey: String, sealer: Sealer) throws(ClusterError) -> (record: CertificateRecord, chainPEM: [UInt8], keyPEM: [UInt8]) {
        let decoder = RecordCoding.decoder()
        let record: CertificateRecord
        do { record = try decoder.decode(CertificateRecord.self, from: Data(bytes)) } catch {
            throw ClusterError(.badRecord, "\(etcdKey) is not a certificate record (\(Self.describe(error)))")
        }
        guard let sealed = Data(base64Encoded: record.sealedKey) else {
            throw ClusterError(.badRecord, "\(etcdKey): sealed_key is not base64")
        }
        let keyPEM = try sealer.openRecord([UInt8](sealed), context: etcdKey)
        return (record, Array(record.chain.utf8), keyPEM)
    }

    /// Decodes, opens and validates (chain parses, key matches, names) the record at `etcdKey`.
    /// `deferred` (start-up only): served from the start-up index when it can read the pair,
    /// built and checked by OpenSSL later (`CertificateLoader.deferredBundle`).
    public static func bundle(_ bytes: [UInt8], etcdKey: String, sealer: Sealer,
                              deferred: Bool = false) throws(ClusterError) -> (record: CertificateRecord, bundle: CertificateBundle) {
        let (record, chain, key) = try decode(bytes, etcdKey: etcdKey, sealer: sealer)
        if deferred, let bundle = CertificateLoader.deferredBundle(chainPEM: chain, keyPEM: key, source: "cluster:\(etcdKey)") {
            return (record, bundle)
        }
        do {
            return (record, try CertificateLoader.bundle(chainPEM: chain, keyPEM: key, source: "cluster:\(etcdKey)"))
        } catch {
            throw ClusterError(.badRecord, error.reason)
        }
    }

    private static func describe(_ error: Error) -> String {
        switch error {
        case DecodingError.keyNotFound(let key, _): return "no \(key.stringValue)"
        case DecodingError.typeMismatch(_, let c), DecodingError.valueNotFound(_, let c):
            return "bad \(c.codingPath.map(\.stringValue).joined(separator: "."))"
        case DecodingError.dataCorrupted(let c): return c.codingPath.isEmpty ? "not JSON" : "bad \(c.codingPath.map(\.stringValue).joined(separator: "."))"
        default: return "\(error)"
        }
    }
}
