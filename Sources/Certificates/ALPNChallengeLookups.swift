import Foundation
import Locking

/// TLS-ALPN-01 answers this node does not hold yet, looked up elsewhere while the validator's
/// handshake waits. In a cluster the ordering node writes the answer to etcd and has the CA
/// validate once every node acknowledged it, or after a few seconds: a validation that reaches
/// a node whose watch is behind would get the ordinary certificate, fail, and cost a new order.
/// So a ClientHello offering "acme-tls/1" for a name without an answer here is held (once) while
/// `lookUp` reads the answer and presents it in the node's `ALPNChallengeTable`.
///
/// Bounded, as anyone can send such ClientHellos for made-up names: one lookup per name at a
/// time, `maxLookups` at once (past it, handshakes are not held), a name found with nothing is
/// not looked up again for `negativeTTL` seconds, and no handshake waits longer than `maxWait`.
/// `shouldWait` runs on event loops and only reads state; lookups run on threads of their own.
public final class ALPNChallengeLookups: HandshakeHold, @unchecked Sendable {  // mutable state is in `state`
    /// Blocking, on a background thread: finds the answer for `name` elsewhere and presents it in
    /// the table the store reads; true when the table holds an answer for `name` afterwards.
    public typealias LookUp = @Sendable (_ name: String) -> Bool

    private let lookUp: LookUp
    public let maxWait: Double
    let maxLookups: Int
    let negativeTTL: Double
    /// Names remembered as having nothing; past it, expired ones are dropped, then nothing is added.
    static let maxNegative = 4096
    /// Timers and resumptions only, never a lookup: a lookup blocks (etcd down takes its whole
    /// deadline), so each runs on a thread of its own (`maxLookups` at most), and a queue shared
    /// with them could not release the handshakes on time.
    private let queue = DispatchQueue(label: "edgeproxy.alpn-challenge-lookups")

    private struct Waiter {
        var id: Int
        var resume: @Sendable () -> Void
    }

    private struct State {
        /// Names being looked up now.
        var lookups: Set<String> = []
        var waiters: [String: [Waiter]] = [:]
        /// Names found with nothing, until when (uptime nanoseconds).
        var nothing: [String: UInt64] = [:]
        var nextID = 0
        var status = Status()
    }
    private let state = Locked(State())

    public struct Status: Sendable, Equatable {
        /// Handshakes held for an answer.
        public var held = 0
        /// Lookups that found an answer.
        public var found = 0
        /// Lookups that found nothing (or failed).
        public var missed = 0
        /// Handshakes not held because `maxLookups` names were being looked up already.
        public var busy = 0
    }
    public var status: Status { state.withLock { $0.status } }

    /// `maxWait`: the longest a handshake is held, in seconds. Short: the answer is in etcd before
    /// the CA is asked to validate, so a lookup is quick or futile, and the validator is waiting.
    public init(maxWait: Double = 2, maxLookups: Int = 8, negativeTTL: Double = 1, lookUp: @escaping LookUp) {
        self.maxWait = maxWait; self.maxLookups = maxLookups; self.negativeTTL = negativeTTL; self.lookUp = lookUp
    }

    /// On the loop, inside the ClientHello callback (never blocking): hold a handshake offering
    /// "acme-tls/1" for `name`, which has no answer here?
    public func shouldWait(for name: String) -> Bool {
        let now = DispatchTime.now().uptimeNanoseconds
        return state.withLock { s in
            if s.lookups.contains(name) { return true }
            if let until = s.nothing[name], until > now { return false }
            guard s.lookups.count < maxLookups else { s.status.busy += 1; return false }
            return true
        }
    }

    /// On the loop, once the handshake is held: `resume` runs on another thread when the lookup
    /// of `name` ends (found or not), or after `maxWait`, whichever comes first.
    public func wait(for name: String, resume: @escaping @Sendable () -> Void) {
        let now = DispatchTime.now().uptimeNanoseconds
        let (id, start) = state.withLock { s -> (Int?, Bool) in
            let running = s.lookups.contains(name)
            // Between `shouldWait` and here another loop may have filled the slots, or the name's
            // lookup ended: go on at once with what there is.
            guard running || (s.nothing[name] ?? 0) <= now && s.lookups.count < maxLookups else { return (nil, false) }
            s.nextID += 1
            s.status.held += 1
            s.waiters[name, default: []].append(Waiter(id: s.nextID, resume: resume))
            if !running { s.lookups.insert(name) }
            return (s.nextID, !running)
        }
        guard let id else { return queue.async(execute: resume) }
        queue.asyncAfter(deadline: .now() + maxWait) { [self] in release(name, only: id) }
        if start {
            let thread = Thread { [self] in run(name) }
            thread.name = "edgeproxy-alpn-lookup"
            thread.start()
        }
    }

    private func run(_ name: String) {
        let found = lookUp(name)
        let until = DispatchTime.now().uptimeNanoseconds + UInt64(negativeTTL * 1e9)
        state.withLock { s in
            s.lookups.remove(name)
            if found { s.status.found += 1; return }
            s.status.missed += 1
            if s.nothing.count >= Self.maxNegative {
                let now = DispatchTime.now().uptimeNanoseconds
                s.nothing = s.nothing.filter { $0.value > now }
            }
            if s.nothing.count < Self.maxNegative { s.nothing[name] = until }
        }
        release(name)
    }

    private func release(_ name: String, only id: Int? = nil) {
        let released = state.withLock { s -> [Waiter] in
            guard let list = s.waiters[name] else { return [] }
            let out = id.map { id in list.filter { $0.id == id } } ?? list
            let rest = list.filter { w in !out.contains { $0.id == w.id } }
            s.waiters[name] = rest.isEmpty ? nil : rest
            return out
        }
        for w in released { w.resume() }
    }
}
