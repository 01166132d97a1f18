import ACME
import Certificates
import Cluster
import Config
import EventLoop
import Foundation
import Front
import Glibc
import Health
import Logs
import OCSP
import Admin
import Lifecycle
import TLS

/// Everything after start-up happens here, on one serial queue: reloads, drains, key rotation.
final class Control: @unchecked Sendable {  // all state is touched on `queue` only (or before it starts)
    let configPath: String
    let queue = DispatchQueue(label: "edgeproxy.control")
    var settings: Settings
    var server: Server?
    var shuttingDown = false
    var sources: [DispatchSourceProtocol] = []
    /// The certificate update transaction every source submits to, and the sources kept here.
    let transaction = CertificateTransaction()
    let files: FileSource
    let uploads: UploadSource
    var adminServer: AdminServer?
    /// The ACME manager and the challenge tables it fills (Control+ACME.swift); nil: ACME off.
    var acme: (manager: ACMEManager, http: ChallengeTable, alpn: ALPNChallengeTable)?
    /// Certificates obtained while a handshake waits (`acme.on_demand`); nil: off.
    var onDemand: OnDemandIssuance?
    /// The DNS-01 provider's name and activity (`acme.dns`); nil: no DNS-01.
    var dns01: (provider: String, activity: DNS01Activity)?
    /// The etcd sync, membership and ACME storage (Control+Cluster.swift); nil: a single node.
    var cluster: ClusterParts?
    /// Active health checks of the upstream servers (Control+Health.swift).
    let health = HealthChecker()
    /// OCSP stapling (Control+OCSP.swift); nil: `tls.ocsp_stapling` off.
    var ocsp: OCSPStapler?

    /// For `GET /status`.
    let started = Date()
    /// systemd's readiness notifications (nothing without $NOTIFY_SOCKET).
    let notifier = ServiceNotifier(environment: ProcessInfo.processInfo.environment)
    /// Where a new process takes the listening sockets over (Control+Lifecycle.swift); nil: off.
    var upgradeListener: UpgradeListener?
    var watchdog: Watchdog?
    /// The log targets the process started with: they change only on restart, reloads or not.
    let logTargets: LogSettings

    init(configPath: String, settings: Settings) {
        self.configPath = configPath
        self.settings = settings
        logTargets = settings.log
        files = FileSource(sink: transaction, queue: queue)
        uploads = UploadSource(sink: transaction, files: files)
    }

    static func loadSettings(_ path: String) -> Result<Settings, ConfigError> {
        do { return .success(try ConfigLoader.load(path: path)) } catch { return .failure(error) }
    }

    func reload() {
        _ = reloadConfiguration(trigger: "signal")
    }

    /// `stopping`: tell systemd the service stops; not when a new process took over (it serves on).
    func shutdown(_ name: String, stopping: Bool = true) {
        if shuttingDown {
            Log.info("\(name) again: exiting now")
            exit(0)
        }
        shuttingDown = true
        if stopping { notifier.stopping() }
        acme?.manager.stop()
        // Leave the cluster (locks and membership go with the lease, not a TTL later), without
        // holding up the drain when etcd is slow or gone.
        if let cluster {
            DispatchQueue.global().async { cluster.sync.stop(); cluster.node.stop() }
        }
        let grace = settings.timeouts.shutdown
        Log.info("\(name): draining connections (up to \(grace)s)")
        let sync = cluster?.sync
        let upgradeListener = upgradeListener
        server?.shutdown(deadline: grace) {
            sync?.flushCache()  // what the next start serves from while etcd is down
            upgradeListener?.removeFile()
            Log.info("drained; exiting")
            exit(0)
        }
        queue.asyncAfter(deadline: .now() + grace + 1) { upgradeListener?.removeFile(); exit(0) }
    }

    func installSignalsAndTimers() {
        for (sig, action) in [(SIGHUP, { [self] in reload() }), (SIGTERM, { [self] in shutdown("SIGTERM") }),
                              (SIGINT, { [self] in shutdown("SIGINT") }), (SIGQUIT, { [self] in shutdown("SIGQUIT") }),
                              (SIGUSR1, { [self] in reopenLogs() })] as [(Int32, () -> Void)] {
            signal(sig, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: sig, queue: queue)
            source.setEventHandler(handler: action)
            source.resume()
            sources.append(source)
        }
        // In a cluster the ticket keys come from the fleet's leader instead.
        if settings.tls.sessionTickets > 0 && settings.cluster == nil {
            let rotation = DispatchSource.makeTimerSource(queue: queue)
            rotation.schedule(deadline: .now() + settings.tls.ticketKeyRotation, repeating: settings.tls.ticketKeyRotation)
            rotation.setEventHandler { TicketKeys.shared.rotate() }
            rotation.resume()
            sources.append(rotation)
        }
    }
}
