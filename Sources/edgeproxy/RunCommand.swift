import ArgumentParser
import Certificates
import Config
import EventLoop
import Foundation
import Front
import Glibc
import Lifecycle
import Logs
import Proxy
import TLS

/// The configuration file the node runs, and where the other commands read their defaults.
let defaultConfigPath = "conf/edgeproxy.yaml"

struct RunCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "run",
        abstract: "Serve in the foreground.",
        discussion: """
            SIGHUP reloads the configuration and certificates; SIGTERM, SIGINT or SIGQUIT drain the connections and exit; \
            SIGUSR1 reopens the log files. With --upgrade-from, this process takes the listening sockets over from the \
            running one (a binary upgrade): it serves on them, then tells that one to drain and exit.
            """)

    @Option(name: [.short, .long], help: "The configuration file.")
    var config = defaultConfigPath

    @Option(name: .long, help: ArgumentHelp("Take over from the edgeproxy answering on this upgrade socket (its listen.upgrade_socket).",
                                            valueName: "socket"))
    var upgradeFrom: String?

    func run() throws { Startup.start(configPath: config, checkOnly: false, upgradeFrom: upgradeFrom) }
}

struct CheckCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "check",
        abstract: "Validate the configuration and certificates, then exit.",
        discussion: "Exits 1 with FILE:LINE:COLUMN and the reason when the configuration is wrong, or when a certificate is refused.")

    @Option(name: [.short, .long], help: "The configuration file.")
    var config = defaultConfigPath

    func run() throws { Startup.start(configPath: config, checkOnly: true) }
}

/// `run` and `check`: the same start-up up to the listeners, so `check` refuses what `run` would.
enum Startup {
    static func start(configPath: String, checkOnly: Bool, upgradeFrom: String? = nil) -> Never {
        OpenSSLLibrary.initialize()
        let settings: Settings
        switch Control.loadSettings(configPath) {
        case .success(let s): settings = s
        case .failure(let e):
            FileHandle.standardError.write(Data("\(e)\n".utf8))
            exit(1)
        }
        if !checkOnly && settings.log.error != "stderr" {
            do { try ErrorLog.redirect(to: settings.log.error) } catch {
                FileHandle.standardError.write(Data("cannot open the error log (log.error): \(error)\n".utf8))
                exit(1)
            }
        }
        Log.setDebug(settings.log.level == "debug")
        // TLS towards upstreams: a CA or client certificate OpenSSL refuses stops `check` and `run` here.
        do { try UpstreamTLSContexts.shared.apply(settings.upstreams) } catch {
            Log.error("cannot start: \(error)")
            exit(1)
        }
        // A SIGHUP before its handler is installed (below, once serving) must not end the process, which
        // the default action would: a supervisor may reload as soon as the port answers.
        signal(SIGHUP, SIG_IGN)
        signal(SIGUSR1, SIG_IGN)  // logrotate's, likewise
        let control = Control(configPath: configPath, settings: settings)
        if !checkOnly { control.prepareOCSP() }
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

        let loaded = control.loadInitialCertificates(deferBuild: !checkOnly)
        if checkOnly {
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
        let store = control.transaction.openStore(alpnChallenges: alpnChallenges, alpnLookups: control.cluster?.alpnLookups,
                                                  onDemand: control.onDemand)
        control.health.apply(settings.upstreams)  // before the loops build their pools
        UpstreamAddresses.shared.apply(settings.upstreams)  // names resolved here, never on a loop
        // The listening sockets: from the process this one replaces, or from systemd, or bound here.
        let upgrade: UpgradeClient?
        let inherited: [InheritedSocket]
        do {
            if let upgradeFrom {
                upgrade = try UpgradeClient(path: upgradeFrom)
                inherited = try upgrade!.fetchSockets()
            } else {
                upgrade = nil
                inherited = try SocketActivation.take(environment: ProcessInfo.processInfo.environment)
                try control.openUpgradeListener()
            }
        } catch {
            Log.error("cannot start: \(error)")
            exit(1)
        }
        let server = Server(settings: settings, store: store, challenges: httpChallenges)
        do { try server.start(inherited: inherited, unmatchedIsError: upgrade == nil) } catch {
            Log.error("cannot start: \(error)")
            exit(1)
        }
        if !inherited.isEmpty {
            Log.info("accepting on \(inherited.count) inherited socket(s) \(upgrade == nil ? "from systemd" : "from the running process")")
        }
        control.server = server
        if upgrade != nil {
            control.startAdminWhenFree(giveUpAfter: settings.timeouts.shutdown + 10)
        } else {
            do { try control.startAdmin() } catch {
                Log.error("cannot start: \(error)")
                exit(1)
            }
        }
        control.queue.sync { control.files.startWatcher() }
        control.installSignalsAndTimers()
        control.notifier.ready(status: "serving")
        if let upgrade {
            // This process serves: the old one may drain now, and its upgrade socket becomes ours.
            do {
                try upgrade.finish()
                Log.info("upgrade: took over from the process at \(upgrade.path), which drains now")
            } catch {
                Log.warning("upgrade: \(error); both processes serve until it is stopped")
            }
            do { try control.openUpgradeListener() } catch { Log.warning("binary upgrade unavailable: \(error)") }
        }
        control.upgradeListener?.start()
        control.startWatchdog()
        control.startWarmUp()
        control.startOCSP()
        control.startCluster()
        control.startOnDemand(store: store)
        control.acme?.manager.start()
        dispatchMain()
    }
}
