import Foundation
import Locking
import Synchronization
import TLS

/// One certificate ready to serve. Built and validated when it arrives, except at start-up,
/// where a certificate the `CertificateIndex` can read is served from that index at once and its
/// OpenSSL objects are built (with every check of `CertificateLoader.bundle`) on first use or by
/// the background warm-up, whichever comes first.
public struct CertificateBundle: Sendable {
    public let names: [String]
    public let keyType: KeyType
    private let material: Material
    /// Where it came from, for logs and the admin API ("file:/path", "self-signed", …).
    public let source: String
    /// Accepted, but worth telling the operator (not yet valid, expiring soon).
    public var warnings: [String] = []
    /// The leaf's validity and serial, known without building anything (metrics, admin API).
    public let notBefore: Date
    public let notAfter: Date
    public let serialHex: String

    private enum Material: Sendable {
        case built(CertifiedKey)
        case deferred(DeferredBuild)
    }

    public init(names: [String], keyType: KeyType, certified: CertifiedKey, source: String) {
        self.names = names; self.keyType = keyType; self.source = source
        material = .built(certified)
        notBefore = certified.leaf.notBefore
        notAfter = certified.leaf.notAfter
        serialHex = certified.leaf.serialHex
    }

    /// Served from `index` until `build()` (or a handshake) builds it from the PEM texts.
    init(index: CertificateIndex, chainPEM: [UInt8], keyPEM: [UInt8], source: String) {
        names = index.names; keyType = .ecdsa; self.source = source
        material = .deferred(DeferredBuild(chainPEM: chainPEM, keyPEM: keyPEM, source: source))
        notBefore = index.notBefore
        notAfter = index.notAfter
        serialHex = index.serialHex
    }

    /// The chain and key to install; built on first use for a deferred bundle (once: concurrent
    /// callers wait for that build). nil when OpenSSL refused the certificate then.
    public var certified: CertifiedKey? {
        switch material {
        case .built(let certified): return certified
        case .deferred(let deferred): return deferred.certified()
        }
    }

    public var leaf: X509Certificate? { certified?.leaf }

    /// Served from its start-up index (built by OpenSSL since, or not).
    public var isDeferred: Bool {
        if case .deferred = material { return true }
        return false
    }

    /// Built from its index and not yet by OpenSSL.
    public var isPending: Bool {
        if case .deferred(let deferred) = material { return deferred.isPending }
        return false
    }

    /// For a deferred bundle, the bundle OpenSSL builds from the same files (its names may differ
    /// from the index's only if the index read the certificate wrongly), or why it was refused;
    /// nil for a bundle built when it arrived.
    public func build() -> Result<CertificateBundle, CertificateError>? {
        guard case .deferred(let deferred) = material else { return nil }
        return deferred.build()
    }
}

/// The PEM texts of a bundle served from its index, until OpenSSL has built them; then the
/// outcome, kept. One build per bundle: it runs under the lock, so a handshake that needs the
/// bundle while the warm-up builds it waits for that build instead of doing its own.
final class DeferredBuild: Sendable {
    private enum State: Sendable {
        case pending(chainPEM: [UInt8], keyPEM: [UInt8])
        case done(Result<CertificateBundle, CertificateError>)
    }

    private let state: Locked<State>
    private let source: String
    /// Once built: read by every handshake without the lock. Unretained: `state` holds the key
    /// from then on for this object's life (`.done` never changes).
    private let builtKey = Atomic<Unmanaged<CertifiedKey>?>(nil)

    init(chainPEM: [UInt8], keyPEM: [UInt8], source: String) {
        state = Locked(.pending(chainPEM: chainPEM, keyPEM: keyPEM))
        self.source = source
    }

