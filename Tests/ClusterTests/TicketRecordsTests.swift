import Foundation
import Testing
import TLS
@testable import Cluster

/// The leader's ticket-key rotation counts only records a node sealed: a record with a forged
/// `not_before` (unsealed, sealed for another key, or rewritten) neither stops nor steers it.
@Suite struct TicketRecordsTests {
    let layout = KeyLayout(prefix: "/t/")
    let now = 1_750_000_000.0

    func records(_ store: MemoryStore) throws -> [String] {
        try store.list(prefix: layout.tickets).values.map(\.key)
    }

    /// `record` with its `not_before` replaced (the sealed key untouched).
    func rewritten(_ record: [UInt8], notBefore: Double) throws -> [UInt8] {
        var object = try #require(try JSONSerialization.jsonObject(with: Data(record)) as? [String: Any])
        object["not_before"] = notBefore
        return [UInt8](try JSONSerialization.data(withJSONObject: object))
    }

    @Test func aForgedFarFutureRecordDoesNotStopTheRotation() throws {
        let store = MemoryStore()
        let sealer = try Sealer(keyBytes: [[UInt8](repeating: 3, count: 32)])
        let tickets = TicketRecords(store: store, layout: layout, sealer: sealer, rotation: 60)
        try tickets.maintain(now: now)
        #expect(try records(store) == [tickets.key(for: now)])
        let genuine = try #require(try store.get(tickets.key(for: now)))

        // Far in the future: a genuine record moved there, the same with its not_before to match,
        // and one whose key was sealed by nobody.
        let far = now + 10 * 365 * 86400
        store.set(tickets.key(for: far), genuine.value, revision: 10)
        store.set(tickets.key(for: far + 1), try rewritten(genuine.value, notBefore: far + 1), revision: 11)
        let unsealed = #"{"not_before":\#(far + 2),"sealed_key":"\#(Data(repeating: 7, count: 120).base64EncodedString())"}"#
        store.set(tickets.key(for: far + 2), Array(unsealed.utf8), revision: 12)
        for v in try store.list(prefix: layout.tickets).values where v.key != genuine.key {
            #expect(throws: ClusterError.self) { try tickets.decode(v) }
        }
        #expect(try tickets.decode(genuine).notBefore == now)

        // The genuine key starts its last `lead` (30 s) of encrypting: the next one is published.
        try tickets.maintain(now: now + 31)
        let next = tickets.key(for: now + 61)
        #expect(try records(store).contains(next))
        let published = try #require(try store.get(next))
        #expect(try tickets.decode(published).notBefore == now + 61)
    }
}
