import Certificates
import Config
import EventLoop
import HTTP2
import Metrics
import Proxy
import TLS

/// What a loop needs from the configuration, swapped whole on reload.
final class RuntimeConfig: Sendable {
    let settings: Settings
    let router: Router
    /// Upstreams that open their connections with a PROXY header (usually none: then no request looks).
    let proxyHeaderUpstreams: Set<String>
    init(_ settings: Settings) {
        self.settings = settings
        router = Router(settings.routes)
        proxyHeaderUpstreams = Set(settings.upstreams.values.filter { $0.proxyProtocol != nil }.map(\.name))
    }
}

/// One event loop with its listeners, client connections and upstream pool. Everything here
/// runs on the loop's thread; other threads reach it only through `loop.execute`.
final class Worker: @unchecked Sendable {  // mutated only on `loop`'s thread
    let loop: EventLoop
    let challenges: ChallengeTable
    /// Obtains certificates while handshakes for names without one wait; nil: off.
    let onDemand: CertificateOnDemand?
    /// Looks up TLS-ALPN-01 answers while validators' handshakes wait; nil: off (no cluster).
    let alpnLookups: ALPNChallengeLookups?
    /// This loop's lines, handed to the shared writer in buffers.
    let accessLog: AccessLogBuffer
    private(set) var config: RuntimeConfig {
        didSet { timeouts = config.settings.timeouts; limits = config.settings.limits }
    }
    /// `config`'s timeouts and limits, kept as plain values: the loops read them on every
    /// request, and reading through `config` costs a retain and a release of it each time.
    private(set) var timeouts: Timeouts
    private(set) var limits: Limits
    let pool: UpstreamPool
    /// Shared read buffer: a connection keeps only the bytes it could not consume yet.
    let scratch = UnsafeMutableRawBufferPointer.allocate(byteCount: 16 * 1024, alignment: 16)
    /// Output buffers given back by connections with nothing in progress, lent to the next request
    /// that writes: an idle keep-alive connection holds no output buffer (nginx and HAProxy give
    /// theirs back too), and a busy one takes and returns one per request without a malloc. HTTP/2
    /// streams borrow their response body buffers here too (HTTP2Front.swift).
    private var spareOutputs: [[UInt8]] = []
    static let maxSpareOutputs = 256
    static let maxSpareCapacity = 16 * 1024
    /// nghttp2's memory for this loop's HTTP/2 connections, recycled across their streams.
    let http2Allocator = HTTP2Allocator()
    var listeners: [Listener] = []
    /// The open connections, each knowing its place (`ClientTransport.openIndex`): one is added
    /// and removed without hashing (the last takes the place of the one leaving).
    private(set) var connections: ContiguousArray<ClientTransport> = []
    private(set) var draining = false
    var onDrained: (() -> Void)?

    init(loop: EventLoop, challenges: ChallengeTable, onDemand: CertificateOnDemand?, alpnLookups: ALPNChallengeLookups?,
         accessLog: AccessLog, config: RuntimeConfig) {
        self.loop = loop; self.challenges = challenges; self.onDemand = onDemand; self.alpnLookups = alpnLookups
        self.accessLog = AccessLogBuffer(accessLog, loop: loop); self.config = config
        timeouts = config.settings.timeouts; limits = config.settings.limits
        pool = UpstreamPool(loop: loop, upstreams: config.settings.upstreams)
    }

    func lendOutput() -> [UInt8]? { spareOutputs.popLast() }

    /// Takes an emptied (fully written) `buffer` and keeps it for another request if it is not too big.
    func giveBack(_ buffer: inout [UInt8]) {
        var spare: [UInt8] = []
        swap(&spare, &buffer)
        guard spare.capacity <= Self.maxSpareCapacity, spareOutputs.count < Self.maxSpareOutputs else { return }
        spareOutputs.append(spare)
    }

    func apply(_ config: RuntimeConfig) {
        self.config = config
        pool.apply(config.settings.upstreams)
    }

    func opened(_ c: ClientTransport) {
        c.openIndex = connections.count
        connections.append(c)
        Metrics.shared.connectionOpened()
        if connections.count >= limits.maxConnectionsPerWorker {
            for l in listeners { l.pause() }
        }
    }

    /// `c` closed: it is let go once the loop's current batch is over, not here, as the event that
    /// closed it may have come through its front (an origin's response ending), whose references
    /// to it do not own it, with its methods still below this call.
    func closed(_ c: ClientTransport) {
        if c.openIndex >= 0 {
            loop.keepUntilBatchEnd(c)   // before the array, perhaps its last owner, lets go
            let last = connections.removeLast()
            if last !== c { connections[c.openIndex] = last; last.openIndex = c.openIndex }
            c.openIndex = -1
            Metrics.shared.connectionClosed()
        }
        if draining {
            if connections.isEmpty { onDrained?(); onDrained = nil }
        } else if connections.count < limits.maxConnectionsPerWorker {
            for l in listeners { l.resume() }
        }
    }

    /// Stops accepting, closes idle connections, lets the others finish their current request.
    /// `done` runs once the last connection closed and this loop's log lines were handed over.
    func drain(then done: @escaping () -> Void) {
        draining = true
        onDrained = { [accessLog] in accessLog.handOff(); done() }
        for l in listeners { l.close() }
        listeners = []
        pool.closeIdle()
        for c in connections { c.drain() }   // a copy: those closing now leave the original
        if connections.isEmpty { onDrained?(); onDrained = nil }
    }

    /// Drain deadline passed: cut whatever is left.
    func closeAll() {
        for c in connections { c.close() }
    }
}
