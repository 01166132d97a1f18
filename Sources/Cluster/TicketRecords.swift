import Foundation
import Logs
import TLS

/// Session-ticket keys for the whole fleet, at `tickets/<not_before in ms>`: one node (the
/// leader, holder of `leader` under its lease) publishes each key, sealed, `lead` seconds before
/// it starts encrypting, so every node holds it before any
/// client can hold a ticket made with it (h2o's scheme). Each key encrypts for one period and
/// still decrypts for two more.
struct TicketRecords {
    let store: SharedStore
    let layout: KeyLayout
    let sealer: Sealer
    /// Seconds each key encrypts for.
    let rotation: Double

    /// How long before it starts encrypting a key is published.
    var lead: Double { min(rotation / 2, 30) }

    private struct Wire: Codable {
        var notBefore: Double
        var sealedKey: String
        enum CodingKeys: String, CodingKey { case notBefore = "not_before", sealedKey = "sealed_key" }
    }

    func key(for notBefore: Double) -> String {
        layout.tickets + String(format: "%015.0f", (notBefore * 1000).rounded())
    }

    /// The key a record holds, opened with the fleet's sealing keys. `not_before` is not sealed,
    /// but the etcd key it is stored at is the seal's context and names it (`key(for:)`): a record
    /// whose `not_before` disagrees with its etcd key was not written by a node, and is refused.
    func decode(_ value: StoredValue) throws(ClusterError) -> TicketKeys.Key {
        guard let wire = try? JSONDecoder().decode(Wire.self, from: Data(value.value)), let sealed = Data(base64Encoded: wire.sealedKey) else {
            throw ClusterError(.badRecord, "\(value.key) is not a ticket key record")
        }
        guard wire.notBefore.isFinite, key(for: wire.notBefore) == value.key else {
            throw ClusterError(.badRecord, "\(value.key): its not_before \(wire.notBefore) is not the one its key names; delete the record")
        }
        let material = try sealer.openRecord([UInt8](sealed), context: value.key)
        guard material.count == 80 else { throw ClusterError(.badRecord, "\(value.key): a ticket key is 80 bytes, this one \(material.count)") }
        return TicketKeys.Key(material: material, notBefore: wire.notBefore)
    }

    /// The record of `ticketKey` stored at `etcdKey`, its material sealed; nil when it does not
    /// encode (a `notBefore` JSON cannot hold).
    func record(_ ticketKey: TicketKeys.Key, at etcdKey: String) throws(ClusterError) -> [UInt8]? {
        let wire = Wire(notBefore: ticketKey.notBefore, sealedKey: Data(try sealer.sealRecord(ticketKey.material, context: etcdKey)).base64EncodedString())
        return (try? JSONEncoder().encode(wire)).map { [UInt8]($0) }
    }

    /// The leader's turn: publish the next key when the newest one starts encrypting within
    /// `lead` seconds (the first one at once), and drop keys too old to decrypt anything. Only
    /// records that open count: one with a forged far-future `not_before` would otherwise stop
    /// the rotation, the fleet encrypting with its last key for ever.
    func maintain(now: Double = Date().timeIntervalSince1970) throws(ClusterError) {
        let values = try store.list(prefix: layout.tickets).values
        let held = values.compactMap { v -> (String, Double)? in
            do throws(ClusterError) { return (v.key, try decode(v).notBefore) } catch {
                Log.debug("cluster: ticket key \(v.key) left out of the rotation: \(error.reason)")  // the sync logged it when it came
                return nil
            }
        }.sorted { $0.1 > $1.1 }
        let newest = held.first?.1
        if newest == nil || newest! + rotation - lead <= now {
            let notBefore = newest.map { max($0 + rotation, now + lead) } ?? now
            let fresh = TicketKeys.Key.random(notBefore: notBefore)
            let key = key(for: notBefore)
            guard let bytes = try record(fresh, at: key) else { return }
            _ = try store.create(key, bytes, lease: nil)
        }
        for (key, notBefore) in held.dropFirst(3) where notBefore + 3 * rotation < now {
            try store.delete(key)
        }
    }
}
