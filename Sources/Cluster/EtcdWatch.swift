import ControlClient
import Foundation
import HTTP1

/// One watch of a key range (see `EtcdClient.watch`). `run` blocks on a background thread and
/// delivers each message; `cancel()` from any thread ends it promptly (the socket is shut down).
/// One-shot: after `run` returns or throws, create a new watch to resume (from the last
/// delivered revision + 1).
public final class EtcdWatch: Sendable {
    private let client: EtcdClient
    private let key: [UInt8]
    private let rangeEnd: [UInt8]
    private let fromRevision: Int64
    private let progressNotify: Bool
    private let cancellation = HTTPCancellation()

    init(client: EtcdClient, key: [UInt8], rangeEnd: [UInt8], fromRevision: Int64, progressNotify: Bool) {
        self.client = client; self.key = key; self.rangeEnd = rangeEnd
        self.fromRevision = fromRevision; self.progressNotify = progressNotify
    }

    public func cancel() { cancellation.cancel() }

    /// Streams events to `onBatch` until it returns false (then returns normally). Throws
    /// `.cancelled` after `cancel()`, `.compacted` when `fromRevision` is older than the store's
    /// history (re-read the range, then watch from its revision + 1), and `.unreachable` /
    /// `.timeout` when the stream breaks (watch again from the last revision seen + 1). Connecting
    /// fails over across endpoints like every call; a started stream does not.
    /// A batch without events is a progress notification: everything up to its revision was seen.
    public func run(_ onBatch: (EtcdWatchBatch) -> Bool) throws(EtcdError) {
        let request = WireWatchRequest(create_request: WireWatchCreate(
            key: Data(key), range_end: Data(rangeEnd), start_revision: fromRevision == 0 ? nil : WireInt(fromRevision),
            progress_notify: progressNotify ? true : nil))
        let body: [UInt8]
        do { body = Array(try JSONEncoder().encode(request)) } catch { throw EtcdError(.badResponse, "encoding the watch: \(error)") }
        let broken = try client.withFailover("watch", idempotent: true) { endpoint, timeout throws(EtcdError) in
            try self.attempt(endpoint, body, timeout: timeout, onBatch)
        }
        if let broken { throw broken }
    }

    /// One stream from one endpoint. Throws what may be retried on another endpoint (nothing was
    /// delivered yet); returns the error that ended a started stream, or nil when `onBatch`
    /// stopped it.
    private func attempt(_ endpoint: Int, _ body: [UInt8], timeout: Double,
                         _ onBatch: (EtcdWatchBatch) -> Bool) throws(EtcdError) -> EtcdError? {
        var refreshed = false
        while true {
            let headers = try client.authHeaders(endpoint, timeout: timeout)
            var framer = JSONStreamFramer()
            var status = 0
            var errorBody: [UInt8] = []
            var failure: EtcdError?
            var stopped = false
            var lastRevision = fromRevision - 1
            let http = client.makeClient()
            client.requests.add(1, ordering: .relaxed)
            do throws(HTTPClientError) {
                try http.stream(method: "POST", url: client.configuration.endpoints[endpoint].trimmingSuffix("/") + "/v3/watch",
                                headers: [HTTPField(name: "Content-Type", value: "application/json")] + headers, body: body,
                                idleTimeout: nil, cancellation: cancellation,
                                onHead: { head in status = head.status; return true },
                                onData: { bytes in
                    guard status == 200 else { errorBody += bytes; return errorBody.count < 1 << 16 }
                    let objects: [[UInt8]]
                    do throws(EtcdError) { objects = try framer.push(bytes) } catch { failure = error; return false }
                    for object in objects {
                        switch Self.interpret(object) {
                        case .created: continue
                        case .batch(let batch):
                            lastRevision = max(lastRevision, batch.revision)
                            if !onBatch(batch) { stopped = true; return false }
                        case .failed(let error): failure = error; return false
                        }
                    }
                    return true
                })
            } catch {
                if error.code == .cancelled { throw EtcdError(.cancelled, "watch cancelled") }
                let transport = EtcdClient.transportError(error, client.configuration.endpoints[endpoint])
                // Nothing delivered yet: another endpoint may do better.
                if status == 0 { throw transport }
                return EtcdError(transport.code, "watch stream broke after revision \(lastRevision) (\(transport.reason)); watch again from \(lastRevision + 1)")
            }
            if stopped { return nil }
            if status != 200 {
                let error = EtcdClient.error(from: HTTPResponse(status: status, headers: [], body: errorBody), "/v3/watch")
                if error.isStaleToken && !refreshed { client.forgetToken(); refreshed = true; continue }
                throw error
            }
            if let failure {
                if failure.isStaleToken && !refreshed && lastRevision < fromRevision { client.forgetToken(); refreshed = true; continue }
                if failure.isRetriable && lastRevision < fromRevision { throw failure }
                return failure
            }
            return EtcdError(.unreachable, "the watch stream ended after revision \(lastRevision); watch again from \(lastRevision + 1)")
        }
    }

