import TLS

/// The certificates serving right now: immutable, replaced whole. SNI resolution is exact name,
/// then a wildcard one label up, then the default (RFC 6125 §6.4.3: `*` covers exactly one label).
public final class Snapshot: Sendable {
    /// The certificates of one name. A class: the ClientHello callback looks one up per
    /// handshake, and a reference costs one retain where two bundles would cost a dozen.
    public final class Entry: Sendable {
        public let ecdsa: CertificateBundle?
        public let rsa: CertificateBundle?

        public init(ecdsa: CertificateBundle? = nil, rsa: CertificateBundle? = nil) {
            self.ecdsa = ecdsa
            self.rsa = rsa
        }

        /// This entry with `bundle` in its key type's place.
        func with(_ bundle: CertificateBundle) -> Entry {
            bundle.keyType == .rsa ? Entry(ecdsa: ecdsa, rsa: bundle) : Entry(ecdsa: bundle, rsa: rsa)
        }

        /// ECDSA to clients that can verify it, RSA to the others; whichever exists otherwise.
        func pick(offersECDSA: Bool) -> CertificateBundle? { servesECDSA(offersECDSA) ? ecdsa : rsa }

        /// The chain and key of `pick`'s choice, without copying the bundle out.
        func certified(offersECDSA: Bool) -> CertifiedKey? {
            servesECDSA(offersECDSA) ? ecdsa?.certified : rsa?.certified
        }

        private func servesECDSA(_ offersECDSA: Bool) -> Bool { ecdsa != nil && (offersECDSA || rsa == nil) }
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
        for b in bundles {
            for name in b.names {
                if name.hasPrefix("*.") {
                    let suffix = String(name.dropFirst(2))
                    wildcard[suffix] = (wildcard[suffix] ?? Entry()).with(b)
                } else {
                    exact[name] = (exact[name] ?? Entry()).with(b)
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

    /// The entry serving a ClientHello's name; nil name (no SNI) goes to the default.
    public func entry(for serverName: String?, strict: Bool) -> (Entry?, Match) {
        if let name = serverName {
            if let e = exact[name] { return (e, .exact) }
            if let dot = name.firstIndex(of: "."), let e = wildcard[String(name[name.index(after: dot)...])] {
                return (e, .wildcard)
            }
            if strict { return (nil, .rejected) }
        }
        if let fallback { return (fallback, .fallback) }
        return (nil, .rejected)
    }

    /// The bundle serving a ClientHello's name and key types.
    public func resolve(_ serverName: String?, offersECDSA: Bool, strict: Bool) -> (CertificateBundle?, Match) {
        let (entry, match) = entry(for: serverName, strict: strict)
        return (entry?.pick(offersECDSA: offersECDSA), match)
    }
}
