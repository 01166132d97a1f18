import Config
import EventLoop
import Metrics
import ProxyProtocol

/// Reads the PROXY header that a trusted load balancer sends ahead of a connection's own bytes:
/// it peeks, lets the sans-I/O parser say how long the header is, and consumes exactly that, so
/// the TLS ClientHello (or the HTTP request) that follows stays in the socket for its reader.
struct ProxyHeaderReader {
    let trusted: [CIDR]

    enum Outcome {
        /// More bytes are needed (wait for the next readiness, within the handshake timeout).
        case waiting
        /// The header was consumed: the client and the address it connected to, or nil when the
        /// connection's own stand (v2 LOCAL: the balancer's health check; v1 UNKNOWN).
        case done(client: SocketAddress?, local: SocketAddress?)
        /// Close the connection: the reason is for the debug log.
        case refused(String)
    }

    /// Whether the connecting peer may send a header at all.
    func trusts(_ peer: SocketAddress) -> Bool {
        let address = peer.rawAddress
        return trusted.contains { $0.contains(address) }
    }

    func read(_ fd: Int32, scratch: UnsafeMutableRawBufferPointer) -> Outcome {
        let window = UnsafeMutableRawBufferPointer(rebasing: scratch[0..<ProxyHeader.maxLength])
        let available: Int
        do {
            switch try Socket.peek(fd, into: window) {
            case .wouldBlock: return .waiting
            case .done(0): return .refused("closed before a complete PROXY header")
            case .done(let n): available = n
            }
        } catch {
            return .refused("reading the PROXY header: \(error)")
        }
        switch ProxyHeader.parse(UnsafeRawBufferPointer(rebasing: window[0..<available])) {
        case .incomplete:
            return .waiting
        case .invalid(let reason):
            return .refused(reason)
        case .header(let header):
            // The bytes were peeked, so a read of exactly that many returns them all.
            var consumed = 0
            while consumed < header.length {
                let rest = UnsafeMutableRawBufferPointer(rebasing: scratch[consumed..<header.length])
                guard case .done(let n)? = try? Socket.read(fd, into: rest), n > 0 else {
                    return .refused("the PROXY header could not be consumed")
                }
                consumed += n
            }
            return .done(client: header.source.flatMap { SocketAddress(rawAddress: $0.address, port: $0.port) },
                         local: header.destination.flatMap { SocketAddress(rawAddress: $0.address, port: $0.port) })
        }
    }
}
