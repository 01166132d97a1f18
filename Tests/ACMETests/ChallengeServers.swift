import ACME
import Certificates
import Foundation
import TLS
#if canImport(Glibc)
import Glibc
#endif

/// What the proxy's port-80 listener will do: answer /.well-known/acme-challenge/TOKEN from the
/// ChallengeTable, 404 otherwise. Blocking, one connection at a time, on its own thread.
final class HTTP01TestServer: @unchecked Sendable {  // fd is set once; the thread only reads it
    private let fd: Int32
    private let table: ChallengeTable
    private(set) var served = 0

    init(port: Int, table: ChallengeTable) throws {
        self.table = table
        fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        var one: Int32 = 1
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size))
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_port = in_port_t(UInt16(port).bigEndian)
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        let ok = withUnsafePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) == 0 }
        }
        guard ok, listen(fd, 16) == 0 else { close(fd); throw PebbleError("HTTP-01 server bind \(port): \(String(cString: strerror(errno)))") }
        let thread = Thread { [self] in acceptLoop() }
        thread.start()
    }

    func stop() { shutdown(fd, Int32(SHUT_RDWR)); close(fd) }

    private func acceptLoop() {
        while true {
            let conn = accept(fd, nil, nil)
            if conn < 0 { if errno == EINTR { continue }; return }
            handle(conn)
            close(conn)
        }
    }

    private func handle(_ conn: Int32) {
        var tv = timeval(tv_sec: 5, tv_usec: 0)
        setsockopt(conn, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
        var request: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 4096)
        while request.count < 16384, !request.ends(with: Array("\r\n\r\n".utf8)) {
            let n = recv(conn, &buffer, buffer.count, 0)
            if n <= 0 { return }
            request += buffer[0..<n]
        }
        let line = String(decoding: request.prefix { $0 != 0x0d }, as: UTF8.self).split(separator: " ")
        var status = "404 Not Found", body = ""
        if line.count == 3, line[0] == "GET", line[1].hasPrefix(HTTP01Solver.pathPrefix),
           let answer = table.keyAuthorization(for: String(line[1].dropFirst(HTTP01Solver.pathPrefix.count))) {
            status = "200 OK"; body = answer
            served += 1
        }
        let response = Array("HTTP/1.1 \(status)\r\nContent-Type: text/plain\r\nContent-Length: \(body.utf8.count)\r\nConnection: close\r\n\r\n\(body)".utf8)
        _ = response.withUnsafeBytes { send(conn, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
    }
}

extension Array where Element: Equatable {
    func ends(with suffix: [Element]) -> Bool { count >= suffix.count && Array(self[(count - suffix.count)...]) == suffix }
}

/// A TLS-ALPN-01 responder in Python's ssl module (the proxy's TLS layer will do this later):
/// it serves NAME.crt/NAME.key from `directory` for SNI NAME, selecting ALPN acme-tls/1. The
/// certificates themselves come from our Swift solver (see ExportingALPNSolver).
final class ALPNTestServer {
    private let process = Process()
    let directory: String

    static let script = #"""
    import os, signal, socket, ssl, sys
    # The test runner's blocked/ignored signals are inherited: make SIGTERM fatal again.
    signal.pthread_sigmask(signal.SIG_UNBLOCK, [signal.SIGTERM])
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    port, d = int(sys.argv[1]), sys.argv[2]
    def context(name=None):
        c = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        c.set_alpn_protocols(["acme-tls/1"])
        if name: c.load_cert_chain(os.path.join(d, name + ".crt"), os.path.join(d, name + ".key"))
        return c
    base = context()
    def sni(sock, name, _):
        try: sock.context = context(name)
        except Exception as e:
            print("no certificate for", name, e, flush=True)
            return ssl.ALERT_DESCRIPTION_UNRECOGNIZED_NAME
    base.sni_callback = sni
    s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("127.0.0.1", port)); s.listen(16)
    print("ready", flush=True)
    while True:
        c, _ = s.accept()
        c.settimeout(5)
        try:
            t = base.wrap_socket(c, server_side=True)
            print("served", t.server_hostname if hasattr(t, "server_hostname") else "", t.selected_alpn_protocol(), flush=True)
            t.close()
        except Exception as e:
            print("handshake failed:", e, flush=True); c.close()
    """#

    init(port: Int, directory: String, log: String) throws {
        self.directory = directory
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        let scriptPath = directory + "/alpn_server.py"
        try Self.script.write(toFile: scriptPath, atomically: true, encoding: .utf8)
        _ = FileManager.default.createFile(atPath: log, contents: nil)
        let handle = try FileHandle(forWritingTo: URL(fileURLWithPath: log))
        process.executableURL = URL(fileURLWithPath: "/usr/bin/python3")
        process.arguments = [scriptPath, String(port), directory]
        process.standardOutput = handle
        process.standardError = handle
        try process.run()
        let deadline = Date().addingTimeInterval(10)
        while !canConnect(port) {
            guard Date() < deadline, process.isRunning else { throw PebbleError("ALPN test server did not start") }
            usleep(50_000)
        }
    }

    deinit { stop() }
    func stop() {
        // SIGKILL: the runner may have left SIGTERM blocked in the child, and a test helper needs no grace.
        if process.isRunning { kill(process.processIdentifier, SIGKILL) }
        process.waitUntilExit()
    }
}

/// The real TLS-ALPN-01 solver, plus export of what it put in its table to files the Python
/// responder reads.
struct ExportingALPNSolver: ChallengeSolver {
    let inner: TLSALPN01Solver
    let directory: String
    var challengeType: String { inner.challengeType }

    func present(domain: String, token: String, keyAuthorization: String) throws {
        try inner.present(domain: domain, token: token, keyAuthorization: keyAuthorization)
        guard let entry = inner.table.entry(for: domain) else { throw PebbleError("solver left no table entry") }
        try Data(entry.key.pem()).write(to: URL(fileURLWithPath: "\(directory)/\(domain).key"))
        try Data(entry.certificate.pem()).write(to: URL(fileURLWithPath: "\(directory)/\(domain).crt"))
    }

    func cleanUp(domain: String, token: String, keyAuthorization: String) {
        inner.cleanUp(domain: domain, token: token, keyAuthorization: keyAuthorization)
        try? FileManager.default.removeItem(atPath: "\(directory)/\(domain).crt")
        try? FileManager.default.removeItem(atPath: "\(directory)/\(domain).key")
    }
}

/// Answers HTTP-01 with the wrong key authorization, so the CA must refuse it.
struct WrongHTTP01Solver: ChallengeSolver {
    let inner: HTTP01Solver
    var challengeType: String { inner.challengeType }
    func present(domain: String, token: String, keyAuthorization: String) throws {
        try inner.present(domain: domain, token: token, keyAuthorization: keyAuthorization + "-wrong")
    }
    func cleanUp(domain: String, token: String, keyAuthorization: String) {
        inner.cleanUp(domain: domain, token: token, keyAuthorization: keyAuthorization)
    }
}
