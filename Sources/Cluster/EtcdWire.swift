import Foundation

// etcd v3's JSON gateway (grpc-gateway, jsonpb): field names are the proto's own (snake_case,
// "ID"/"TTL" for leases), bytes are base64, int64 values are JSON strings, and fields equal to
// their zero value (0, false, "", the first enum case) are left out of responses.

/// An int64 on the wire: a JSON string (or, leniently, a number); written as a string.
struct WireInt: Codable, Sendable {
    var value: Int64
    init(_ value: Int64) { self.value = value }
    init(from decoder: Decoder) throws {
        let container = try decoder.singleValueContainer()
        if let text = try? container.decode(String.self), let value = Int64(text) { self.value = value; return }
        value = try container.decode(Int64.self)
    }
    func encode(to encoder: Encoder) throws {
        var container = encoder.singleValueContainer()
        try container.encode(String(value))
    }
}

extension Optional where Wrapped == WireInt {
    var int: Int64 { self?.value ?? 0 }
}

/// A revision in an answer: an int64 as above, refused when negative or Int64.max (etcd counts
/// from 1, one per write): the watch and the sync thread go on from the last one + 1.
struct WireRevision: Decodable, Sendable {
    var value: Int64
    init(from decoder: Decoder) throws {
        let int = try WireInt(from: decoder)
        guard int.value >= 0 && int.value < Int64.max else {
            throw DecodingError.dataCorrupted(.init(codingPath: decoder.codingPath, debugDescription: "revision \(int.value) is out of range"))
        }
        value = int.value
    }
}

extension Optional where Wrapped == WireRevision {
    var int: Int64 { self?.value ?? 0 }
}

struct WireHeader: Decodable {
    var revision: WireRevision?
}

struct WireKeyValue: Decodable {
    var key: Data?
    var value: Data?
    var create_revision: WireRevision?
    var mod_revision: WireRevision?
    var version: WireInt?
    var lease: WireInt?

    var decoded: EtcdKeyValue {
        EtcdKeyValue(key: Array(key ?? Data()), value: Array(value ?? Data()), createRevision: create_revision.int,
                     modRevision: mod_revision.int, version: version.int, lease: lease.int)
    }
}

// MARK: KV

struct WireRangeRequest: Encodable {
    var key: Data
    var range_end: Data?
    var limit: WireInt?
    var revision: WireInt?
    var keys_only: Bool?
}

struct WireRangeResponse: Decodable {
    var header: WireHeader?
    var kvs: [WireKeyValue]?
    var more: Bool?
    var count: WireInt?

    var decoded: EtcdRangeResult {
        EtcdRangeResult(revision: header?.revision.int ?? 0, kvs: (kvs ?? []).map(\.decoded), more: more ?? false, count: count.int)
    }
}

struct WirePutRequest: Encodable {
    var key: Data
    var value: Data
    var lease: WireInt?
}

struct WirePutResponse: Decodable {
    var header: WireHeader?

    var decoded: EtcdPutResult { EtcdPutResult(revision: header?.revision.int ?? 0) }
}

struct WireDeleteRangeRequest: Encodable {
    var key: Data
    var range_end: Data?
}

struct WireDeleteRangeResponse: Decodable {
    var header: WireHeader?
    var deleted: WireInt?

    var decoded: EtcdDeleteResult { EtcdDeleteResult(revision: header?.revision.int ?? 0, deleted: deleted.int) }
}

struct WireCompare: Encodable {
    var result: String
    var target: String
    var key: Data
    var version: WireInt?
    var create_revision: WireInt?
    var mod_revision: WireInt?
    var value: Data?
}

struct WireRequestOp: Encodable {
    var request_range: WireRangeRequest?
    var request_put: WirePutRequest?
    var request_delete_range: WireDeleteRangeRequest?
}

struct WireResponseOp: Decodable {
    var response_range: WireRangeResponse?
    var response_put: WirePutResponse?
    var response_delete_range: WireDeleteRangeResponse?

