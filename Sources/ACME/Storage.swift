import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// What ACME keeps between runs, per CA. A protocol so that a cluster build can keep it in etcd
/// (the local-file implementation is `FileStorage`).
///
/// Contract, for every implementation:
/// - **Not found is not an error**: `load*` return nil when nothing is stored; they throw only when
///   the store itself failed (I/O, permissions, a corrupt record).
/// - **Atomic writes**: after `save*` returns, a reader sees the whole new record or (had the save
///   failed) the whole old one; never a mix. The certificate's key is written before its chain,
///   so a reader that sees a new chain can also see its key.
/// - **Secrets**: account and certificate private keys must not be readable by other users (files
///   0600; a shared store must encrypt them before they leave the process).
/// - **Concurrency**: methods may be called from any thread. `withLock` serialises issuance of one
///   name (and account creation) across threads — and, for shared stores, across nodes. Callers
///   check storage again after taking the lock (certmagic's check, lock, check again). A lock held
///   by a dead holder must expire (shared stores: a lease); `FileStorage` uses flock(2), which the
///   kernel drops with the process.
/// - **Keys**: `ca` is an opaque identifier of the directory URL (see `FileStorage.caKey`); `name`
///   is the certificate's first (primary) DNS name, lower-cased.
public protocol ACMEStorage: Sendable {
    func loadAccount(ca: String) throws -> StoredAccount?
    func saveAccount(_ account: StoredAccount, ca: String) throws
    func loadCertificate(name: String) throws -> StoredCertificate?
    func saveCertificate(_ certificate: StoredCertificate) throws
    /// HTTP-01 answers, written before the challenge is presented so that any node of a cluster
    /// can answer the CA (certmagic's distributed solver). Local-only setups may ignore them.
    func saveChallenge(token: String, keyAuthorization: String) throws
    func deleteChallenge(token: String) throws
    func loadChallenge(token: String) throws -> String?
    /// TLS-ALPN-01 answers by name, likewise (each node builds the challenge certificate itself).
    func saveALPNChallenge(name: String, keyAuthorization: String) throws
    func deleteALPNChallenge(name: String) throws
    /// The renewal time every node uses for `serial` (and the CA's `window` for it): the first
    /// proposal stored wins, so a fleet does not draw one time per node. Local storage: `proposed`.
    func agreeRenewal(name: String, serial: String, window: RenewalWindow?, proposed: Date) throws -> Date
    /// The CA's last renewalInfo answer for `serial`, kept for the fleet (nil: none kept).
    func loadRenewalInfo(name: String, serial: String) throws -> SharedRenewalInfo?
    func saveRenewalInfo(_ info: SharedRenewalInfo, name: String, serial: String) throws
    /// Runs `body` holding the lock called `name`.
    func withLock<T>(_ name: String, _ body: () throws -> T) throws -> T
    /// Names issued on demand (a handshake asked for them), so that a restart, and every node of
    /// a fleet, keeps managing them. Saving a name twice keeps it once.
    func loadOnDemandNames() throws -> [String]
    func saveOnDemandName(_ name: String) throws
    /// Claims the certificate event `id` for delivery: true for exactly one caller among all that
    /// share the storage, as long as the claim is kept (at least `keepFor` seconds, then it may
    /// expire), so a fleet delivers each event once, not once per node; false when it was
    /// claimed already. Local storage: true (this process is the only one to deliver).
    func claimEvent(id: String, keepFor: Double) throws -> Bool
}

extension ACMEStorage {
    /// Local storage answers TLS-ALPN-01 from this process only.
    public func saveALPNChallenge(name: String, keyAuthorization: String) throws {}
    public func deleteALPNChallenge(name: String) throws {}
    public func agreeRenewal(name: String, serial: String, window: RenewalWindow?, proposed: Date) throws -> Date { proposed }
    /// Local storage: every look asks the CA.
    public func loadRenewalInfo(name: String, serial: String) throws -> SharedRenewalInfo? { nil }
    public func saveRenewalInfo(_ info: SharedRenewalInfo, name: String, serial: String) throws {}
    /// A storage that keeps none: names issued on demand are managed only while the process runs.
    public func loadOnDemandNames() throws -> [String] { [] }
    public func saveOnDemandName(_ name: String) throws {}
    public func claimEvent(id: String, keepFor: Double) throws -> Bool { true }
}

