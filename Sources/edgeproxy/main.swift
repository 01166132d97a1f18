import ACME
import Admin
import Certificates
import Cluster
import Config
import EventLoop
import Foundation
import Front
import Glibc
import Health
import OCSP
import Proxy
import TLS

// edgeproxy run|check|cluster import|cluster reseal|acme revoke NAME --config FILE

func usage() -> Never {
    FileHandle.standardError.write(Data("""
    usage: edgeproxy run --config FILE             serve (foreground; SIGHUP reloads, SIGTERM/SIGINT drain and exit)
           edgeproxy check --config FILE           validate the configuration and certificates, then exit
           edgeproxy cluster import --config FILE  store this node's ACME account and certificates in the cluster's etcd
           edgeproxy cluster reseal --config FILE  seal every key in etcd again under the first sealing key
           edgeproxy acme revoke NAME [--reason R] --config FILE
                                                   revoke the certificate the running proxy serves for NAME (reason:
                                                   unspecified, keyCompromise, affiliationChanged, superseded,
                                                   cessationOfOperation, privilegeWithdrawn) and obtain a new one

    """.utf8))
    exit(2)
}

let arguments = Array(CommandLine.arguments.dropFirst())
guard let command = arguments.first, ["run", "check", "cluster", "acme"].contains(command) else { usage() }
var clusterCommand: String?
var revokeName: String?, revokeReason: String?
var index = 1
if command == "cluster" {
    guard arguments.count > 1, ["import", "reseal"].contains(arguments[1]) else { usage() }
    clusterCommand = arguments[1]
    index = 2
}
if command == "acme" {
    guard arguments.count > 2, arguments[1] == "revoke", !arguments[2].hasPrefix("-") else { usage() }
    revokeName = arguments[2]
    index = 3
}
var configPath = "conf/edgeproxy.yaml"
while index < arguments.count {
    switch arguments[index] {
    case "--config", "-c":
        guard index + 1 < arguments.count else { usage() }
        configPath = arguments[index + 1]
        index += 2
    case "--reason" where revokeName != nil:
        guard index + 1 < arguments.count else { usage() }
        revokeReason = arguments[index + 1]
        index += 2
    default:
        usage()
    }
}

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

    init(configPath: String, settings: Settings) {
        self.configPath = configPath
        self.settings = settings
        files = FileSource(sink: transaction, queue: queue)
        uploads = UploadSource(sink: transaction, files: files)
    }

    static func loadSettings(_ path: String) -> Result<Settings, ConfigError> {
        do { return .success(try ConfigLoader.load(path: path)) } catch { return .failure(error) }
    }

    func reload() {
        _ = reloadConfiguration(trigger: "signal")
    }

    func shutdown(_ name: String) {
        if shuttingDown {
            Log.info("\(name) again: exiting now")
            exit(0)
        }
        shuttingDown = true
        acme?.manager.stop()
        // Leave the cluster (locks and membership go with the lease, not a TTL later), without
        // holding up the drain when etcd is slow or gone.
        if let cluster {
            DispatchQueue.global().async { cluster.sync.stop(); cluster.node.stop() }
        }
        let grace = settings.timeouts.shutdown
        Log.info("\(name): draining connections (up to \(grace)s)")
        let sync = cluster?.sync
        server?.shutdown(deadline: grace) {
            sync?.flushCache()  // what the next start serves from while etcd is down
            Log.info("drained; exiting")
            exit(0)
        }
        queue.asyncAfter(deadline: .now() + grace + 1) { exit(0) }
    }

    func installSignalsAndTimers() {
        for (sig, action) in [(SIGHUP, { [self] in reload() }), (SIGTERM, { [self] in shutdown("SIGTERM") }),
                              (SIGINT, { [self] in shutdown("SIGINT") })] as [(Int32, () -> Void)] {
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

let settings: Settings
switch Control.loadSettings(configPath) {
case .success(let s): settings = s
case .failure(let e):
    FileHandle.standardError.write(Data("\(e)\n".utf8))
    exit(1)
}
Log.setDebug(settings.log.level == "debug")
if let clusterCommand { exit(ClusterCommand.run(clusterCommand, settings: settings)) }
if let revokeName { exit(ACMECommand.revoke(revokeName, reason: revokeReason, settings: settings)) }
// TLS towards upstreams: a CA or client certificate OpenSSL refuses stops `check` and `run` here.
do { try UpstreamTLSContexts.shared.apply(settings.upstreams) } catch {
    Log.error("cannot start: \(error)")
    exit(1)
}
// A SIGHUP before its handler is installed (below, once serving) must not end the process, which
// the default action would: a supervisor may reload as soon as the port answers.
signal(SIGHUP, SIG_IGN)
let control = Control(configPath: configPath, settings: settings)
if command == "run" { control.prepareOCSP() }
// One table of each kind, read by the listeners and filled by the ACME solvers.
let httpChallenges = ChallengeTable(), alpnChallenges = ALPNChallengeTable()
do { try control.prepareCluster(http: httpChallenges, alpn: alpnChallenges) } catch {
    Log.error("cluster: \(error)")
    exit(1)
}
do { try control.prepareACME(http: httpChallenges, alpn: alpnChallenges) } catch {
    Log.error("acme: \(error)")
    exit(1)
}

let loaded = control.loadInitialCertificates(deferBuild: command == "run")
if command == "check" {
    if loaded.refused > 0 || (loaded.configured && loaded.count == 0) {
        FileHandle.standardError.write(Data("\(configPath): configuration is valid, but \(loaded.refused) certificate(s) were refused (see above)\n".utf8))
        exit(1)
    }
    print("\(configPath): configuration OK, \(loaded.count) certificate(s)")
    exit(0)
}
if loaded.count == 0 {
    Log.error("no usable certificate: fix the files named above, or remove tls.certificates/certificate_dir to serve a self-signed one")
    exit(1)
}

signal(SIGPIPE, SIG_IGN)
let store = control.transaction.openStore(alpnChallenges: alpnChallenges, onDemand: control.onDemand)
control.health.apply(settings.upstreams)  // before the loops build their pools
UpstreamAddresses.shared.apply(settings.upstreams)  // names resolved here, never on a loop
let server = Server(settings: settings, store: store, challenges: httpChallenges)
do { try server.start() } catch {
    Log.error("cannot start: \(error)")
    exit(1)
}
control.server = server
do { try control.startAdmin() } catch {
    Log.error("cannot start: \(error)")
    exit(1)
}
control.queue.sync { control.files.startWatcher() }
control.installSignalsAndTimers()
control.startWarmUp()
control.startOCSP()
control.startCluster()
control.startOnDemand(store: store)
control.acme?.manager.start()
dispatchMain()
