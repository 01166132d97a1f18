// Fuzzes what the cluster reads from etcd (Sources/Cluster): the JSON gateway's answers (range,
// txn, put, delete, lease grant and keep-alive, authenticate, error bodies), the watch stream (the
// framing of its streamed objects, each watch message), the records the nodes store (certificates,
// the ACME account, session-ticket keys, members, renewal agreements and renewalInfo, the local
// cache's entries, re-sealing) and sealed values (`Sealer`). Invariants: nothing traps; a bad answer
// is a `.badResponse` and a bad record a `.badRecord`; the framer yields the same objects whole and
// cut at two points, each one a whitespace-separated piece of what it was given, in order; an
// answer, message or record that decodes, written out again as etcd or the product writes it,
// decodes to the same; the revisions handed on leave room for the "+ 1" the watch and the sync
// thread resume from; a token taken from etcd is a valid HTTP field value (it goes into
// Authorization as it is); open(seal(x)) == x for a key made from fuzzed bytes, and opening any
// bytes throws the SealerError their header calls for.
// Input: 1 byte (what), then per kind the parameter bytes described at each case, then the body.
import ACME
@testable import Cluster
import ControlClient
import Foundation
import FuzzSupport
import TLS

extension FuzzInput {
    mutating func take(_ count: Int) -> [UInt8] { (0..<count).map { _ in byte() } }
}

/// `a` and `b` say the same (results without Equatable: every stored property, as reflected).
func same<T>(_ a: T, _ b: T) -> Bool { String(reflecting: a) == String(reflecting: b) }

// MARK: The gateway's JSON, written as etcd writes it

/// etcd v3's JSON gateway: int64 as strings, bytes as base64, fields at their zero value left out.
enum Gateway {
    static func int(_ name: String, _ value: Int64) -> String? { value == 0 ? nil : "\"\(name)\":\"\(value)\"" }
    static func bytes(_ name: String, _ value: [UInt8]) -> String? { value.isEmpty ? nil : "\"\(name)\":\"\(Data(value).base64EncodedString())\"" }
    static func string(_ name: String, _ value: String) -> String? {
        value.isEmpty ? nil : "\"\(name)\":" + String(decoding: try! JSONEncoder().encode(value), as: UTF8.self)
    }
    static func object(_ fields: String?...) -> String { "{" + fields.compactMap { $0 }.joined(separator: ",") + "}" }
    static func array(_ name: String, _ items: [String]) -> String? { items.isEmpty ? nil : "\"\(name)\":[" + items.joined(separator: ",") + "]" }
    static func header(_ revision: Int64) -> String { "\"header\":" + object(int("revision", revision)) }

    static func kv(_ kv: EtcdKeyValue) -> String {
        object(bytes("key", kv.key), int("create_revision", kv.createRevision), int("mod_revision", kv.modRevision),
               int("version", kv.version), bytes("value", kv.value), int("lease", kv.lease))
    }
    static func range(_ r: EtcdRangeResult) -> String {
        object(header(r.revision), array("kvs", r.kvs.map(kv)), r.more ? "\"more\":true" : nil, int("count", r.count))
    }
    static func put(_ r: EtcdPutResult) -> String { object(header(r.revision)) }
    static func delete(_ r: EtcdDeleteResult) -> String { object(header(r.revision), int("deleted", r.deleted)) }
    static func txn(_ r: EtcdTxnResult) -> String {
        let responses = r.responses.map { op -> String in
            switch op {
            case .range(let range): return "{\"response_range\":\(Self.range(range))}"
            case .put(let put): return "{\"response_put\":\(Self.put(put))}"
            case .delete(let delete): return "{\"response_delete_range\":\(Self.delete(delete))}"
            }
        }
        return object(header(r.revision), r.succeeded ? "\"succeeded\":true" : nil, array("responses", responses))
    }
    static func lease(_ l: EtcdLease) -> String { object(header(l.revision), int("ID", l.id), int("TTL", l.ttl)) }
    static func watch(_ batch: EtcdWatchBatch) -> String {
        let events = batch.events.map { e in object(e.kind == .delete ? "\"type\":\"DELETE\"" : nil, "\"kv\":" + kv(e.kv)) }
        return "{\"result\":" + object(header(batch.revision), array("events", events)) + "}"
    }
}

