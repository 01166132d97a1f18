import EventLoop
import Glibc
import TLS

/// TLS towards the origin (`upstreams.NAME.tls`): after the TCP connect, any PROXY header in the
/// clear, then a non-blocking client handshake driven by the loop's readiness events, then the
/// session's reads and writes in place of the socket's (as nginx swaps recv/send).
extension UpstreamConnection {
    /// Runs the handshake as far as the socket allows; true once it is complete. A failure
    /// closes the connection with the reason in `failure`: the exchange treats it as a failed
    /// connect (server marked failed, next server tried, else 502).
    func handshake(_ tls: TLSConnection) -> Bool {
        handshaking = true
        guard writeClearPrefix() else { return false }
        switch tls.handshake() {
        case .done:
            clearPrefix = 0
            return true
        case .wantRead, .wantWrite:
            return false
        case .closed:
            failTLS("the server closed the connection during the TLS handshake")
        case .failed(let reason):
            failTLS(tls.verificationFailure.map { "certificate verification failed: \($0)" } ?? "TLS handshake failed: \(reason)")
        case .wantCertificate:
            failTLS("TLS handshake failed: unexpected certificate wait")
        }
        return false
    }

    /// The PROXY header goes out before the ClientHello; true once it is all written.
    private func writeClearPrefix() -> Bool {
        while outputSent < clearPrefix {
            let result: IOResult<Int>
            do {
                result = try syscall("send") { output.withUnsafeBytes { Glibc.send(fd, $0.baseAddress! + outputSent, clearPrefix - outputSent, Int32(MSG_NOSIGNAL)) } }
            } catch { fail(error); return false }
            guard case .done(let n) = result else { return false }
            outputSent += n
        }
        return true
    }

    /// Writes from `output[outputSent...]`; nil when it must wait (or failed and closed).
    func write(_ tls: TLSConnection) -> Int? {
        let status = output.withUnsafeBytes { tls.write(UnsafeRawBufferPointer(rebasing: $0[outputSent...])) }
        switch status {
        case .done(let n): return n
        case .wantRead, .wantWrite: return nil
        case .closed: fail(nil)
        case .failed(let reason): failTLS(reason)
        case .wantCertificate: failTLS("unexpected certificate wait")
        }
        return nil
    }

    /// One TLS read as a socket read would report it (`.done(0)` at the end of the stream); nil
    /// when it failed and the connection is closed.
    func read(_ tls: TLSConnection, into buffer: UnsafeMutableRawBufferPointer) -> IOResult<Int>? {
        switch tls.read(into: buffer) {
        case .done(let n): return .done(n)
        case .wantRead, .wantWrite: return .wouldBlock
        case .closed: return .done(0)
        case .failed(let reason): failTLS(reason)
        case .wantCertificate: failTLS("unexpected certificate wait")
        }
        return nil
    }

    private func failTLS(_ reason: String) {
        failure = reason
        fail(nil)
    }
}
