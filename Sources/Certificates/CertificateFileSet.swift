import COpenSSL
import Dispatch
import Foundation
import Glibc
import TLS

/// What identifies a file's version without reading it: nginx's inode + mtime, plus size and device.
public struct FileStamp: Equatable, Sendable {
    public var device: UInt64
    public var inode: UInt64
    public var size: Int64
    public var mtimeSeconds: Int
    public var mtimeNanoseconds: Int

    public init(device: UInt64, inode: UInt64, size: Int64, mtimeSeconds: Int, mtimeNanoseconds: Int) {
        self.device = device; self.inode = inode; self.size = size
        self.mtimeSeconds = mtimeSeconds; self.mtimeNanoseconds = mtimeNanoseconds
    }

    public static func of(_ path: String) -> FileStamp? {
        var st = stat()
        guard stat(path, &st) == 0 else { return nil }
        return FileStamp(st)
    }

    /// The stamp of a regular file from its stat(2) or fstat(2); nil for anything else.
    init?(_ st: stat) {
        guard (st.st_mode & S_IFMT) == S_IFREG else { return nil }
        self.init(device: UInt64(st.st_dev), inode: UInt64(st.st_ino), size: Int64(st.st_size),
                  mtimeSeconds: st.st_mtim.tv_sec, mtimeNanoseconds: st.st_mtim.tv_nsec)
    }
}

/// How a certificate's files changed since they were last loaded. Pure, so it is unit-tested.
public enum FileChange: Equatable, Sendable {
    /// Gone (or unreadable).
    case missing
    /// Same stamps: nothing was read.
    case unchanged
    /// New stamps, same bytes (touched, or rewritten identically): keep the loaded certificate.
    case sameContent
    /// New bytes: parse, validate, build.
    case changed

    /// - Parameters:
    ///   - known: stamps and digest of the version loaded last (nil: never seen).
    ///   - stamps: the files' stamps now (nil: one is missing).
    ///   - digest: reads the files and hashes them; only called when the stamps differ.
    public static func decide(known: (stamps: [FileStamp], digest: [UInt8])?, stamps: [FileStamp]?,
                              digest: () -> [UInt8]?) -> FileChange {
        guard let stamps else { return .missing }
        guard let known else { return .changed }
        if known.stamps == stamps { return .unchanged }
        guard let now = digest() else { return .missing }
        return now == known.digest ? .sameContent : .changed
    }
}

/// Certificate files (the configured directory and `tls.certificates`) with what was last loaded
/// from each, so a reload reads and rebuilds only what changed. Owned by the control queue.
public final class CertificateFileSet {
    /// One certificate on disk; `key == cert` for a `NAME.pem` holding chain + key.
    public struct Pair: Sendable, Hashable {
        public let id: String
        public let cert: String
        public let key: String
        public init(id: String, cert: String, key: String) { self.id = id; self.cert = cert; self.key = key }
        var paths: [String] { cert == key ? [cert] : [cert, key] }
    }

    public struct Result {
        public var upserts: [(id: String, bundle: CertificateBundle)] = []
        public var removals: [String] = []
        public var refused: [CertificateError] = []
        public var unchanged = 0
    }

    struct Known {
        var stamps: [FileStamp]
        var digest: [UInt8]
        /// The last version that validated; it keeps serving while a newer one is refused.
        var bundle: CertificateBundle?
    }

    private var known: [String: Known] = [:]

    public init() {}

    public var ids: [String] { Array(known.keys) }