/// The sync thread resumes from a revision + 1 (`ClusterSync.run`, `EtcdWatch`): the list's
/// revision, and the highest mod revision or header revision applied.
func requireRoom(_ revision: Int64, _ what: @autoclosure () -> String) {
    require(revision < Int64.max, "\(what()): revision \(revision) leaves no room for the next one")
}

func requireRoom(_ r: EtcdRangeResult) {
    requireRoom(r.revision, "range header")
    for kv in r.kvs { requireRoom(kv.modRevision, "range mod_revision") }
}

// MARK: Unary answers

/// Decodes `body` as the answer to `path`; a failure is `.badResponse`.
func decode<T: Decodable>(_ path: String, _ body: [UInt8]) -> T? {
    do throws(EtcdError) {
        let value: T = try EtcdClient.decode(path, body)
        return value
    } catch {
        require(error.code == .badResponse, "\(path) failed with \(error)")
        return nil
    }
}

func decodeAgain<T: Decodable>(_ path: String, _ json: String) -> T {
    guard let value: T = decode(path, Array(json.utf8)) else { fatalError("invariant broken: \(path) written out does not decode: \(json)") }
    return value
}

func range(_ body: [UInt8]) {
    guard let wire: WireRangeResponse = decode("/v3/kv/range", body) else { return }
    let result = wire.decoded
    requireRoom(result)
    let json = Gateway.range(result)
    let again: WireRangeResponse = decodeAgain("/v3/kv/range", json)
    require(same(again.decoded, result), "range \(result) written out as \(json) reads \(again.decoded)")
}

func txn(_ body: [UInt8]) {
    guard let wire: WireTxnResponse = decode("/v3/kv/txn", body) else { return }
    let result = wire.decoded
    requireRoom(result.revision, "txn header")
    for case .range(let r) in result.responses { requireRoom(r) }
    let json = Gateway.txn(result)
    let again: WireTxnResponse = decodeAgain("/v3/kv/txn", json)
    require(same(again.decoded, result), "txn \(result) written out as \(json) reads \(again.decoded)")
}

/// Parameter: which answer (put, delete, compaction, revoke).
func answer(_ which: UInt8, _ body: [UInt8]) {
    switch which % 4 {
    case 0:
        guard let wire: WirePutResponse = decode("/v3/kv/put", body) else { return }
        requireRoom(wire.decoded.revision, "put header")
        let again: WirePutResponse = decodeAgain("/v3/kv/put", Gateway.put(wire.decoded))
        require(same(again.decoded, wire.decoded), "put \(wire.decoded) reads back as \(again.decoded)")
    case 1:
        guard let wire: WireDeleteRangeResponse = decode("/v3/kv/deleterange", body) else { return }
        requireRoom(wire.decoded.revision, "delete header")
        let again: WireDeleteRangeResponse = decodeAgain("/v3/kv/deleterange", Gateway.delete(wire.decoded))
        require(same(again.decoded, wire.decoded), "delete \(wire.decoded) reads back as \(again.decoded)")
    case 2:
        let _: WireCompactionResponse? = decode("/v3/kv/compaction", body)
    default:
        let _: WireLeaseResponse? = decode("/v3/lease/revoke", body)
    }
}

