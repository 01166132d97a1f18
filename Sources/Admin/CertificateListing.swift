import Certificates
import Foundation

/// How `GET /certificates`, `GET /certificates/NAME` and the PUT answer describe a catalog item.
public enum CertificateListing {
    /// The name an operator knows a certificate by: the upload name, or the file's base name.
    public static func displayName(_ id: String) -> String {
        guard let colon = id.firstIndex(of: ":") else { return id }
        let rest = String(id[id.index(after: colon)...])
        if id.hasPrefix("api:") { return rest }
        var file = (rest as NSString).lastPathComponent
        for suffix in [".crt", ".pem"] where file.hasSuffix(suffix) { file.removeLast(suffix.count) }
        return file
    }

    /// OCSP stapling of one certificate (only those whose leaf names a responder have one).
    public struct OCSP: Encodable, Sendable {
        public var status: String
        public var responder: String
        @Nullable public var nextUpdate: Date?
        @Nullable public var error: String?
        public init(status: String, responder: String, nextUpdate: Date?, error: String?) {
            self.status = status; self.responder = responder; self.nextUpdate = nextUpdate; self.error = error
        }
    }

    /// One certificate. `issuer` and `subject` are null and `checked` false while it serves from
    /// its start-up index and OpenSSL has not built it yet; `ocsp` is absent without a responder.
    public struct Entry: Encodable, Sendable {
        public var name: String
        public var names: [String]
        public var keyType: String
        @Nullable public var issuer: String?
        @Nullable public var subject: String?
        public var checked: Bool
        public var notBefore: Date
        public var notAfter: Date
        public var serial: String
        /// Where it came from: directory, file, api, acme, cluster, self-signed.
        public var source: String
        /// The file (or upload) it was read from.
        public var path: String
        public var ocsp: OCSP?
    }

    public static func describe(id: String, item: CertificateCatalog.Item, ocsp: OCSP? = nil) -> Entry {
        // A certificate served from its start-up index and not yet built by OpenSSL is not built
        // here: listing 100,000 of them would hold the control queue for tens of seconds.
        let bundle = item.bundle, leaf = bundle.isPending ? nil : bundle.leaf
        return Entry(name: displayName(id), names: bundle.names, keyType: bundle.keyType.rawValue, issuer: leaf?.issuer,
                     subject: leaf?.subject, checked: leaf != nil, notBefore: bundle.notBefore, notAfter: bundle.notAfter,
                     serial: bundle.serialHex, source: item.origin, path: bundle.source, ocsp: ocsp)
    }
}
