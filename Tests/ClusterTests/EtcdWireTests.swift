@testable import Cluster
import Foundation
import Testing

/// What the client makes of the gateway's answers, without a server (Tests/Fuzz/Etcd fuzzes the same).
@Suite struct EtcdWireTests {
    /// As etcd 3.4's gateway answered a prefix range.
    static let range = #"{"header":{"cluster_id":"15118495548433857066","member_id":"13668033151171901709","revision":"3","raft_term":"2"},"kvs":[{"key":"L2VkZ2Vwcm94eS9jZXJ0aWZpY2F0ZXMvYS5leGFtcGxl","create_revision":"2","mod_revision":"2","version":"1","value":"aGVsbG8="}],"count":"1"}"#

    @Test func aRangeAnswerDecodes() throws {
        let wire: WireRangeResponse = try EtcdClient.decode("/v3/kv/range", Self.range.bytes)
        let result = wire.decoded
        #expect(result.revision == 3 && result.count == 1 && !result.more)
        #expect(result.kvs == [EtcdKeyValue(key: "/edgeproxy/certificates/a.example".bytes, value: "hello".bytes,
                                            createRevision: 2, modRevision: 2, version: 1, lease: 0)])
    }

    /// The sync thread and the watch go on from the last revision + 1: one that leaves no room
    /// (or a negative one) is an answer etcd does not give, refused rather than trapping later.
    @Test func revisionsOutOfRangeAreRefused() throws {
        let max = String(Int64.max)
        for body in [#"{"header":{"revision":"\#(max)"}}"#, #"{"header":{"revision":"-1"}}"#,
                     #"{"header":{"revision":"3"},"kvs":[{"key":"YQ==","mod_revision":"\#(max)"}]}"#,
                     #"{"header":{"revision":"3"},"kvs":[{"key":"YQ==","create_revision":\#(max)}]}"#] {
            let error = #expect(throws: EtcdError.self, "\(body)") { let _: WireRangeResponse = try EtcdClient.decode("/v3/kv/range", body.bytes) }
            #expect(error?.code == .badResponse)
        }
        let txn = #"{"header":{"revision":"5"},"succeeded":true,"responses":[{"response_put":{"header":{"revision":"\#(max)"}}}]}"#
        #expect(throws: EtcdError.self) { let _: WireTxnResponse = try EtcdClient.decode("/v3/kv/txn", txn.bytes) }
        let lastGood: WireRangeResponse = try EtcdClient.decode("/v3/kv/range", #"{"header":{"revision":"\#(Int64.max - 1)"}}"#.bytes)
        #expect(lastGood.decoded.revision == Int64.max - 1)

        for message in [#"{"result":{"header":{"revision":"\#(max)"}}}"#,
                        #"{"result":{"header":{"revision":"7"},"events":[{"kv":{"key":"YQ==","mod_revision":"\#(max)"}}]}}"#,
                        #"{"result":{"header":{},"canceled":true,"compact_revision":"-5"}}"#] {
            guard case .failed(let error) = EtcdWatch.interpret(message.bytes) else { Issue.record("\(message) taken"); continue }
            #expect(error.code == .badResponse)
        }
    }

    /// The token goes into Authorization as it is: a CR or LF in it would end the field early.
    @Test func aTokenThatCannotBeAFieldValueIsRefused() throws {
        #expect(try EtcdClient.token(from: #"{"header":{"revision":"10"},"token":"otDhKpwYtwYZhWEh.25"}"#.bytes) == "otDhKpwYtwYZhWEh.25")
        #expect(try EtcdClient.token(from: #"{"header":{"revision":"10"}}"#.bytes) == nil)
        #expect(try EtcdClient.token(from: #"{"token":""}"#.bytes) == nil)
        #expect(try EtcdClient.token(from: "not json".bytes) == nil)
        for token in [#"abc\r\nX-Injected: 1"#, #"abc\u007f"#, #"abc\u0000"#, "a b", #"caf\u00e9"#] {
            let error = #expect(throws: EtcdError.self, "\(token)") { try EtcdClient.token(from: #"{"token":"\#(token)"}"#.bytes) }
            #expect(error?.code == .badResponse)
        }
    }

    @Test func leaseAnswers() throws {
        let grant: WireLeaseResponse = try EtcdClient.decode("/v3/lease/grant", #"{"header":{"revision":"3"},"ID":"4111120472922415371","TTL":"30"}"#.bytes)
        let lease = try grant.granted()
        #expect(lease.id == 4111120472922415371 && lease.ttl == 30 && lease.revision == 3)
        let refused: WireLeaseResponse = try EtcdClient.decode("/v3/lease/grant", #"{"error":"etcdserver: lease already exists"}"#.bytes)
        #expect(throws: EtcdError.self) { try refused.granted() }
        let gone: WireLeaseKeepAliveResponse = try EtcdClient.decode("/v3/lease/keepalive", #"{"result":{"header":{"revision":"7"},"ID":"5"}}"#.bytes)
        #expect(try gone.renewed(id: 5).ttl == 0)
        let failed: WireLeaseKeepAliveResponse = try EtcdClient.decode(
            "/v3/lease/keepalive", #"{"error":{"grpc_code":14,"http_code":503,"message":"etcdserver: no leader"}}"#.bytes)
        let error = #expect(throws: EtcdError.self) { try failed.renewed(id: 5) }
        #expect(error?.isRetriable == true)
    }
}
