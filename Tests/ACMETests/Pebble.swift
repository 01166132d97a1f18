import ACME
import Foundation
import TLS
#if canImport(Glibc)
import Glibc
#endif

/// A real Pebble (and pebble-challtestsrv as its DNS) on free loopback ports, for one test.
/// Stopped by `stop()` or when the value dies, so a failing test still cleans up.
final class Pebble {
    let dir: TempDir
    let acmePort: Int, managementPort: Int, httpPort: Int, tlsPort: Int, dnsPort: Int, dnsManagementPort: Int
    private var processes: [Process] = []

    var directoryURL: String { "https://127.0.0.1:\(acmePort)/dir" }
    /// The self-signed certificate of Pebble's own API: the trust root for the ACME client.
    var apiCertificatePath: String { dir.path("api-cert.pem") }
    var logPath: String { dir.path("pebble.log") }

    static let eabKeys = ["kid-1": "zWNDZM6eQGHWpSRTPal5eIUYFTu7EajVIoguysqZ9wG44nMEtx3MUAsUDkMTQ12W"]

    init(eabRequired: Bool = false, nonceRejectPercent: Int = 30) throws {
        // A missing CA is a failed test, never a skipped one.
        for program in ["/usr/bin/pebble", "/usr/bin/pebble-challtestsrv"] where !FileManager.default.isExecutableFile(atPath: program) {
            throw PebbleError("\(program) is missing: apt-get install pebble (make test installs it)")
        }
        dir = try TempDir()
        let ports = try freePorts(6)
        (acmePort, managementPort, httpPort, tlsPort, dnsPort, dnsManagementPort) = (ports[0], ports[1], ports[2], ports[3], ports[4], ports[5])
        let cert = try run("/usr/bin/openssl", ["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                                                "-subj", "/CN=localhost", "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1",
                                                "-days", "2", "-keyout", dir.path("api-key.pem"), "-out", apiCertificatePath])
        guard cert.status == 0 else { throw PebbleError("openssl req: \(cert.output)") }
        var pebble: [String: Any] = [
            "listenAddress": "127.0.0.1:\(acmePort)", "managementListenAddress": "127.0.0.1:\(managementPort)",
            "certificate": apiCertificatePath, "privateKey": dir.path("api-key.pem"),
            "httpPort": httpPort, "tlsPort": tlsPort, "ocspResponderURL": "", "externalAccountBindingRequired": eabRequired,
        ]
        if eabRequired { pebble["externalAccountMACKeys"] = Self.eabKeys }
        try JSONSerialization.data(withJSONObject: ["pebble": pebble]).write(to: dir.url("pebble.json"))

        try start("/usr/bin/pebble-challtestsrv", ["-dns01", "127.0.0.1:\(dnsPort)", "-http01", "", "-https01", "", "-tlsalpn01", "",
                                                   "-defaultIPv4", "127.0.0.1", "-defaultIPv6", "", "-management", "127.0.0.1:\(dnsManagementPort)"],
                  log: dir.path("challtestsrv.log"), environment: [:])
        try start("/usr/bin/pebble", ["-config", dir.path("pebble.json"), "-dnsserver", "127.0.0.1:\(dnsPort)"], log: logPath,
                  environment: ["PEBBLE_VA_NOSLEEP": "1", "PEBBLE_WFE_NONCEREJECT": String(nonceRejectPercent),
                                // Every order validates afresh, so request counts do not depend on luck.
                                "PEBBLE_AUTHZREUSE": "0"])
        try waitForListener(acmePort)
        try waitForListener(managementPort)
        try waitForListener(dnsManagementPort)
    }

    deinit { stop() }

    func stop() {
        for p in processes where p.isRunning { p.terminate() }
        // Bounded: a child that ignores SIGTERM gets SIGKILL rather than hanging the suite.
        let deadline = Date().addingTimeInterval(5)
        while processes.contains(where: \.isRunning) && Date() < deadline { usleep(20_000) }
        for p in processes where p.isRunning { kill(p.processIdentifier, SIGKILL) }
        for p in processes { p.waitUntilExit() }
        processes = []
    }

    var log: String { (try? String(contentsOfFile: logPath, encoding: .utf8)) ?? "" }

    /// Pebble's issuing root, from its management API (it is generated at start-up).
    func issuingRootPEM() throws -> [UInt8] {
        let client = HTTPSClient(context: try TLSClientContext(trustRootsPEMFile: apiCertificatePath), timeout: 10)
        let response = try client.request(method: "GET", url: "https://127.0.0.1:\(managementPort)/roots/0")
        guard response.status == 200 else { throw PebbleError("roots/0 answered \(response.status)") }
        return response.body
    }

    func configuration() -> IssuerConfiguration {
        var config = IssuerConfiguration(directoryURL: directoryURL, trustRootsPEMFile: apiCertificatePath)
        config.contact = ["mailto:ops@example.test"]
        config.clientOptions.pollInterval = 0.2  // Pebble validates at once with PEBBLE_VA_NOSLEEP
        config.clientOptions.pollTimeout = 20
        config.requestTimeout = 10
        return config
    }

    private func start(_ program: String, _ arguments: [String], log: String, environment: [String: String]) throws {
        _ = FileManager.default.createFile(atPath: log, contents: nil)
        let handle = try FileHandle(forWritingTo: URL(fileURLWithPath: log))
        let process = Process()
        process.executableURL = URL(fileURLWithPath: program)
        process.arguments = arguments
        process.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 }
        process.standardOutput = handle
        process.standardError = handle
        try process.run()
        processes.append(process)
    }

    private func waitForListener(_ port: Int) throws {
        let deadline = Date().addingTimeInterval(15)
        while Date() < deadline {
            if canConnect(port) { return }
            if processes.contains(where: { !$0.isRunning }) { break }
            usleep(50_000)
        }
        throw PebbleError("nothing listening on 127.0.0.1:\(port); pebble log:\n\(log)")
    }
}

struct PebbleError: Error, CustomStringConvertible {
    let description: String
    init(_ d: String) { description = d }
}

