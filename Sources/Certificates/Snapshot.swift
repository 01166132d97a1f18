import TLS

/// The certificates serving right now: immutable, replaced whole. SNI resolution is exact name,
/// then a wildcard one label up, then the default (RFC 6125 §6.4.3: `*` covers exactly one label).
public final class Snapshot: Sendable {
    public struct Entry: Sendable {
        public var ecdsa: CertificateBundle?
        public var rsa: CertificateBundle?

        /// ECDSA to clients that can verify it, RSA to the others; whichever exists otherwise.
        func pick(offersECDSA: Bool) -> CertificateBundle? {
            if offersECDSA { return ecdsa ?? rsa }
            return rsa ?? ecdsa
        }
    }

    public enum Match: String, Sendable { case exact, wildcard, fallback = "default", rejected }

    let exact: NameTable
    /// Keyed by the part after "*." (`*.example.com` → "example.com").
    let wildcard: NameTable
    let fallback: Entry?
    /// False when a default name was configured but no certificate carries it (the first one answers instead).
    public let defaultFound: Bool
    /// What it was built from (empty for catalog-built snapshots: the catalog lists its own).
    public let bundles: [CertificateBundle]

    /// Later bundles win for a name they share with earlier ones, per key type.
    public init(_ bundles: [CertificateBundle], defaultName: String?) {
        var exact: [String: Entry] = [:]
        var wildcard: [String: Entry] = [:]
        func add(_ b: CertificateBundle, to entry: inout Entry) {
            if b.keyType == .rsa { entry.rsa = b } else { entry.ecdsa = b }
        }
        for b in bundles {
            for name in b.names {
                if name.hasPrefix("*.") {
                    add(b, to: &wildcard[String(name.dropFirst(2)), default: Entry()])
                } else {
                    add(b, to: &exact[name, default: Entry()])
                }
            }
        }
        self.exact = NameTable(exact)
        self.wildcard = NameTable(wildcard)
        self.bundles = bundles
        let named = defaultName.flatMap { n in n.hasPrefix("*.") ? wildcard[String(n.dropFirst(2))] : exact[n] }
        // Without a (known) default name: the first bundle's first name, both key types where it has them.
        fallback = named ?? bundles.first.flatMap { first in
            let n = first.names[0]
            return n.hasPrefix("*.") ? wildcard[String(n.dropFirst(2))] : exact[n]
        }
        defaultFound = defaultName == nil || named != nil
    }

    /// Built from indexes a `CertificateCatalog` keeps up to date, so an update costs the names it
    /// touches plus one copy of the dictionaries, not a pass over every certificate.
    init(exact: NameTable, wildcard: NameTable, fallback: Entry?, defaultFound: Bool) {
        self.exact = exact
        self.wildcard = wildcard
        self.fallback = fallback
        self.defaultFound = defaultFound
        self.bundles = []
    }

    public var nameCount: Int { exact.count + wildcard.count }

    /// Resolves a ClientHello's name; nil name (no SNI) goes to the default.
    public func resolve(_ serverName: String?, offersECDSA: Bool, strict: Bool) -> (CertificateBundle?, Match) {
        if let name = serverName {
            if let e = exact[name], let b = e.pick(offersECDSA: offersECDSA) { return (b, .exact) }
            if let dot = name.firstIndex(of: "."), let e = wildcard[String(name[name.index(after: dot)...])],
               let b = e.pick(offersECDSA: offersECDSA) { return (b, .wildcard) }
            if strict { return (nil, .rejected) }
        }
        if let b = fallback?.pick(offersECDSA: offersECDSA) { return (b, .fallback) }
        return (nil, .rejected)
    }
}
