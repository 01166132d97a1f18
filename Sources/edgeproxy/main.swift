import Certificates
import Config
import EventLoop
import Foundation
import Front
import Glibc
import TLS

// edgeproxy run|check --config FILE

func usage() -> Never {
    FileHandle.standardError.write(Data("""
    usage: edgeproxy run --config FILE     serve (foreground; SIGHUP reloads, SIGTERM/SIGINT drain and exit)
           edgeproxy check --config FILE   validate the configuration and certificates, then exit

    """.utf8))
    exit(2)
}

let arguments = Array(CommandLine.arguments.dropFirst())
guard let command = arguments.first, ["run", "check"].contains(command) else { usage() }
var configPath = "conf/edgeproxy.yaml"
var index = 1
while index < arguments.count {
    switch arguments[index] {
    case "--config", "-c":
        guard index + 1 < arguments.count else { usage() }
        configPath = arguments[index + 1]
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
    var store: CertificateStore?
    var server: Server?
    var shuttingDown = false
    var sources: [DispatchSourceProtocol] = []

    init(configPath: String, settings: Settings) { self.configPath = configPath; self.settings = settings }

    static func loadSettings(_ path: String) -> Result<Settings, ConfigError> {
        do { return .success(try ConfigLoader.load(path: path)) } catch { return .failure(error) }
    }

    /// Certificates from the configured files and directory; refusals are logged and skipped.
    /// With nothing configured, a self-signed certificate for `tls.self_signed`.
    static func loadCertificates(_ settings: Settings) -> (bundles: [CertificateBundle], configured: Bool, refused: Int) {
        let options = TLSOptions(minVersion13: settings.tls.minVersion == .tls13, sessionTickets: settings.tls.sessionTickets)
        var bundles: [CertificateBundle] = []
        var refused = 0
        for files in settings.tls.certificates {
            do { bundles.append(try CertificateLoader.files(cert: files.cert, key: files.key, options: options)) } catch {
                Log.error("certificate refused: \(error)")
                refused += 1
            }
        }
        if let dir = settings.tls.certificateDirectory {
            let (loaded, errors) = CertificateLoader.directory(dir, options: options)
            bundles += loaded
            for e in errors { Log.error("certificate refused: \(e)") }
            refused += errors.count
        }
        let configured = !settings.tls.certificates.isEmpty || settings.tls.certificateDirectory != nil
        if !configured {
            do {
                bundles.append(try CertificateLoader.selfSigned(names: settings.tls.selfSignedNames, options: options))
                Log.info("no certificate configured: serving a self-signed P-256 certificate for \(settings.tls.selfSignedNames.joined(separator: ", "))")
            } catch { Log.error("\(error)") }
        }
        for b in bundles { Log.debug("certificate \(b.names.joined(separator: ",")) (\(b.keyType)) from \(b.source)") }
        return (bundles, configured, refused)
    }

    static func makeSnapshot(_ settings: Settings, _ bundles: [CertificateBundle]) -> Snapshot {
        let snapshot = Snapshot(bundles, defaultName: settings.tls.defaultName)
        if !snapshot.defaultFound {
            Log.warning("tls.default names \"\(settings.tls.defaultName ?? "")\", which no certificate carries; the first certificate answers instead")
        }
        return snapshot
    }

    func reload() {
        switch Self.loadSettings(configPath) {
        case .failure(let e):
            Log.error("reload refused, still running the previous configuration: \(e)")
        case .success(let new):
            let certs = Self.loadCertificates(new)
            if certs.bundles.isEmpty {
                Log.error("reload: no usable certificate; keeping the current certificates")
            } else {
                store?.replace(with: Self.makeSnapshot(new, certs.bundles), strictSNI: new.tls.strictSNI)
            }
            server?.apply(new)
            settings = new
            Log.info("reloaded \(configPath): \(certs.bundles.count) certificate(s), \(new.routes.count) route(s)")
        }
    }

    func shutdown(_ name: String) {
        if shuttingDown {
            Log.info("\(name) again: exiting now")
            exit(0)
        }
        shuttingDown = true
        let grace = settings.timeouts.shutdown
        Log.info("\(name): draining connections (up to \(grace)s)")
        server?.shutdown(deadline: grace) {
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
        if settings.tls.sessionTickets > 0 {
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
let control = Control(configPath: configPath, settings: settings)

let loaded = Control.loadCertificates(settings)
if command == "check" {
    if loaded.refused > 0 || (loaded.configured && loaded.bundles.isEmpty) {
        FileHandle.standardError.write(Data("\(configPath): configuration is valid, but \(loaded.refused) certificate(s) were refused (see above)\n".utf8))
        exit(1)
    }
    print("\(configPath): configuration OK, \(loaded.bundles.count) certificate(s)")
    exit(0)
}
if loaded.bundles.isEmpty {
    Log.error("no usable certificate: fix the files named above, or remove tls.certificates/certificate_dir to serve a self-signed one")
    exit(1)
}

signal(SIGPIPE, SIG_IGN)
let store = CertificateStore(Control.makeSnapshot(settings, loaded.bundles), strictSNI: settings.tls.strictSNI)
let server = Server(settings: settings, store: store, challenges: ChallengeTable())
do { try server.start() } catch {
    Log.error("cannot start: \(error)")
    exit(1)
}
control.store = store
control.server = server
control.installSignalsAndTimers()
dispatchMain()
