import DNS
import Foundation
import TestSupport

/// A real BIND (`/usr/sbin/named -g`) on a loopback port, authoritative for `example.test`,
/// accepting UPDATEs signed with key `acme` (it knows key `reader` too, but not for updates).
/// Its config, zone, journal and pid file live in a temporary directory; `stop()` (and deinit)
/// end it.
final class Named {
    /// EDGEPROXY_NAMED names another build of named.
    static let program = ProcessInfo.processInfo.environment["EDGEPROXY_NAMED"] ?? "/usr/sbin/named"
    static let secret = "c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0LTMyYg=="
    let port: Int
    let dir: TempDir
    private let process = Process()
    private let log: Pipe

    init() throws {
        guard FileManager.default.isExecutableFile(atPath: Self.program) else {
            throw SupportError("\(Self.program) is missing: apt-get install bind9 bind9-dnsutils (make test does it)")
        }
        dir = try TempDir()
        port = try freePorts(1)[0]
        // Nine 60-byte TXT strings under big.example.test: over 512 bytes, so UDP answers come back with TC.
        let big = (1...9).map { "big IN TXT \"\(String(repeating: Character(String($0)), count: 60))\"" }.joined(separator: "\n")
        try """
        $TTL 300
        @   IN SOA ns1.example.test. hostmaster.example.test. 1 3600 600 86400 60
        @   IN NS  ns1.example.test.
        ns1 IN A   127.0.0.1
        www IN A   127.0.0.1
        \(big)

        """.write(toFile: dir.path("example.test.zone"), atomically: true, encoding: .utf8)
        try """
        options {
            directory "\(dir.root)";
            pid-file "\(dir.path("named.pid"))";
            session-keyfile "\(dir.path("session.key"))";
            managed-keys-directory "\(dir.root)";
            listen-on port \(port) { 127.0.0.1; };
            listen-on-v6 { none; };
            recursion no;
            dnssec-validation no;
            notify no;
        };
        controls { };
        key "acme" { algorithm hmac-sha256; secret "\(Self.secret)"; };
        key "reader" { algorithm hmac-sha256; secret "\(Self.secret)"; };
        zone "example.test" {
            type master;
            file "\(dir.path("example.test.zone"))";
            allow-update { key acme; };
        };

        """.write(toFile: dir.path("named.conf"), atomically: true, encoding: .utf8)
        process.executableURL = URL(fileURLWithPath: Self.program)
        process.arguments = ["-g", "-c", dir.path("named.conf"), "-p", String(port), "-n", "1"]
        log = Pipe()
        process.standardOutput = log
        process.standardError = log
        try process.run()
        do { try waitUntilAnswering() } catch { stop(); throw error }
    }

    deinit { stop() }

    var client: DNSClient { DNSClient(server: "127.0.0.1", port: port, timeout: 2) }

    private func waitUntilAnswering() throws {
        let quick = DNSClient(server: "127.0.0.1", port: port, timeout: 0.2)
        let deadline = Date().addingTimeInterval(8)
        while Date() < deadline {
            guard process.isRunning else { throw SupportError("named exited (\(process.terminationStatus)): \(output())") }
            if let answer = try? quick.query(name: "example.test", type: .soa), !answer.isEmpty { return }
            usleep(50_000)
        }
        throw SupportError("named did not answer on 127.0.0.1:\(port) within 8 s: \(output())")
    }

    func stop() {
        guard process.isRunning else { return }
        process.terminate()
        process.waitUntilExit()
    }

    /// What named printed so far (only once it has stopped, so the read ends).
    func output() -> String {
        stop()
        return String(decoding: log.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
    }
}