    enum Message {
        case created
        case batch(EtcdWatchBatch)
        case failed(EtcdError)
    }

    /// One JSON message of the watch stream.
    static func interpret(_ object: [UInt8]) -> Message {
        let message: WireWatchMessage
        do { message = try JSONDecoder().decode(WireWatchMessage.self, from: Data(object)) } catch {
            return .failed(EtcdError(.badResponse, "watch message not understood (\(error)): \(String(decoding: object.prefix(200), as: UTF8.self))"))
        }
        if let error = message.error {
            return .failed(EtcdError.fromEtcd(code: error.grpc_code ?? 0, message: error.message ?? "watch failed"))
        }
        guard let result = message.result else {
            return .failed(EtcdError(.badResponse, "watch message without result: \(String(decoding: object.prefix(200), as: UTF8.self))"))
        }
        let compacted = result.compact_revision.int
        if compacted > 0 {
            return .failed(EtcdError(.compacted, "history before revision \(compacted) was compacted; read the range again and watch from its revision + 1",
                                     compactRevision: compacted))
        }
        if result.canceled == true {
            let why = result.cancel_reason ?? "no reason given"
            return .failed(EtcdError.fromEtcd(code: 0, message: "watch canceled by etcd: \(why)"))
        }
        let events = (result.events ?? []).map { event in
            EtcdWatchEvent(kind: event.type == "DELETE" ? .delete : .put, kv: event.kv?.decoded ?? EtcdKeyValue(
                key: [], value: [], createRevision: 0, modRevision: 0, version: 0, lease: 0))
        }
        if result.created == true && events.isEmpty { return .created }
        return .batch(EtcdWatchBatch(revision: result.header?.revision.int ?? 0, events: events))
    }
}

/// Splits a stream of concatenated JSON objects (the gateway writes one per message, newline
/// separated, but reads may cut them anywhere) into whole objects, by brace depth outside strings.
struct JSONStreamFramer {
    private var buffer: [UInt8] = []
    private var scanned = 0
    private var depth = 0
    private var inString = false
    private var escaped = false
    private var start: Int?
    let maxObject: Int

    init(maxObject: Int = 64 << 20) { self.maxObject = maxObject }

    mutating func push(_ bytes: [UInt8]) throws(EtcdError) -> [[UInt8]] {
        buffer += bytes
        var objects: [[UInt8]] = []
        var consumed = 0
        while scanned < buffer.count {
            let c = buffer[scanned]
            if start == nil {
                if c == UInt8(ascii: "{") { start = scanned; depth = 1 } else if !Self.isSpace(c) {
                    throw EtcdError(.badResponse, "watch stream: unexpected byte \(c) between messages")
                }
            } else if inString {
                if escaped { escaped = false } else if c == UInt8(ascii: "\\") { escaped = true } else if c == UInt8(ascii: "\"") { inString = false }
            } else if c == UInt8(ascii: "\"") {
                inString = true
            } else if c == UInt8(ascii: "{") || c == UInt8(ascii: "[") {
                depth += 1
            } else if c == UInt8(ascii: "}") || c == UInt8(ascii: "]") {
                depth -= 1
                if depth == 0, let s = start {
                    objects.append(Array(buffer[s...scanned]))
                    start = nil
                    consumed = scanned + 1
                }
            }
            scanned += 1
        }
        if start == nil { consumed = buffer.count }
        if consumed > 0 {
            buffer.removeFirst(consumed)
            scanned -= consumed
            if let s = start { start = s - consumed }
        }
        if buffer.count > maxObject { throw EtcdError(.badResponse, "watch message over \(maxObject) bytes") }
        return objects
    }

    private static func isSpace(_ c: UInt8) -> Bool { c == 0x20 || c == 0x0A || c == 0x0D || c == 0x09 }
}
