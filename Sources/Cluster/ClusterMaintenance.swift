import ACME
import Certificates
import Foundation

/// Operator commands on the shared store: moving a single node's state into it, and re-sealing.
public struct ClusterMaintenance {
    let store: SharedStore
    let layout: KeyLayout
    let sealer: Sealer
    let node: String

    /// Records per etcd transaction when importing (etcd allows 128 operations per txn by default).
    static let batch = 64

    public init(store: SharedStore, layout: KeyLayout, sealer: Sealer, node: String) {
        self.store = store; self.layout = layout; self.sealer = sealer; self.node = node
    }

    public struct ImportReport: Sendable {
        public var certificates: [String] = []
        public var skipped: [String] = []
        public var refused: [String] = []
        public var accounts: [String] = []
    }

    /// Pushes a single node's ACME storage (account and certificates) and certificate files into
    /// the store, so the fleet serves them and renews with the same account, without re-issuing.
    /// A name already in the store keeps its record unless the imported one expires later; an
    /// account already there is kept.
    public func importNode(acmeStorage: String?, directoryURL: String?, certificateFiles: [(cert: String, key: String)]) throws(ClusterError) -> ImportReport {
        var report = ImportReport()
        var pairs = certificateFiles
        if let root = acmeStorage {
            let storage = FileStorage(root: root)
            if let directoryURL, let account = try? storage.loadAccount(ca: FileStorage.caKey(directoryURL: directoryURL)), account.url != nil {
                let ca = FileStorage.caKey(directoryURL: directoryURL)
                let key = layout.account(ca: ca)
                if try store.create(key, try AccountRecord.encode(account, etcdKey: key, sealer: sealer), lease: nil).created {
                    report.accounts.append(ca)
                }
            }
            let dir = storage.certificateDirectory
            for file in (try? FileManager.default.contentsOfDirectory(atPath: dir)) ?? [] where file.hasSuffix(".crt") {
                let base = dir + "/" + file.dropLast(4)
                pairs.append((cert: base + ".crt", key: base + ".key"))
            }
        }
        // What the store holds now, read once; then the writes in transactions of `batch`, each
        // only over what was judged older (or nothing): a renewal stored meanwhile stays.
        let stored = Dictionary(try store.list(prefix: layout.certificates).values.map { ($0.key, $0) }, uniquingKeysWith: { a, _ in a })
        var pending: [(name: String, write: ConditionalWrite)] = []
        for (cert, key) in pairs {
            guard let chain = FileManager.default.contents(atPath: cert), let keyPEM = FileManager.default.contents(atPath: key) else {
                report.refused.append("\(cert): cannot read it or its key \(key)")
                continue
            }
            let bundle: CertificateBundle
            do { bundle = try CertificateLoader.bundle(chainPEM: [UInt8](chain), keyPEM: [UInt8](keyPEM), source: "import:\(cert)") } catch {
                report.refused.append("\(cert): \(error.reason)")
                continue
            }
            let name = bundle.names[0].lowercased()
            let etcdKey = layout.certificate(name)
            let existing = stored[etcdKey]
            if let existing, let record = try? CertificateRecord.decode(existing.value, etcdKey: etcdKey, sealer: sealer).record,
               record.notAfter >= bundle.notAfter {
                report.skipped.append(name)
                continue
            }
            let bytes = try CertificateRecord.encode(bundle: bundle, chainPEM: [UInt8](chain), keyPEM: [UInt8](keyPEM), etcdKey: etcdKey,
                                                     sealer: sealer, source: "import", node: node)
            pending.append((name, ConditionalWrite(key: etcdKey, value: bytes, ifModRevision: existing?.modRevision ?? 0)))
        }
        var start = 0
        while start < pending.count {
            let chunk = pending[start..<min(start + Self.batch, pending.count)]
            start += chunk.count
            if try store.putAll(chunk.map(\.write)) {
                report.certificates += chunk.map(\.name)
                continue
            }
            // Something in this batch changed meanwhile: one by one, so the rest still goes in.
            for (name, write) in chunk {
                if try store.putAll([write]) { report.certificates.append(name) } else { report.skipped.append(name) }
            }
        }
        return report
    }

    /// Opens every sealed record under the prefix and seals it again under the first key, each
    /// write conditional on the record being unchanged since it was read. Afterwards the keys
    /// after the first can be removed from the configuration. Returns (re-sealed, already current).
    public func reseal() throws(ClusterError) -> (resealed: Int, current: Int) {
        var resealed = 0, current = 0
        for value in try store.list(prefix: layout.prefix).values {
            guard let rewritten = try resealedBytes(value) else { continue }
            if rewritten.isEmpty { current += 1; continue }
            guard try store.put(value.key, rewritten, ifModRevision: value.modRevision) else {
                throw ClusterError(.store, "\(value.key) changed while it was being re-sealed; run the command again")
            }
            resealed += 1
        }
        return (resealed, current)
    }

    /// nil: not a sealed record; []: sealed under the first key already; else the new bytes.
    func resealedBytes(_ value: StoredValue) throws(ClusterError) -> [UInt8]? {
        guard var object = (try? JSONSerialization.jsonObject(with: Data(value.value))) as? [String: Any],
              let text = object["sealed_key"] as? String, let sealed = Data(base64Encoded: text) else { return nil }
        if sealer.isSealedWithFirstKey([UInt8](sealed)) { return [] }
        let plain = try sealer.openRecord([UInt8](sealed), context: value.key)
        object["sealed_key"] = Data(try sealer.sealRecord(plain, context: value.key)).base64EncodedString()
        guard let data = try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys]) else {
            throw ClusterError(.badRecord, "\(value.key): cannot encode the re-sealed record")
        }
        return [UInt8](data)
    }
}
