@testable import Cluster
import Foundation
import Testing

@Suite struct WatchStreamTests {
    static let put = #"{"result":{"header":{"revision":"5"},"events":[{"kv":{"key":"cDE=","create_revision":"5","mod_revision":"5","version":"1","value":"MQ=="}}]}}"#
    static let delete = #"{"result":{"header":{"revision":"6"},"events":[{"type":"DELETE","kv":{"key":"cDE=","mod_revision":"6"}}]}}"#
    static let created = #"{"result":{"header":{"revision":"4"},"created":true}}"#

    @Test func splitsObjectsCutAnywhere() throws {
        let stream = Array((Self.created + "\n" + Self.put + "\n" + Self.delete + "\n").utf8)
        for cut in 1..<stream.count {
            var framer = JSONStreamFramer()
            let objects = try framer.push(Array(stream[..<cut])) + framer.push(Array(stream[cut...]))
            #expect(objects.count == 3, "cut at \(cut)")
        }
        var byteByByte = JSONStreamFramer()
        var objects: [[UInt8]] = []
        for byte in stream { objects += try byteByByte.push([byte]) }
        #expect(objects.map { String(decoding: $0, as: UTF8.self) } == [Self.created, Self.put, Self.delete])
    }

    @Test func severalObjectsInOneReadAndBracesInsideStrings() throws {
        var framer = JSONStreamFramer()
        let tricky = #"{"error":{"message":"a } \" { b","grpc_code":3}}"#
        let objects = try framer.push(Array((Self.put + Self.delete + tricky).utf8))
        #expect(objects.count == 3)
        #expect(String(decoding: objects[2], as: UTF8.self) == tricky)
        #expect(throws: EtcdError.self) { var f = JSONStreamFramer(); _ = try f.push(Array("x{}".utf8)) }
    }

    @Test func interpretsEachMessageKind() throws {
        guard case .created = EtcdWatch.interpret(Array(Self.created.utf8)) else { Issue.record("created"); return }
        guard case .batch(let puts) = EtcdWatch.interpret(Array(Self.put.utf8)) else { Issue.record("put"); return }
        #expect(puts.revision == 5)
        #expect(puts.events == [EtcdWatchEvent(kind: .put, kv: EtcdKeyValue(key: Array("p1".utf8), value: Array("1".utf8),
                                                                            createRevision: 5, modRevision: 5, version: 1, lease: 0))])
        guard case .batch(let deletes) = EtcdWatch.interpret(Array(Self.delete.utf8)) else { Issue.record("delete"); return }
        #expect(deletes.events.first?.kind == .delete && deletes.events.first?.kv.modRevision == 6)
        let progress = #"{"result":{"header":{"revision":"9"}}}"#
        guard case .batch(let empty) = EtcdWatch.interpret(Array(progress.utf8)) else { Issue.record("progress"); return }
        #expect(empty.revision == 9 && empty.events.isEmpty)
        let compacted = #"{"result":{"header":{"raft_term":"2"},"canceled":true,"compact_revision":"5"}}"#
        guard case .failed(let error) = EtcdWatch.interpret(Array(compacted.utf8)) else { Issue.record("compacted"); return }
        #expect(error.code == .compacted && error.compactRevision == 5)
        let failure = #"{"error":{"grpc_code":14,"http_code":503,"message":"etcdserver: no leader","http_status":"Service Unavailable"}}"#
        guard case .failed(let unavailable) = EtcdWatch.interpret(Array(failure.utf8)) else { Issue.record("error"); return }
        #expect(unavailable.etcdCode == 14 && unavailable.isRetriable)
    }

    @Test func prefixEnds() {
        #expect(etcdPrefixEnd(Array("a/".utf8)) == Array("a0".utf8))
        #expect(etcdPrefixEnd([0x61, 0xff]) == [0x62])
        #expect(etcdPrefixEnd([0xff, 0xff]) == [0])
        #expect(etcdPrefixEnd([]) == [0])
    }
}