    /// The built chain and key (building it now if needed); nil when OpenSSL refused it.
    func certified() -> CertifiedKey? {
        if let key = builtKey.load(ordering: .acquiring) { return key.takeUnretainedValue() }
        guard case .success(let bundle) = build(), let key = bundle.certified else { return nil }
        builtKey.store(Unmanaged.passUnretained(key), ordering: .releasing)  // racing builders store the same key
        return key
    }

    var isPending: Bool {
        state.withLock { if case .pending = $0 { return true } else { return false } }
    }

    func build() -> Result<CertificateBundle, CertificateError> {
        state.withLock { state in
            switch state {
            case .done(let result):
                return result
            case .pending(let chainPEM, let keyPEM):
                let result: Result<CertificateBundle, CertificateError>
                do throws(CertificateError) {
                    result = .success(try CertificateLoader.bundle(chainPEM: chainPEM, keyPEM: keyPEM, source: source))
                } catch {
                    result = .failure(error)
                }
                state = .done(result)  // the PEM texts go
                return result
            }
        }
    }
}

/// Why a certificate was refused. The old certificate for its names keeps serving.
public struct CertificateError: Error, CustomStringConvertible, Sendable {
    public let source: String
    public let reason: String
    public var description: String { "\(source): \(reason)" }
    public init(source: String, reason: String) { self.source = source; self.reason = reason }
}

public enum CertificateLoader {
    /// Parses and validates a PEM chain and key. Refuses: no certificate, no key, a key that is
    /// not the leaf's, a key other than ECDSA/RSA, a leaf with no DNS names, an expired leaf, a
    /// chain out of order. A leaf not yet valid is accepted (clocks drift).
    public static func bundle(chainPEM: [UInt8], keyPEM: [UInt8], source: String, now: Date = Date()) throws(CertificateError) -> CertificateBundle {
        func refuse(_ reason: String) -> CertificateError { CertificateError(source: source, reason: reason) }
        let chain: [X509Certificate]
        let key: PrivateKey
        do {
            chain = try X509Certificate.parseChain(pem: chainPEM)
        } catch {
            throw refuse(error.reason)
        }
        let blocks = occurrences(of: "-----BEGIN CERTIFICATE-----", in: chainPEM)
        guard let leaf = chain.first else {
            throw refuse(blocks > 0 ? "no certificate found: a \"CERTIFICATE\" block could not be decoded (corrupt or truncated PEM)"
                                    : "no certificate found (expected a PEM \"CERTIFICATE\" block)")
        }
        guard chain.count == blocks else {
            throw refuse("certificate \(chain.count + 1) of \(blocks) in the file could not be decoded (corrupt or truncated PEM)")
        }
        do {
            key = try PrivateKey.parse(pem: keyPEM)
        } catch {
            throw refuse(error.reason)
        }
        guard let type = key.type else { throw refuse("unsupported key type (expected ECDSA or RSA)") }
        guard key.matches(leaf) else { throw refuse("the private key does not belong to the certificate (first in the chain)") }
        let names = leaf.dnsNames
        guard !names.isEmpty else { throw refuse("the certificate names no DNS name (subjectAltName)") }
        guard leaf.notAfter > now else { throw refuse("the certificate expired on \(leaf.notAfter); install a renewed one") }
        // Each certificate must be issued by the next one: clients build the path in that order.
        for (i, pair) in zip(chain, chain.dropFirst()).enumerated() where !pair.0.isIssued(by: pair.1) {
            throw refuse("chain out of order: certificate \(i + 2) in the file did not issue certificate \(i + 1) "
                         + "(expected leaf first, then each issuer)")
        }
        var warnings: [String] = []
        if leaf.notBefore > now { warnings.append(notYetValid(leaf.notBefore)) }
        do {
            var bundle = CertificateBundle(names: names, keyType: type, certified: try CertifiedKey(chain: chain, key: key), source: source)
            bundle.warnings = warnings
            return bundle
        } catch {
            throw refuse(error.description)
        }
    }

