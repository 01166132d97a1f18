import Foundation
import Glibc
import Logs
import Metrics

/// Why an upload or a deletion did not happen; `status` is the HTTP answer the admin API gives.
public struct UploadError: Error, CustomStringConvertible {
    public let status: Int
    public let reason: String
    public init(_ status: Int, _ reason: String) { self.status = status; self.reason = reason }
    public var description: String { reason }
}

/// Certificates uploaded through the admin API (`PUT /certificates/NAME`, `DELETE …`). With a
/// certificate directory they are persisted there (key file mode 0600) and become directory
/// certificates; without one they live in memory as "api:NAME". Confined to the control queue,
/// like the `FileSource` whose directory it writes.
public final class UploadSource: @unchecked Sendable {  // touched on the control queue only
    private let sink: CertificateTransaction
    private let files: FileSource

    public init(sink: CertificateTransaction, files: FileSource) { self.sink = sink; self.files = files }

    /// Validates and builds `pem` (chain, leaf first, + private key), persists it to `directory`
    /// when there is one, and installs it. Returns the catalog id it serves under.
    public func put(_ name: String, pem: [UInt8], directory: String?) -> Result<String, UploadError> {
        let bundle: CertificateBundle
        do {
            bundle = try CertificateLoader.bundle(chainPEM: pem, keyPEM: pem, source: "api:\(name)")
        } catch {
            Log.error("certificate refused: \(error)")
            Metrics.shared.certificateUpdate(source: "api", applied: 0, refused: 1)
            return .failure(UploadError(422, "\(error.reason); the previous certificate for this name keeps serving"))
        }
        var id = "api:\(name)"
        var removals: [String] = []
        if let dir = directory {
            do {
                let pair = try CertificateDirectory.persist(name, pem: pem, in: dir)
                files.files.adopt(pair, bundle: bundle)
                if sink.read({ $0.items[id] != nil }) { removals.append(id) }
                id = pair.id
            } catch {
                return .failure(UploadError(500, "\(error); nothing changed"))
            }
        }
        let report = sink.submit(CertificateChange(upserts: [(id: id, bundle: bundle, origin: "api")], removals: removals, source: "api"))
        Log.info("certificate \(name) (\(bundle.names.joined(separator: ","))) installed through the admin API")
        guard report.configError == nil, sink.read({ $0.items[id] != nil }) else { return .failure(UploadError(500, report.configError ?? "not applied")) }
        return .success(id)
    }

    /// Removes the upload or directory certificate called `name` (its files too).
    public func delete(_ name: String, directory: String?) -> Result<Void, UploadError> {
        var ids = ["api:\(name)"]
        var paths: [String] = []
        if let dir = directory {
            let base = (dir as NSString).appendingPathComponent(name)
            ids += ["dir:\(base).crt", "dir:\(base).pem"]
            paths = ["\(base).crt", "\(base).key", "\(base).pem"]
        }
        let (present, left) = sink.read { catalog in
            let present = ids.filter { catalog.items[$0] != nil }
            return (present, catalog.countAfter(upserts: [], removals: present))
        }
        guard !present.isEmpty else { return .failure(UploadError(404, "no certificate named \(name) from the directory or the API")) }
        guard left > 0 else { return .failure(UploadError(409, "\(name) is the last certificate; install another one first")) }
        for p in paths { unlink(p) }
        for id in present { files.files.forget(id) }
        sink.submit(CertificateChange(removals: present, source: "api"))
        Log.info("certificate \(name) deleted through the admin API")
        return .success(())
    }
}

/// Writing certificates into a `tls.certificate_dir` the way the directory source reads them.
public enum CertificateDirectory {
    /// Writes NAME.crt + NAME.key when the directory already holds that pair, NAME.pem otherwise;
    /// each through a hidden temporary file and rename(2), so the watcher never sees half a file.
    public static func persist(_ name: String, pem: [UInt8], in dir: String) throws(UploadError) -> CertificateFileSet.Pair {
        let base = (dir as NSString).appendingPathComponent(name)
        if FileManager.default.fileExists(atPath: base + ".crt") {
            let (certs, keys) = splitPEM(pem)
            try writeAtomically(keys, to: base + ".key", mode: 0o600)
            try writeAtomically(certs, to: base + ".crt", mode: 0o644)
            return CertificateFileSet.Pair(id: "dir:\(base).crt", cert: base + ".crt", key: base + ".key")
        }
        try writeAtomically(pem, to: base + ".pem", mode: 0o600)
        return CertificateFileSet.Pair(id: "dir:\(base).pem", cert: base + ".pem", key: base + ".pem")
    }

    public static func writeAtomically(_ bytes: [UInt8], to path: String, mode: mode_t) throws(UploadError) {
        let dir = (path as NSString).deletingLastPathComponent
        let tmp = (dir as NSString).appendingPathComponent(".\((path as NSString).lastPathComponent).tmp")
        let fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode)
        guard fd >= 0 else { throw UploadError(500, "cannot write \(tmp): \(String(cString: strerror(errno))) (check the directory's permissions)") }
        fchmod(fd, mode)
        let ok = bytes.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) } == bytes.count && fsync(fd) == 0
        close(fd)
        guard ok, rename(tmp, path) == 0 else {
            unlink(tmp)
            throw UploadError(500, "cannot write \(path): \(String(cString: strerror(errno)))")
        }
    }

    /// CERTIFICATE blocks (in order) apart from the rest (the key).
    public static func splitPEM(_ pem: [UInt8]) -> (certificates: [UInt8], key: [UInt8]) {
        let text = String(decoding: pem, as: UTF8.self)
        var certs = "", key = ""
        for block in text.components(separatedBy: "-----BEGIN ").dropFirst() {
            guard let end = block.range(of: "-----END "), let close = block[end.upperBound...].range(of: "-----") else { continue }
            let whole = "-----BEGIN " + block[..<close.upperBound] + "\n"
            if block.hasPrefix("CERTIFICATE-----") { certs += whole } else { key += whole }
        }
        return (Array(certs.utf8), Array(key.utf8))
    }
}