/// Parameters: grant or keep-alive, then 8 bytes of lease id (big-endian) for a keep-alive.
func lease(_ input: inout FuzzInput) {
    let keepAlive = input.byte() % 2 == 1
    let id = input.take(8).reduce(Int64(0)) { $0 << 8 | Int64($1) }
    let body = Array(input.rest)
    if keepAlive {
        guard let wire: WireLeaseKeepAliveResponse = decode("/v3/lease/keepalive", body) else { return }
        let lease: EtcdLease
        do throws(EtcdError) { lease = try wire.renewed(id: id) } catch {
            require(error.code == .etcd || error.code == .auth || error.code == .compacted, "keep-alive failed with \(error)")
            return
        }
        require(lease.id == id && lease.ttl >= 0, "keep-alive of \(id) gave \(lease)")
        let again: WireLeaseKeepAliveResponse = decodeAgain("/v3/lease/keepalive", "{\"result\":\(Gateway.lease(lease))}")
        require((try? again.renewed(id: id)).map { same($0, lease) } == true, "keep-alive \(lease) reads back otherwise")
    } else {
        guard let wire: WireLeaseResponse = decode("/v3/lease/grant", body) else { return }
        let lease: EtcdLease
        do throws(EtcdError) { lease = try wire.granted() } catch {
            require(error.code == .etcd && !(wire.error ?? "").isEmpty, "grant failed with \(error)")
            return
        }
        let again: WireLeaseResponse = decodeAgain("/v3/lease/grant", Gateway.lease(lease))
        require((try? again.granted()).map { same($0, lease) } == true, "grant \(lease) reads back otherwise")
    }
}

/// The token goes into `Authorization` as it is: it must be a field value (RFC 9110 §5.5), no
/// CR, LF, NUL or other control, no white space at either end.
func authenticate(_ body: [UInt8]) {
    let taken: String?
    do throws(EtcdError) { taken = try EtcdClient.token(from: body) } catch {
        return require(error.code == .badResponse, "token refused with \(error)")
    }
    guard let token = taken else { return }
    let bytes = Array(token.utf8)
    require(!bytes.isEmpty, "empty token taken")
    require(!bytes.contains { ($0 < 0x20 && $0 != 0x09) || $0 == 0x7F }, "token \(token.debugDescription) holds a control character")
    require(bytes.first != 0x20 && bytes.first != 0x09 && bytes.last != 0x20 && bytes.last != 0x09, "token \(token.debugDescription) starts or ends in white space")
    let json = Gateway.object(Gateway.header(1), Gateway.string("token", token))
    require((try? EtcdClient.token(from: Array(json.utf8))) == token, "token \(token.debugDescription) written out as \(json) reads otherwise")
}

/// Parameter: the HTTP status (400 + it).
func failure(_ status: UInt8, _ body: [UInt8]) {
    let error = EtcdClient.error(from: HTTPResponse(status: 400 + Int(status), headers: [], body: body), "/v3/kv/range")
    if let wire = try? JSONDecoder().decode(WireError.self, from: Data(body)), let code = wire.code {
        require(error.etcdCode == code, "etcd's code \(code) became \(error)")
        require([EtcdError.Code.etcd, .auth, .compacted].contains(error.code), "etcd's answer \(wire) became \(error)")
    } else {
        require(error.code == .badResponse, "a body without a code became \(error)")
    }
    _ = (error.description, error.isRetriable, error.isStaleToken, error.isSafeToResend)
    if error.mayHaveBeenApplied { require(error.message != nil, "\(error) may have been applied without etcd saying so") }
}

// MARK: The watch stream

/// One watch message: what `interpret` makes of it, checked against the message itself; a batch
/// written out as etcd writes it reads back the same.
func message(_ object: [UInt8]) {
    switch EtcdWatch.interpret(object) {
    case .created:
        let wire = try? JSONDecoder().decode(WireWatchMessage.self, from: Data(object))
        require(wire?.error == nil && wire?.result?.created == true && (wire?.result?.events ?? []).isEmpty,
                "\(String(decoding: object, as: UTF8.self)) read as created")
    case .batch(let batch):
        requireRoom(batch.revision, "watch header")
        for event in batch.events { requireRoom(event.kv.modRevision, "watch event mod_revision") }
        let json = Gateway.watch(batch)
        guard case .batch(let again) = EtcdWatch.interpret(Array(json.utf8)) else {
            return require(false, "batch \(batch) written out as \(json) is not a batch")
        }
        require(again.revision == batch.revision && again.events == batch.events, "batch \(batch) written out as \(json) reads \(again)")
    case .failed(let error):
        require(!error.reason.isEmpty, "a failure without a reason")
        if error.code == .compacted, let revision = error.compactRevision { require(revision > 0, "compacted at \(revision)") }
    }
}