    /// A P-256 certificate and key the `CertificateIndex` can read, served from that index until
    /// its OpenSSL objects are built (see `CertificateBundle`); nil for anything else, which the
    /// caller loads with `bundle(chainPEM:keyPEM:source:)` at once. For start-up only: an update
    /// must be validated by OpenSSL before it replaces a certificate that serves.
    public static func deferredBundle(chainPEM: [UInt8], keyPEM: [UInt8], source: String, now: Date = Date()) -> CertificateBundle? {
        guard let index = CertificateIndex.read(chainPEM: chainPEM, keyPEM: keyPEM, now: now) else { return nil }
        var bundle = CertificateBundle(index: index, chainPEM: chainPEM, keyPEM: keyPEM, source: source)
        if index.notBefore > now { bundle.warnings.append(notYetValid(index.notBefore)) }
        return bundle
    }

    static func notYetValid(_ date: Date) -> String { "not valid before \(date) (clients will refuse it until then)" }

    /// How often `marker` occurs in `bytes`, without decoding them as a String (which cost more
    /// than the rest of the checks together at 100,000 certificates).
    static func occurrences(of marker: String, in bytes: [UInt8]) -> Int {
        let needle = Array(marker.utf8)
        return bytes.withUnsafeBytes { buf in
            guard let base = buf.baseAddress, let first = needle.first else { return 0 }
            var count = 0, i = 0
            while i + needle.count <= buf.count {
                if buf[i] == first && memcmp(base + i, needle, needle.count) == 0 {
                    count += 1
                    i += needle.count
                } else {
                    i += 1
                }
            }
            return count
        }
    }

    /// Loads a cert + key file pair.
    public static func files(cert: String, key: String) throws(CertificateError) -> CertificateBundle {
        guard let chain = FileManager.default.contents(atPath: cert) else {
            throw CertificateError(source: cert, reason: "cannot read the file")
        }
        guard let keyData = FileManager.default.contents(atPath: key) else {
            throw CertificateError(source: key, reason: "cannot read the file")
        }
        return try bundle(chainPEM: [UInt8](chain), keyPEM: [UInt8](keyData), source: cert)
    }

    /// Every certificate in `directory`: `NAME.crt` with `NAME.key`, or `NAME.pem` holding chain + key.
    /// Returns what loaded and what was refused; one bad file never stops the others.
    public static func directory(_ directory: String) -> (bundles: [CertificateBundle], errors: [CertificateError]) {
        guard let entries = try? FileManager.default.contentsOfDirectory(atPath: directory) else {
            return ([], [CertificateError(source: directory, reason: "cannot read the directory")])
        }
        var bundles: [CertificateBundle] = []
        var errors: [CertificateError] = []
        for entry in entries.sorted() {
            let path = (directory as NSString).appendingPathComponent(entry)
            do throws(CertificateError) {
                if entry.hasSuffix(".crt") {
                    let keyPath = String(path.dropLast(4)) + ".key"
                    guard FileManager.default.fileExists(atPath: keyPath) else {
                        throw CertificateError(source: path, reason: "no matching key file \(keyPath)")
                    }
                    bundles.append(try files(cert: path, key: keyPath))
                } else if entry.hasSuffix(".pem") {
                    bundles.append(try files(cert: path, key: path))
                }
            } catch {
                errors.append(error)
            }
        }
        return (bundles, errors)
    }

    /// A self-signed certificate for `names` (P-256 unless `rsa`).
    public static func selfSigned(names: [String], rsa: Bool = false) throws(CertificateError) -> CertificateBundle {
        do {
            let key = rsa ? try PrivateKey.generateRSA() : try PrivateKey.generateP256()
            let cert = try SelfSigned.make(names: names, key: key)
            return CertificateBundle(names: names, keyType: rsa ? .rsa : .ecdsa, certified: try CertifiedKey(chain: [cert], key: key),
                                     source: "self-signed")
        } catch {
            throw CertificateError(source: "self-signed", reason: error.description)
        }
    }
}
