import Certificates
import EventLoop
import Foundation

/// How `GET /certificates` and the PUT answer describe a catalog item.
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
    public struct OCSP: Sendable {
        public var status: String
        public var responder: String
        public var nextUpdate: Date?
        public var error: String?
        public init(status: String, responder: String, nextUpdate: Date?, error: String?) {
            self.status = status; self.responder = responder; self.nextUpdate = nextUpdate; self.error = error
        }

        var json: String {
            ",\"ocsp\":{\"status\":\(JSON.string(status)),\"responder\":\(JSON.string(responder)),"
                + "\"next_update\":\(JSON.string(nextUpdate.map { ISO8601DateFormatter().string(from: $0) })),\"error\":\(JSON.string(error))}"
        }
    }

    public static func describe(id: String, item: CertificateCatalog.Item, ocsp: OCSP? = nil) -> String {
        // A certificate served from its start-up index and not yet built by OpenSSL is not built
        // here: listing 100,000 of them would hold the control queue for tens of seconds.
        let bundle = item.bundle, leaf = bundle.isPending ? nil : bundle.leaf
        let iso = ISO8601DateFormatter()
        let names = bundle.names.map(JSON.string).joined(separator: ",")
        return "{\"name\":\(JSON.string(displayName(id))),\"names\":[\(names)],\"key_type\":\"\(bundle.keyType.rawValue)\","
            + "\"issuer\":\(JSON.string(leaf?.issuer)),\"subject\":\(JSON.string(leaf?.subject)),\"checked\":\(leaf != nil),"
            + "\"not_before\":\"\(iso.string(from: bundle.notBefore))\",\"not_after\":\"\(iso.string(from: bundle.notAfter))\","
            + "\"serial\":\"\(bundle.serialHex)\",\"source\":\(JSON.string(item.origin)),\"path\":\(JSON.string(item.bundle.source))\(ocsp?.json ?? "")}"
    }
}