/// A renewalInfo answer (RFC 9773) as the fleet keeps it: the window, the CA's Retry-After and when it was asked.
public struct SharedRenewalInfo: Codable, Sendable, Equatable {
    public var window: RenewalWindow
    public var retryAfter: Double?
    public var fetched: Date
    public init(window: RenewalWindow, retryAfter: Double?, fetched: Date) { self.window = window; self.retryAfter = retryAfter; self.fetched = fetched }
}

/// An account: its P-256 key (PEM) and, once registered, its URL (the JWS kid).
public struct StoredAccount: Sendable, Equatable {
    public var keyPEM: [UInt8]
    /// nil when the key was saved but registration has not completed (crash or CA failure in between).
    public var url: String?
    public init(keyPEM: [UInt8], url: String?) { self.keyPEM = keyPEM; self.url = url }
}

/// An issued certificate: the chain (leaf first) and its key, PEM, as `CertificateLoader.bundle` takes them.
public struct StoredCertificate: Sendable, Equatable {
    public var names: [String]
    public var chainPEM: [UInt8]
    public var keyPEM: [UInt8]
    public init(names: [String], chainPEM: [UInt8], keyPEM: [UInt8]) { self.names = names; self.chainPEM = chainPEM; self.keyPEM = keyPEM }
    public var primaryName: String { names.first ?? "" }
}

/// Files under one root directory:
///
///     accounts/<ca>/account.key (0600), accounts/<ca>/account.url
///     certificates/<name>.crt (chain), certificates/<name>.key (0600)
///     challenges/<token>
///     locks/<lock name>.lock
///     on-demand/<name>              (empty: the name was issued on demand)
///
/// `certificates/` follows the `tls.certificate_dir` layout (NAME.crt + NAME.key), so the proxy's
/// directory watcher can serve what ACME writes there. A wildcard's "*" is stored as "_".
public struct FileStorage: ACMEStorage {
    public let root: String

    public init(root: String) { self.root = root }

    /// A file-name-safe identifier for a directory URL: host, port and path (certmagic does the same).
    public static func caKey(directoryURL: String) -> String {
        let parts = URLComponents(string: directoryURL)
        let raw = "\(parts?.host ?? "ca")-\(parts?.port ?? 443)\(parts?.path ?? "")"
        return String(raw.map { $0.isLetter || $0.isNumber || $0 == "." || $0 == "-" ? $0 : "_" })
    }

    public var certificateDirectory: String { root + "/certificates" }

    public func loadAccount(ca: String) throws -> StoredAccount? {
        let dir = "\(root)/accounts/\(ca)"
        guard let key = try read("\(dir)/account.key") else { return nil }
        let url = try read("\(dir)/account.url").map { String(decoding: $0, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines) }
        return StoredAccount(keyPEM: key, url: url?.isEmpty == false ? url : nil)
    }

    public func saveAccount(_ account: StoredAccount, ca: String) throws {
        let dir = "\(root)/accounts/\(ca)"
        try write(account.keyPEM, to: "\(dir)/account.key", mode: 0o600)
        if let url = account.url { try write(Array(url.utf8), to: "\(dir)/account.url", mode: 0o644) }
    }

    public func loadCertificate(name: String) throws -> StoredCertificate? {
        let base = "\(certificateDirectory)/\(Self.fileName(name))"
        guard let chain = try read(base + ".crt"), let key = try read(base + ".key") else { return nil }
        return StoredCertificate(names: [name.lowercased()], chainPEM: chain, keyPEM: key)
    }