    /// The pairs in `directory`: `NAME.crt` + `NAME.key`, `NAME.pem`. With `bases`, only those
    /// base names (what inotify reported); ids of those bases that have no file any more come back
    /// in `gone`.
    public static func directoryPairs(_ directory: String, bases: Set<String>? = nil) -> (pairs: [Pair], gone: [String]) {
        var pairs: [Pair] = []
        var gone: [String] = []
        let names: [String]
        if let bases {
            names = bases.flatMap { ["\($0).crt", "\($0).pem"] }
        } else {
            names = ((try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? []).sorted()
        }
        for entry in names {
            let path = directory.hasSuffix("/") ? directory + entry : directory + "/" + entry
            let id = "dir:" + path
            if entry.hasSuffix(".crt") {
                if bases != nil && FileStamp.of(path) == nil { gone.append(id); continue }
                pairs.append(Pair(id: id, cert: path, key: String(path.dropLast(4)) + ".key"))
            } else if entry.hasSuffix(".pem") {
                if bases != nil && FileStamp.of(path) == nil { gone.append(id); continue }
                pairs.append(Pair(id: id, cert: path, key: path))
            }
        }
        return (pairs, gone)
    }

    /// The base name an inotify event is about ("a.test" for a.test.crt / .key / .pem); nil for
    /// files that are not certificates (editor temporaries, our own `.tmp` files).
    public static func baseName(ofEvent name: String) -> String? {
        for suffix in [".crt", ".key", ".pem"] where name.hasSuffix(suffix) && name.count > suffix.count && !name.hasPrefix(".") {
            return String(name.dropLast(suffix.count))
        }
        return nil
    }

    /// Looks at `pairs` (in parallel when there are many), loads what changed, and forgets `gone`.
    /// With `complete`, every known id of `scope` that is not in `pairs` is gone too. With
    /// `deferBuild` (start-up only), certificates the `CertificateIndex` reads come back as
    /// deferred bundles; OpenSSL builds and checks them later (`CertificateBundle.build()`).
    public func refresh(_ pairs: [Pair], gone: [String] = [], complete scope: ((String) -> Bool)? = nil,
                        deferBuild: Bool = false) -> Result {
        let outcomes = Self.examine(pairs, known: known, deferBuild: deferBuild)
        var result = Result()
        for (pair, outcome) in zip(pairs, outcomes) {
            switch outcome {
            case .missing(let reason):
                result.refused.append(CertificateError(source: pair.cert, reason: reason))
            case .unchanged:
                result.unchanged += 1
            case .sameContent(let stamps):
                known[pair.id]?.stamps = stamps
                result.unchanged += 1
            case .loaded(let stamps, let digest, let bundle):
                known[pair.id] = Known(stamps: stamps, digest: digest, bundle: bundle)
                result.upserts.append((pair.id, bundle))
            case .refused(let stamps, let digest, let error):
                // Remember the refused version so an unchanged bad file is not re-read (and
                // re-reported) on every reload; the previous good bundle keeps serving.
                known[pair.id, default: Known(stamps: stamps, digest: digest, bundle: nil)].stamps = stamps
                known[pair.id]?.digest = digest
                result.refused.append(error)
            }
        }
        var goneIDs = gone
        if let scope {
            let present = Set(pairs.map(\.id))
            goneIDs += known.keys.filter { scope($0) && !present.contains($0) }
        }
        for id in goneIDs where known.removeValue(forKey: id) != nil { result.removals.append(id) }
        return result
    }

    /// Records a version written by this process (an admin API upload persisted to the
    /// directory), so the watcher's event for it finds nothing new.
    public func adopt(_ pair: Pair, bundle: CertificateBundle) {
        guard let stamps = Self.stamps(pair), let digest = Self.read(pair).map({ Self.digest($0.chain + $0.key) }) else { return }
        known[pair.id] = Known(stamps: stamps, digest: digest, bundle: bundle)
    }

    public func forget(_ id: String) { known[id] = nil }

    /// A deferred bundle OpenSSL refused after start-up: its files stay known (an unchanged bad
    /// file is not read again), with no version that validated.
    public func refusedAfterLoad(_ id: String) { known[id]?.bundle = nil }

    // MARK: Examining files

    enum Outcome {
        case missing(String)
        case unchanged
        case sameContent([FileStamp])
        case loaded([FileStamp], [UInt8], CertificateBundle)
        case refused([FileStamp], [UInt8], CertificateError)
    }

    private struct Slots: @unchecked Sendable {  // each index is written by exactly one iteration
        let buffer: UnsafeMutableBufferPointer<Outcome?>
    }

    static func examine(_ pairs: [Pair], known: [String: Known], deferBuild: Bool = false) -> [Outcome] {
        let slots = Slots(buffer: .allocate(capacity: pairs.count))
        slots.buffer.initialize(repeating: nil)
        defer { slots.buffer.deinitialize(); slots.buffer.deallocate() }
        let work = { @Sendable (i: Int) in slots.buffer[i] = examine(pairs[i], known: known[pairs[i].id], deferBuild: deferBuild) }
        if pairs.count > 32 {
            // Parsing and checking costs ~0.3 ms a certificate with OpenSSL 3.0: use every core.
            let chunks = ProcessInfo.processInfo.activeProcessorCount * 4
            let per = (pairs.count + chunks - 1) / chunks
            DispatchQueue.concurrentPerform(iterations: chunks) { c in
                for i in (c * per)..<min(pairs.count, (c + 1) * per) { work(i) }
            }
        } else {
            for i in pairs.indices { work(i) }
        }
        return slots.buffer.map { $0! }
    }

    static func examine(_ pair: Pair, known: Known?, deferBuild: Bool = false) -> Outcome {
        // A pair never seen is read at once, with the stamps of the files it opened: no stat(2)
        // first (at 100,000 certificates, path lookups were most of the kernel's share).
        var contents = known == nil ? read(pair) : nil
        let stamps = contents?.stamps ?? Self.stamps(pair)
        var digest: [UInt8]?
        let change = FileChange.decide(known: known.map { ($0.stamps, $0.digest) }, stamps: stamps) {
            contents = read(pair)
            digest = contents.map { Self.digest($0.chain + $0.key) }
            return digest
        }
        switch change {
        case .missing:
            let missing = pair.paths.first { FileStamp.of($0) == nil } ?? pair.cert
            return .missing(missing == pair.cert ? "cannot read the file" : "no matching key file \(missing)")
        case .unchanged:
            return .unchanged
        case .sameContent:
            return .sameContent(stamps!)
        case .changed:
            if digest == nil {
                if contents == nil { contents = read(pair) }
                digest = contents.map { Self.digest($0.chain + $0.key) }
            }
            guard let (chain, key, _) = contents, let digest else { return .missing("cannot read the file") }
            if deferBuild, let bundle = CertificateLoader.deferredBundle(chainPEM: chain, keyPEM: key, source: pair.cert) {
                return .loaded(stamps!, digest, bundle)
            }
            do {
                let bundle = try CertificateLoader.bundle(chainPEM: chain, keyPEM: key, source: pair.cert)
                return .loaded(stamps!, digest, bundle)
            } catch {
                return .refused(stamps!, digest, error)
            }
        }
    }

    static func stamps(_ pair: Pair) -> [FileStamp]? {
        var out: [FileStamp] = []
        for p in pair.paths {
            guard let s = FileStamp.of(p) else { return nil }
            out.append(s)
        }
        return out
    }

    /// Both files' bytes, and their stamps as opened.
    static func read(_ pair: Pair) -> (chain: [UInt8], key: [UInt8], stamps: [FileStamp])? {
        guard let (c, cs) = readFile(pair.cert) else { return nil }
        if pair.key == pair.cert { return (c, c, [cs]) }
        guard let (k, ks) = readFile(pair.key) else { return nil }
        return (c, k, [cs, ks])
    }

    /// A whole certificate or key file (open, fstat, read) and its stamp. Foundation's reader
    /// (and the copy out of its Data) cost a third of the start-up index at 100,000 certificates.
    static func readFile(_ path: String) -> ([UInt8], FileStamp)? {
        let fd = open(path, O_RDONLY | O_NONBLOCK | O_NOCTTY | O_CLOEXEC)  // a FIFO named *.crt must not block
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        var st = stat()
        guard fstat(fd, &st) == 0, let stamp = FileStamp(st), st.st_size < 64 << 20 else { return nil }
        var bytes = [UInt8](repeating: 0, count: Int(st.st_size) + 1)  // one more: a file that grew is read again
        var count = 0
        while true {
            let n = bytes.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress! + count, $0.count - count) }
            if n < 0 && errno == EINTR { continue }
            guard n >= 0 else { return nil }
            if n == 0 { break }
            count += n
            if count == bytes.count { bytes += [UInt8](repeating: 0, count: bytes.count) }
        }
        bytes.removeSubrange(count...)
        return (bytes, stamp)
    }

    /// SHA-256: a content hash that tells a rewrite with the same bytes from a new certificate.
    public static func digest(_ bytes: [UInt8]) -> [UInt8] {
        var md = [UInt8](repeating: 0, count: 32)
        var len: UInt32 = 0
        _ = bytes.withUnsafeBytes { EVP_Digest($0.baseAddress, $0.count, &md, &len, EVP_sha256(), nil) }
        return md
    }
}