struct Framed {
    var objects: [[UInt8]] = []
    var failed = false
}

/// Pushes `chunks` into one framer, as reads of the stream arrive, until one throws.
func frame(_ chunks: [ArraySlice<UInt8>], maxObject: Int) -> Framed {
    var framer = JSONStreamFramer(maxObject: maxObject)
    var framed = Framed()
    for chunk in chunks {
        do throws(EtcdError) { framed.objects += try framer.push(Array(chunk)) } catch {
            require(error.code == .badResponse, "framing failed with \(error)")
            framed.failed = true
            return framed
        }
    }
    return framed
}

/// The objects are pieces of `stream`, in order, from its start, with only white space between
/// them: nothing consumed that was not given, nothing skipped, nothing made up.
func requirePieces(_ framed: Framed, of stream: [UInt8], _ how: String) {
    var at = 0
    for object in framed.objects {
        while at < stream.count, [0x20, 0x0A, 0x0D, 0x09].contains(stream[at]) { at += 1 }
        require(at + object.count <= stream.count && Array(stream[at..<(at + object.count)]) == object,
                "\(how): object \(String(decoding: object, as: UTF8.self).debugDescription) is not the next piece at \(at)")
        require(object.first == UInt8(ascii: "{") && (object.last == UInt8(ascii: "}") || object.last == UInt8(ascii: "]")),
                "\(how): object \(String(decoding: object, as: UTF8.self).debugDescription) is not delimited")
        at += object.count
    }
}

/// Parameters: two split points, and a limit on an object's size (0: the default).
func stream(_ input: inout FuzzInput) {
    let a = input.byte(), b = input.byte(), limit = input.byte()
    let stream = Array(input.rest)
    let whole = frame([stream[...]], maxObject: 64 << 20)
    requirePieces(whole, of: stream, "whole")
    let pieces = frame(split(stream[...], at: a, b), maxObject: 64 << 20)
    requirePieces(pieces, of: stream, "in pieces")
    require(pieces.failed == whole.failed, "whole \(whole.failed ? "fails" : "frames"), in pieces \(pieces.failed ? "fails" : "frames")")
    if !whole.failed { require(pieces.objects == whole.objects, "\(pieces.objects.count) objects in pieces, \(whole.objects.count) whole") }
    if stream.count <= 512 {
        let bytes = frame(stream.indices.map { stream[$0...$0] }, maxObject: 64 << 20)
        require(bytes.failed == whole.failed && (whole.failed || bytes.objects == whole.objects), "byte by byte frames otherwise")
    }
    if limit != 0 {
        // A limit only ever stops the stream early: what comes before is what comes without it.
        for chunks in [[stream[...]], split(stream[...], at: a, b)] {
            let limited = frame(chunks, maxObject: Int(limit))
            requirePieces(limited, of: stream, "limited")
            if !whole.failed {
                require(limited.objects.count <= whole.objects.count && Array(whole.objects.prefix(limited.objects.count)) == limited.objects,
                        "a limit of \(limit) changed the objects")
                if !limited.failed { require(limited.objects == whole.objects, "a limit of \(limit) dropped objects") }
            }
        }
    }
    for object in whole.objects.prefix(8) { message(object) }
}

// MARK: Records

/// The store's records, sealed with the second key and re-sealed under the first (rotation).
let sealer = try! Sealer(keys: [Sealer.Key([UInt8](repeating: 2, count: 32)), Sealer.Key([UInt8](repeating: 1, count: 32))])
let layout = KeyLayout(prefix: "/edgeproxy/")
let certificateKey = layout.certificate("a.example")