    public func saveCertificate(_ certificate: StoredCertificate) throws {
        let base = "\(certificateDirectory)/\(Self.fileName(certificate.primaryName))"
        try write(certificate.keyPEM, to: base + ".key", mode: 0o600)  // key first: see the contract
        try write(certificate.chainPEM, to: base + ".crt", mode: 0o644)
    }

    public func saveChallenge(token: String, keyAuthorization: String) throws {
        try write(Array(keyAuthorization.utf8), to: "\(root)/challenges/\(Self.fileName(token))", mode: 0o644)
    }

    public func deleteChallenge(token: String) throws {
        let path = "\(root)/challenges/\(Self.fileName(token))"
        if unlink(path) != 0 && errno != ENOENT { throw storageError("unlink", path) }
    }

    public func loadChallenge(token: String) throws -> String? {
        try read("\(root)/challenges/\(Self.fileName(token))").map { String(decoding: $0, as: UTF8.self) }
    }

    public func loadOnDemandNames() throws -> [String] {
        let dir = "\(root)/on-demand"
        guard FileManager.default.fileExists(atPath: dir) else { return [] }
        do { return try FileManager.default.contentsOfDirectory(atPath: dir).filter { !$0.contains(".tmp-") }.sorted() } catch {
            throw ACMEError(.storage, "list \(dir): \(error)")
        }
    }

    public func saveOnDemandName(_ name: String) throws {
        try write([], to: "\(root)/on-demand/\(Self.fileName(name))", mode: 0o644)
    }

    public func withLock<T>(_ name: String, _ body: () throws -> T) throws -> T {
        let path = "\(root)/locks/\(Self.fileName(name)).lock"
        try makeDirectory(for: path)
        let fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw storageError("open", path) }
        defer { close(fd) }  // closing releases the flock
        while flock(fd, LOCK_EX) != 0 {
            guard errno == EINTR else { throw storageError("flock", path) }
        }
        return try body()
    }

    /// "*.example.com" → "_.example.com"; anything else outside [A-Za-z0-9.-_] becomes "_" too.
    static func fileName(_ name: String) -> String {
        let mapped = String(name.lowercased().map { $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "." || $0 == "-" || $0 == "_") ? $0 : "_" })
        return mapped.hasPrefix(".") ? "_" + mapped.dropFirst() : mapped  // never "." or ".." or hidden
    }

    private func read(_ path: String) throws -> [UInt8]? {
        guard FileManager.default.fileExists(atPath: path) else { return nil }
        guard let data = FileManager.default.contents(atPath: path) else { throw storageError("read", path) }
        return [UInt8](data)
    }

    /// Write to a temporary file with the final mode from the start, fsync, then rename over the
    /// target: readers see old or new, and a key is never briefly world-readable.
    private func write(_ bytes: [UInt8], to path: String, mode: mode_t) throws {
        try makeDirectory(for: path)
        let tmp = "\(path).tmp-\(getpid())-\(UInt32.random(in: 0 ... .max))"
        let fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode)
        guard fd >= 0 else { throw storageError("open", tmp) }
        var ok = fchmod(fd, mode) == 0  // the umask may have narrowed or (for 0600) not mattered; be exact
        var offset = 0
        while ok && offset < bytes.count {
            let n = bytes.withUnsafeBytes { Glibc.write(fd, $0.baseAddress! + offset, $0.count - offset) }
            if n < 0 && errno == EINTR { continue }
            if n <= 0 { ok = false } else { offset += n }
        }
        ok = ok && fsync(fd) == 0
        close(fd)
        guard ok, rename(tmp, path) == 0 else {
            let error = storageError("write", path)
            unlink(tmp)
            throw error
        }
    }

    private func makeDirectory(for path: String) throws {
        let dir = (path as NSString).deletingLastPathComponent
        do {
            try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        } catch { throw ACMEError(.storage, "mkdir \(dir): \(error)") }
    }

    private func storageError(_ call: String, _ path: String) -> ACMEError {
        ACMEError(.storage, "\(call) \(path): \(String(cString: strerror(errno)))")
    }
}