    /// A put's answer has nothing but its header, so an op without a known answer reads as a put.
    var decoded: EtcdOpResult {
        if let range = response_range { return .range(range.decoded) }
        if let delete = response_delete_range { return .delete(delete.decoded) }
        return .put(EtcdPutResult(revision: response_put?.header?.revision.int ?? 0))
    }
}

struct WireTxnRequest: Encodable {
    var compare: [WireCompare]
    var success: [WireRequestOp]
    var failure: [WireRequestOp]
}

struct WireTxnResponse: Decodable {
    var header: WireHeader?
    var succeeded: Bool?
    var responses: [WireResponseOp]?

    var decoded: EtcdTxnResult {
        EtcdTxnResult(revision: header?.revision.int ?? 0, succeeded: succeeded ?? false, responses: (responses ?? []).map(\.decoded))
    }
}

struct WireCompactionRequest: Encodable {
    var revision: WireInt
    var physical: Bool?
}

struct WireCompactionResponse: Decodable {
    var header: WireHeader?
}

// MARK: Leases

struct WireLeaseGrantRequest: Encodable {
    var TTL: WireInt
}

struct WireLeaseIDRequest: Encodable {
    var ID: WireInt
}

struct WireLeaseResponse: Decodable {
    var header: WireHeader?
    var ID: WireInt?
    var TTL: WireInt?
    var error: String?

    /// A grant's answer: the lease, or etcd's refusal.
    func granted() throws(EtcdError) -> EtcdLease {
        if let error, !error.isEmpty { throw EtcdError(.etcd, "lease grant: \(error)", message: error) }
        return EtcdLease(id: ID.int, ttl: TTL.int, revision: header?.revision.int ?? 0)
    }
}

/// Keep-alive is a stream on the gRPC side: the gateway wraps each message in "result".
struct WireLeaseKeepAliveResponse: Decodable {
    var result: WireLeaseResponse?
    var error: WireStreamError?

    /// Lease `id` after one keep-alive: the TTL left, 0 when the lease is gone.
    func renewed(id: Int64) throws(EtcdError) -> EtcdLease {
        if let error {
            throw EtcdError.fromEtcd(code: error.grpc_code ?? 0, message: error.message ?? "lease keep-alive failed")
        }
        return EtcdLease(id: id, ttl: max(0, result?.TTL.int ?? 0), revision: result?.header?.revision.int ?? 0)
    }
}

// MARK: Auth

struct WireAuthenticateRequest: Encodable {
    var name: String
    var password: String
}

struct WireAuthenticateResponse: Decodable {
    var header: WireHeader?
    var token: String?
}

// MARK: Errors

/// A unary call's failure, sent with a 4xx/5xx status: `{"error":…,"code":N,"message":…}` (the
/// code is the gRPC status code).
struct WireError: Decodable {
    var error: String?
    var code: Int?
    var message: String?
}

/// A failure inside a streamed response: `{"error":{"grpc_code":N,"http_code":N,"message":…}}`.
struct WireStreamError: Decodable {
    var grpc_code: Int?
    var http_code: Int?
    var message: String?
}

// MARK: Watch

struct WireWatchCreate: Encodable {
    var key: Data
    var range_end: Data?
    var start_revision: WireInt?
    var progress_notify: Bool?
    var prev_kv: Bool?
}

struct WireWatchRequest: Encodable {
    var create_request: WireWatchCreate
}

struct WireWatchEvent: Decodable {
    /// "PUT" is the enum's zero value, so a put arrives without "type".
    var type: String?
    var kv: WireKeyValue?
}

struct WireWatchResult: Decodable {
    var header: WireHeader?
    var watch_id: WireInt?
    var created: Bool?
    var canceled: Bool?
    var compact_revision: WireRevision?
    var cancel_reason: String?
    var events: [WireWatchEvent]?
}

struct WireWatchMessage: Decodable {
    var result: WireWatchResult?
    var error: WireStreamError?
}