/// A store that is never reached: decoding needs none.
struct NoStore: SharedStore {
    static let error = ClusterError(.unreachable, "no store")
    func get(_ key: String) throws(ClusterError) -> StoredValue? { throw Self.error }
    func list(prefix: String) throws(ClusterError) -> (values: [StoredValue], revision: Int64) { throw Self.error }
    func put(_ key: String, _ value: [UInt8], lease: Int64?) throws(ClusterError) -> Int64 { throw Self.error }
    func create(_ key: String, _ value: [UInt8], lease: Int64?) throws(ClusterError) -> (created: Bool, existing: StoredValue?, revision: Int64) { throw Self.error }
    func put(_ key: String, _ value: [UInt8], fence: String, fenceRevision: Int64) throws(ClusterError) -> Int64? { throw Self.error }
    func put(_ key: String, _ value: [UInt8], ifModRevision: Int64) throws(ClusterError) -> Bool { throw Self.error }
    func putAll(_ writes: [ConditionalWrite]) throws(ClusterError) -> Bool { throw Self.error }
    func delete(_ key: String) throws(ClusterError) -> Int64 { throw Self.error }
    func deletePrefix(_ prefix: String) throws(ClusterError) -> Int64 { throw Self.error }
    func delete(_ key: String, ifCreateRevision: Int64) throws(ClusterError) -> Bool { throw Self.error }
    func grantLease(ttl: Int) throws(ClusterError) -> Int64 { throw Self.error }
    func keepAlive(lease: Int64) throws(ClusterError) -> Bool { throw Self.error }
    func revoke(lease: Int64) throws(ClusterError) { throw Self.error }
    func watch(prefix: String, from revision: Int64, cancel: WatchCancel, _ handler: ([StoreEvent]) -> Bool) throws(ClusterError) { throw Self.error }
}

/// Dates are written with milliseconds: read back, they are within one of what was read.
func near(_ a: Date, _ b: Date) -> Bool { abs(a.timeIntervalSince1970 - b.timeIntervalSince1970) < 0.001 }

/// Decodes `body` as `T` with the records' coding; when it decodes, it encodes, that decodes, and
/// encodes to the same bytes again; `alike` compares the two values (dates to the millisecond).
@discardableResult
func roundTrip<T: Codable>(_ type: T.Type, _ body: [UInt8], _ alike: (T, T) -> Bool) -> T? {
    let decoder = RecordCoding.decoder(), encoder = RecordCoding.encoder()
    guard let value = try? decoder.decode(type, from: Data(body)) else { return nil }
    guard let json = try? encoder.encode(value) else { require(false, "\(value) does not encode"); return nil }
    guard let again = try? decoder.decode(type, from: json) else {
        require(false, "\(value) written as \(String(decoding: json, as: UTF8.self)) does not decode"); return nil
    }
    require(alike(value, again), "\(value) written as \(String(decoding: json, as: UTF8.self)) reads \(again)")
    require((try? encoder.encode(again)) == json, "\(value) does not write the same twice")
    return value
}

func alike(_ a: CertificateRecord, _ b: CertificateRecord) -> Bool {
    a.names == b.names && a.chain == b.chain && a.sealedKey == b.sealedKey && a.serial == b.serial && near(a.notAfter, b.notAfter)
        && a.source == b.source && a.node == b.node && near(a.storedAt, b.storedAt)
}

func alike(_ a: RenewalWindow?, _ b: RenewalWindow?) -> Bool {
    guard let a, let b else { return a == nil && b == nil }
    return near(a.start, b.start) && near(a.end, b.end)
}

/// A record opens to the same after the sealer seals it again under `context`.
func requireReseals(_ plaintext: [UInt8], _ context: String) {
    require((try? sealer.openRecord(sealer.sealRecord(plaintext, context: context), context: context)) == plaintext,
            "\(context): sealing again does not open to the same")
}

