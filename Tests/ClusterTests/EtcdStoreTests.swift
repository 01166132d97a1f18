import Foundation
import Testing
@testable import Cluster

/// `EtcdStore` against a real etcd (3.4), with a small page and bound so a few keys reach them.
@Suite struct EtcdStoreTests {
    @Test func listingPagesThroughAPrefixUpToItsBound() throws {
        let etcd = try Etcd()
        let client = try EtcdClientTests.client([etcd.endpoint])
        let store = EtcdStore(client: client, page: 2, maxListed: 5)
        for i in 0..<5 { _ = try client.put(key: "p/\(i)".bytes, value: "v".bytes) }
        _ = try client.put(key: "q/0".bytes, value: "v".bytes)
        let (values, revision) = try store.list(prefix: "p/")
        #expect(values.map(\.key) == (0..<5).map { "p/\($0)" } && revision > 0)

        _ = try client.put(key: "p/5".bytes, value: "v".bytes)
        do {
            _ = try store.list(prefix: "p/")
            Issue.record("6 keys listed past a bound of 5")
        } catch {
            #expect(error.code == .store)
            #expect(error.reason.contains("listing p/ stopped") && error.reason.contains("at most 5 keys"), "\(error.reason)")
        }
        #expect(try store.list(prefix: "q/").values.map(\.key) == ["q/0"])
    }
}
