import EventLoop
import Glibc

/// One JSON object per request, one write(2) per line (atomic for pipes and O_APPEND files).
public final class AccessLog: Sendable {
    private let fd: Int32?

    /// "stdout", "off", or a file path (opened for appending).
    public init(_ target: String) throws(SystemError) {
        switch target {
        case "off": fd = nil
        case "stdout": fd = 1
        default: fd = try syscallValue("open(\(target))") { open(target, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0o644) }
        }
    }

    var enabled: Bool { fd != nil }

    struct Entry {
        var client: String
        var sni: String?
        /// SHA-256 of the client's verified certificate (mutual TLS).
        var clientCertificate: String? = nil
        var host: String?
        var method: String
        var path: String
        var status: Int
        var bytesIn: Int64
        var bytesOut: Int64
        var upstream: String?
        var durationMS: Double
        var upstreamMS: Double?
        var proto: String
    }

    func write(_ e: Entry) {
        guard let fd else { return }
        var line = "{\"time\":\"\(Log.timestamp())\",\"client\":\(JSON.string(e.client)),\"sni\":\(JSON.string(e.sni)),"
            + (e.clientCertificate.map { "\"client_cert_sha256\":\(JSON.string($0))," } ?? "") + "\"host\":\(JSON.string(e.host)),"
        line += "\"method\":\(JSON.string(e.method)),\"path\":\(JSON.string(e.path)),\"status\":\(e.status),\"bytes_in\":\(e.bytesIn),"
        line += "\"bytes_out\":\(e.bytesOut),\"upstream\":\(JSON.string(e.upstream)),\"duration_ms\":\(ms(e.durationMS)),"
        line += "\"upstream_ms\":\(e.upstreamMS.map(ms) ?? "null"),\"protocol\":\(JSON.string(e.proto))}\n"
        line.withUTF8 { _ = Glibc.write(fd, $0.baseAddress, $0.count) }
    }

    private func ms(_ v: Double) -> String { String(Double(Int(v * 1000)) / 1000) }
}
