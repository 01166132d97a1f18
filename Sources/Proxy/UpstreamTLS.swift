import Config
import EventLoop
import Glibc
import Locking
import Logs
import TLS

/// Every TLS upstream's client context, by upstream name: built once per configuration (start,
/// reload) and shared by every loop's pool, as `UpstreamHealth` shares health. Looked up when a
/// pool builds a group, never per request.
public final class UpstreamTLSContexts: Sendable {
    public static let shared = UpstreamTLSContexts()
    private let table = Locked<[String: UpstreamTLSContext]>([:])

    public init() {}

    /// Builds the contexts of a new configuration, reading the files again (a renewed CA or client
    /// certificate takes effect on reload). Throws, changing nothing, when one cannot be built.
    /// Call before the loops take the configuration.
    public func apply(_ upstreams: [String: Upstream]) throws(TLSError) {
        var next: [String: UpstreamTLSContext] = [:]
        for (name, upstream) in upstreams.sorted(by: { $0.key < $1.key }) {
            guard let tls = upstream.tls else { continue }
            do { next[name] = try Self.make(tls) } catch { throw TLSError("upstreams.\(name).tls", reason: error.description) }
        }
        table.withLock { $0 = next }
    }

    /// The applied context of `upstream`; built here when none was (a pool made without `apply`),
    /// nil (logged) when that fails.
    func context(for upstream: Upstream) -> UpstreamTLSContext? {
        guard let tls = upstream.tls else { return nil }
        return table.withLock { table in
            if let known = table[upstream.name] { return known }
            do {
                let made = try Self.make(tls)
                table[upstream.name] = made
                return made
            } catch {
                Log.error("upstream \(upstream.name): \(error)")
                return nil
            }
        }
    }

    /// The context now applied for `name`, to tell whether a pool's group still uses it.
    public func current(_ name: String) -> UpstreamTLSContext? { table.withLock { $0[name] } }

    private static func make(_ tls: UpstreamTLS) throws(TLSError) -> UpstreamTLSContext {
        try UpstreamTLSContext(caFile: tls.caFile, verify: tls.verify, clientCertificate: tls.clientCertificate, clientKey: tls.clientKey)
    }
}

extension UpstreamServer {
    /// The TLS side of a new connection to this server over `fd`; nil for a plain upstream.
    func startTLS(on fd: Int32) throws(SystemError) -> TLSConnection? {
        guard let settings = settings.tls else { return nil }
        guard let context = tls else {
            throw SystemError("TLS towards upstream \(self.settings.name) (its context could not be built, see above)", errno: EINVAL)
        }
        do {
            return try TLSConnection(upstream: context, fd: fd, host: settings.serverName ?? spec.host, sessions: sessions)
        } catch {
            throw SystemError("\(error)", errno: ENOMEM)  // SSL_new fails only without memory
        }
    }
}