/// Parameter: which record.
func record(_ which: UInt8, _ body: [UInt8]) {
    switch which % 8 {
    case 0:
        roundTrip(CertificateRecord.self, body, alike)
        let opened: (record: CertificateRecord, chainPEM: [UInt8], keyPEM: [UInt8])
        do throws(ClusterError) { opened = try CertificateRecord.decode(body, etcdKey: certificateKey, sealer: sealer) } catch {
            return require(error.code == .badRecord, "certificate record refused with \(error)")
        }
        require(opened.chainPEM == Array(opened.record.chain.utf8), "chain \(opened.record.chain.debugDescription) handed on otherwise")
        requireReseals(opened.keyPEM, certificateKey)
        guard let json = try? RecordCoding.encoder().encode(opened.record) else { return require(false, "\(opened.record) does not encode") }
        require((try? CertificateRecord.decode([UInt8](json), etcdKey: certificateKey, sealer: sealer).keyPEM) == opened.keyPEM,
                "certificate record written out does not open to the same key")
    case 1:
        let key = layout.account(ca: "acme-v02.api.letsencrypt.org")
        let account: StoredAccount
        do throws(ClusterError) { account = try AccountRecord.decode(body, etcdKey: key, sealer: sealer) } catch {
            return require(error.code == .badRecord, "account record refused with \(error)")
        }
        guard let bytes = try? AccountRecord.encode(account, etcdKey: key, sealer: sealer) else { return require(false, "\(account) does not encode") }
        require((try? AccountRecord.decode(bytes, etcdKey: key, sealer: sealer)) == account, "account \(account) reads back otherwise")
    case 2:
        let tickets = TicketRecords(store: NoStore(), layout: layout, sealer: sealer, rotation: 3600)
        let etcdKey = tickets.key(for: 1_750_000_000)
        let ticket: TicketKeys.Key
        do throws(ClusterError) { ticket = try tickets.decode(StoredValue(key: etcdKey, value: body, createRevision: 1, modRevision: 1)) } catch {
            return require(error.code == .badRecord, "ticket record refused with \(error)")
        }
        require(ticket.material.count == 80, "ticket key of \(ticket.material.count) bytes")
        guard let bytes = try? tickets.record(ticket, at: etcdKey) else { return require(false, "ticket key \(ticket.notBefore) does not encode") }
        let again = try? tickets.decode(StoredValue(key: etcdKey, value: bytes, createRevision: 1, modRevision: 1))
        require(again == ticket, "ticket key not before \(ticket.notBefore) reads back as \(String(describing: again?.notBefore))")
    case 3:
        roundTrip(ClusterNode.Member.self, body) {
            $0.node == $1.node && near($0.started, $1.started) && $0.revision == $1.revision && $0.certificates == $1.certificates
                && near($0.updated, $1.updated)
        }
    case 4:
        roundTrip(ClusterACMEStorage.RenewalWire.self, body) { $0.serial == $1.serial && alike($0.window, $1.window) && near($0.renewAt, $1.renewAt) }
    case 5:
        roundTrip(ClusterACMEStorage.RenewalInfoWire.self, body) {
            $0.serial == $1.serial && alike($0.info.window, $1.info.window) && $0.info.retryAfter == $1.info.retryAfter
                && near($0.info.fetched, $1.info.fetched)
        }
    case 6:
        // The local cache's files hold etcd's bytes as they came.
        guard let entry = try? JSONDecoder().decode(LocalCache.Entry.self, from: Data(body)) else { return }
        guard let json = try? JSONEncoder().encode(entry), let again = try? JSONDecoder().decode(LocalCache.Entry.self, from: json) else {
            return require(false, "cache entry for \(entry.key.debugDescription) does not read back")
        }
        require(again.key == entry.key && again.modRevision == entry.modRevision && again.value == entry.value, "cache entry reads back otherwise")
    default:
        reseal(body)
    }
}

/// `cluster reseal` on one record: nil for what is not sealed, [] for what the first key sealed;
/// otherwise a record whose key opens to the same, sealed under the first key, the rest unchanged.
func reseal(_ body: [UInt8]) {
    let maintenance = ClusterMaintenance(store: NoStore(), layout: layout, sealer: sealer, node: "n1")
    let value = StoredValue(key: certificateKey, value: body, createRevision: 1, modRevision: 1)
    let rewritten: [UInt8]?
    do throws(ClusterError) { rewritten = try maintenance.resealedBytes(value) } catch {
        return require(error.code == .badRecord, "re-sealing failed with \(error)")
    }
    guard let rewritten, !rewritten.isEmpty else { return }
    func fields(_ bytes: [UInt8]) -> (NSDictionary, [UInt8])? {
        guard var object = (try? JSONSerialization.jsonObject(with: Data(bytes))) as? [String: Any], let text = object["sealed_key"] as? String,
              let sealed = Data(base64Encoded: text), let plain = try? sealer.openRecord([UInt8](sealed), context: certificateKey) else { return nil }
        object["sealed_key"] = nil
        return (object as NSDictionary, plain)
    }
    guard let before = fields(body), let after = fields(rewritten) else {
        return require(false, "re-sealed \(String(decoding: rewritten, as: UTF8.self)) does not open")
    }
    require(after.1 == before.1, "re-sealing changed the sealed value")
    require(after.0.isEqual(before.0), "re-sealing changed the record: \(before.0) became \(after.0)")
    require((try? maintenance.resealedBytes(StoredValue(key: certificateKey, value: rewritten, createRevision: 1, modRevision: 2))) == [],
            "a re-sealed record is not sealed under the first key")
}

