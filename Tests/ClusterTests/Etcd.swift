import ControlClient
import Foundation
import TLS
#if canImport(Glibc)
import Glibc
#endif

/// A real single-member etcd on free loopback ports, for one test. Stopped by `stop()` or when
/// the value dies, so a failing test still cleans up.
final class Etcd {
    let dir: TempDir
    let clientPort: Int, peerPort: Int
    let tls: Bool
    private var process: Process?

    var endpoint: String { "\(tls ? "https" : "http")://127.0.0.1:\(clientPort)" }
    var logPath: String { dir.path("etcd.log") }
    var caPath: String { dir.path("ca.pem") }
    var clientCertPath: String { dir.path("client.pem") }
    var clientKeyPath: String { dir.path("client.key") }

    /// `tls`: https with client-certificate authentication (a CA, server and client certificate
    /// made with the openssl CLI). `extraArguments` go to etcd as they are.
    init(tls: Bool = false, extraArguments: [String] = []) throws {
        guard FileManager.default.isExecutableFile(atPath: "/usr/bin/etcd") else {
            throw EtcdTestError("/usr/bin/etcd is missing: apt-get install etcd-server etcd-client")
        }
        dir = try TempDir()
        let ports = try freePorts(2)
        (clientPort, peerPort) = (ports[0], ports[1])
        self.tls = tls
        var arguments = ["--name", "t", "--data-dir", dir.path("data"),
                         "--listen-client-urls", endpoint, "--advertise-client-urls", endpoint,
                         "--listen-peer-urls", "http://127.0.0.1:\(peerPort)", "--initial-advertise-peer-urls", "http://127.0.0.1:\(peerPort)",
                         "--initial-cluster", "t=http://127.0.0.1:\(peerPort)", "--log-level", "warn"]
        if tls {
            try makeCertificates()
            arguments += ["--cert-file", dir.path("server.pem"), "--key-file", dir.path("server.key"),
                          "--client-cert-auth", "--trusted-ca-file", caPath]
        }
        try start(arguments + extraArguments)
        do { try waitForHealth() } catch { stop(); throw error }
    }

    deinit { stop() }

    func stop() {
        guard let process else { return }
        if process.isRunning { process.terminate() }
        let deadline = Date().addingTimeInterval(5)
        while process.isRunning && Date() < deadline { usleep(20_000) }
        if process.isRunning { kill(process.processIdentifier, SIGKILL) }
        process.waitUntilExit()
        self.process = nil
    }

    var log: String { (try? String(contentsOfFile: logPath, encoding: .utf8)) ?? "" }

    /// Runs etcdctl against this member (as `user` when given).
    @discardableResult
    func ctl(_ arguments: [String], user: String? = nil) throws -> String {
        var all = ["--endpoints", endpoint]
        if tls { all += ["--cacert", caPath, "--cert", clientCertPath, "--key", clientKeyPath] }
        if let user { all += ["--user", user] }
        let result = try run("/usr/bin/etcdctl", all + arguments, environment: ["ETCDCTL_API": "3"])
        guard result.status == 0 else { throw EtcdTestError("etcdctl \(arguments.joined(separator: " ")): \(result.output)") }
        return result.output
    }

    private func start(_ arguments: [String]) throws {
        _ = FileManager.default.createFile(atPath: logPath, contents: nil)
        let handle = try FileHandle(forWritingTo: URL(fileURLWithPath: logPath))
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/etcd")
        process.arguments = arguments
        process.standardOutput = handle
        process.standardError = handle
        try process.run()
        self.process = process
    }

    private func waitForHealth() throws {
        let context = tls ? try TLSClientContext(trustRootsPEMFile: caPath, clientCertificatePEMFile: clientCertPath, clientKeyPEMFile: clientKeyPath) : nil
        var options = HTTPClient.Options()
        options.timeout = 1
        let client = HTTPClient(tls: context, options: options)
        let deadline = Date().addingTimeInterval(15)
        while Date() < deadline {
            if let response = try? client.request(method: "GET", url: endpoint + "/health"), response.status == 200,
               String(decoding: response.body, as: UTF8.self).contains("true") { return }
            if process?.isRunning != true { break }
            usleep(50_000)
        }
        throw EtcdTestError("etcd did not become healthy on \(endpoint); log:\n\(log)")
    }

    private func makeCertificates() throws {
        func openssl(_ arguments: [String]) throws {
            let result = try run("/usr/bin/openssl", arguments)
            guard result.status == 0 else { throw EtcdTestError("openssl \(arguments.first ?? ""): \(result.output)") }
        }
        let ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"]
        try openssl(["req", "-x509"] + ec + ["-subj", "/CN=etcd test CA", "-days", "2", "-keyout", dir.path("ca.key"), "-out", caPath])
        // etcd's JSON gateway dials its own gRPC port presenting the server certificate, so with
        // --client-cert-auth that certificate must allow clientAuth too (else "connection closed").
        for (name, usage, san) in [("server", "serverAuth,clientAuth", "IP:127.0.0.1,DNS:localhost"), ("client", "clientAuth", "DNS:edgeproxy")] {
            try openssl(["req"] + ec + ["-subj", "/CN=\(name)", "-keyout", dir.path("\(name).key"), "-out", dir.path("\(name).csr")])
            try "subjectAltName=\(san)\nextendedKeyUsage=\(usage)\n".write(toFile: dir.path("\(name).ext"), atomically: true, encoding: .utf8)
            try openssl(["x509", "-req", "-in", dir.path("\(name).csr"), "-CA", caPath, "-CAkey", dir.path("ca.key"), "-CAcreateserial",
                         "-days", "2", "-extfile", dir.path("\(name).ext"), "-out", dir.path("\(name).pem")])
        }
    }
}

struct EtcdTestError: Error, CustomStringConvertible {
    let description: String
    init(_ d: String) { description = d }
}

