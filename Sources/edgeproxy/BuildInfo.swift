internal import CBuildInfo
internal import CNghttp2
internal import COpenSSL

/// What this binary is: its version, the commit it was built from (passed at build time, see
/// Package.swift) and the C libraries it runs with (read at run time: the shared libraries
/// loaded, not the headers it was compiled against).
enum BuildInfo {
    static let version = "0.1.0"
    static let commit = String(cString: CBuildInfo_commit())
    static let openssl = String(cString: OpenSSL_version(Int32(OPENSSL_VERSION)))
    static let nghttp2 = nghttp2_version(0).map { String(cString: $0.pointee.version_str) } ?? "unknown"

    static var summary: String {
        "edgeproxy \(version) (commit \(commit))\n\(openssl)\nnghttp2 \(nghttp2)"
    }
}