// MARK: Sealed values

/// Parameters: 32 key bytes, a context length and context, a byte to flip; the rest is sealed and opened.
func sealed(_ input: inout FuzzInput) {
    let keyBytes = input.take(32)
    let context = String(decoding: input.take(Int(input.byte() % 64)), as: UTF8.self)
    let flip = input.byte()
    let payload = Array(input.rest)
    let key = try! Sealer.Key(keyBytes)
    let sealer = try! Sealer(keys: [key])

    // Anything opened: the error its header calls for, never a trap.
    do throws(SealerError) {
        let plain = try sealer.open(payload, context: context)
        require(plain.count == payload.count - 40, "\(payload.count) sealed bytes opened to \(plain.count)")
    } catch {
        switch Sealer.keyID(of: payload) {
        case nil: require(error.code == .notSealed, "unsealed bytes refused with \(error)")
        case let id? where id != key.id: require(error.code == .missingKey && error.keyID == id, "another key's record refused with \(error)")
        default: require(error.code == .authentication, "a record of this key refused with \(error)")
        }
    }

    // Sealed, it opens to the same, only under its context, not once a byte changes.
    guard let box = try? sealer.seal(payload, context: context) else { return require(false, "sealing \(payload.count) bytes failed") }
    require(box.count == payload.count + 40 && Sealer.keyID(of: box) == key.id, "sealed to \(box.count) bytes under \(String(describing: Sealer.keyID(of: box)))")
    require((try? sealer.open(box, context: context)) == payload, "open(seal(x)) != x")
    do throws(SealerError) { _ = try sealer.open(box, context: context + "/"); require(false, "opened under another context") } catch {
        require(error.code == .authentication, "another context refused with \(error)")
    }
    var tampered = box
    tampered[Int(flip) % box.count] ^= 0x01
    require((try? sealer.open(tampered, context: context)) == nil, "opened with byte \(Int(flip) % box.count) changed")

    // Rotation: a second sealer with a new first key still opens it.
    let newer = try! Sealer.Key(keyBytes.map { ~$0 })
    let rotated = try! Sealer(keys: [newer, key])
    require((try? rotated.open(box, context: context)) == payload, "the old key no longer opens after rotation")

    // Key files: 32 bytes as they are, or text, always 32 bytes.
    if let decoded = Sealer.decodeKeyFile(payload) {
        require(decoded.count == 32 && (payload.count != 32 || decoded == payload), "key file of \(payload.count) bytes read as \(decoded.count)")
    }
}

func test(_ data: [UInt8]) {
    var input = FuzzInput(data)
    switch input.byte() % 10 {
    case 0: stream(&input)
    case 1: message(Array(input.rest))
    case 2: range(Array(input.rest))
    case 3: txn(Array(input.rest))
    case 4: let which = input.byte(); answer(which, Array(input.rest))
    case 5: lease(&input)
    case 6: authenticate(Array(input.rest))
    case 7: let status = input.byte(); failure(status, Array(input.rest))
    case 8: let which = input.byte(); record(which, Array(input.rest))
    default: sealed(&input)
    }
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>?, _ size: Int) -> Int32 {
    test(FuzzInput(data, size).bytes)
    return 0
}

@main enum Main { static func main() { fuzzMain(fuzz) } }
