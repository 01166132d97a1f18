/// Every certificate the proxy holds, by id ("dir:/etc/certs/a.crt", "file:/x.crt", "api:a"), with
/// the SNI indexes kept up to date incrementally: applying a change touches only the names of the
/// certificates it adds or removes, and never re-parses a certificate. Owned by one thread (the
/// control queue); handshakes only ever see the immutable snapshots it produces.
public final class CertificateCatalog {
    public struct Item: Sendable {
        public let bundle: CertificateBundle
        /// "directory", "file", "api", "self-signed": for the admin API and metrics.
        public let origin: String
        /// Later items win a name they share with earlier ones (per key type), as in `Snapshot.init`.
        /// Also tells one version of an id from the next.
        public let sequence: UInt64
    }

    public private(set) var items: [String: Item] = [:]
    /// The origin of the generated self-signed certificate.
    public static let fallbackOrigin = "self-signed"
    private var exact = NameTable()
    private var wildcard = NameTable()
    /// The item a snapshot falls back to without a default name; found again only when it goes.
    private var oldestID: String?
    /// Name (as written in the certificate, "*.x" included) → ids of the items carrying it.
    private var holders: [String: [String]] = [:]
    private var nextSequence: UInt64 = 0

    public init() {}

    public var count: Int { items.count }

    /// Adds or replaces items and removes others, then re-picks the winner of every name involved.
    /// Cost: O(names of the changed items), independent of the catalog's size.
    public func apply(upserts: [(id: String, bundle: CertificateBundle, origin: String)], removals: [String]) {
        var touched = Set<String>()
        if upserts.count > 1000 {  // a start-up or replace-all batch: grow each table once
            items.reserveCapacity(items.count + upserts.count)
            holders.reserveCapacity(holders.count + upserts.count)
            touched.reserveCapacity(upserts.count)
        }
        for id in removals {
            guard let old = items.removeValue(forKey: id) else { continue }
            for name in old.bundle.names { unhold(name, id); touched.insert(name) }
        }
        for u in upserts {
            if let old = items[u.id] {
                for name in old.bundle.names { unhold(name, u.id); touched.insert(name) }
            }
            nextSequence += 1
            items[u.id] = Item(bundle: u.bundle, origin: u.origin, sequence: nextSequence)
            for name in u.bundle.names { holders[name, default: []].append(u.id); touched.insert(name) }
        }
        var exactChanges: [(String, Snapshot.Entry?)] = []
        var wildcardChanges: [(String, Snapshot.Entry?)] = []
        for name in touched {
            let entry = pick(name)
            if name.hasPrefix("*.") {
                wildcardChanges.append((String(name.dropFirst(2)), entry))
            } else {
                exactChanges.append((name, entry))
            }
        }
        exact.set(exactChanges)
        wildcard.set(wildcardChanges)
        if let id = oldestID, let item = items[id], item.origin != Self.fallbackOrigin || items.count == 1,
           !upserts.contains(where: { $0.id == id }) { return }
        // The generated fallback answers clients without SNI only while nothing else is loaded
        // (a cluster node or ACME filling an empty store keeps it in the catalog meanwhile).
        oldestID = items.lazy.filter { $0.value.origin != Self.fallbackOrigin }.min { $0.value.sequence < $1.value.sequence }?.key
            ?? items.min { $0.value.sequence < $1.value.sequence }?.key
    }

    /// What an apply would leave, to refuse one that empties the catalog.
    public func countAfter(upserts: [String], removals: [String]) -> Int {
        let removed = Set(removals).filter { items[$0] != nil }
        let added = Set(upserts).filter { items[$0] == nil || removed.contains($0) }
        return items.count - removed.count + added.count
    }

    public func snapshot(defaultName: String?) -> Snapshot {
        let named = defaultName.flatMap { n in n.hasPrefix("*.") ? wildcard[String(n.dropFirst(2))] : exact[n] }
        // Without a (known) default name: the oldest item's first name, as a fresh start would pick.
        let fallback = named ?? oldestID.flatMap { items[$0] }.flatMap { entry(for: $0.bundle.names[0]) }
        return Snapshot(exact: exact, wildcard: wildcard, fallback: fallback, defaultFound: defaultName == nil || named != nil)
    }

    private func entry(for name: String) -> Snapshot.Entry? {
        name.hasPrefix("*.") ? wildcard[String(name.dropFirst(2))] : exact[name]
    }

    private func unhold(_ name: String, _ id: String) {
        holders[name]?.removeAll { $0 == id }
        if holders[name]?.isEmpty == true { holders[name] = nil }
    }

    /// The winner of `name` among the items carrying it: the latest per key type.
    private func pick(_ name: String) -> Snapshot.Entry? {
        var ecdsa: CertificateBundle?, rsa: CertificateBundle?
        var best: (ecdsa: UInt64, rsa: UInt64) = (0, 0)
        for id in holders[name] ?? [] {
            guard let item = items[id] else { continue }
            if item.bundle.keyType == .rsa {
                if item.sequence > best.rsa { best.rsa = item.sequence; rsa = item.bundle }
            } else if item.sequence > best.ecdsa {
                best.ecdsa = item.sequence; ecdsa = item.bundle
            }
        }
        return ecdsa != nil || rsa != nil ? Snapshot.Entry(ecdsa: ecdsa, rsa: rsa) : nil
    }
}
