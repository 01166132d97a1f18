// swift-tools-version: 6.0
import Foundation
import PackageDescription

// The commit `edgeproxy version` reports. The Makefile passes it (`git describe`); a plain
// `swift build` (a tarball, no git) builds just the same and says "unknown". Only the tiny
// CBuildInfo target sees it, so a new commit recompiles one C file and relinks.
let commit = String((ProcessInfo.processInfo.environment["EDGEPROXY_COMMIT"] ?? "").filter { $0.isLetter || $0.isNumber || $0 == "-" }.prefix(64))

let package = Package(
    name: "edgeproxy",
    products: [
        .executable(name: "edgeproxy", targets: ["edgeproxy"]),
        .executable(name: "bench-sni", targets: ["bench-sni"]),
    ],
    dependencies: [
        .package(url: "https://github.com/jpsim/Yams", from: "5.0.1"),
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
    ],
    targets: [
        // C libraries and the shims for what Swift cannot import (macros, _GNU_SOURCE calls). Their
        // module maps name the libraries to link; no pkg-config, whose -L of the system's library
        // directory would come first in the linker's search path, where `make release` puts a
        // directory holding OpenSSL's static archives (see the Makefile). The headers come from
        // libssl-dev and libnghttp2-dev, which `make run` and `make test` install.
        .systemLibrary(name: "COpenSSL"),
        .target(name: "CSystem"),
        .target(name: "CBuildInfo", cSettings: [.define("EDGEPROXY_COMMIT", to: "\"\(commit.isEmpty ? "unknown" : commit)\"")]),
        .systemLibrary(name: "CNghttp2"),

        // accept → (PROXY header) → handshake (SNI → certificate) → ALPN → HTTP/1 or HTTP/2 session → route →
        // upstream pool → response
        // State shared between threads, behind a lock ThreadSanitizer understands.
        .target(name: "Locking"),
        // The error log and JSON string literals: every module may log without depending on the loop.
        .target(name: "Logs"),
        .target(name: "EventLoop", dependencies: ["CSystem", "Locking"]),
        .target(name: "HTTP1"),
        // The PROXY protocol header (v1 and v2), read ahead of TLS and written towards origins: sans-I/O.
        .target(name: "ProxyProtocol"),
        .target(name: "HTTP2", dependencies: ["CNghttp2", "HTTP1"]),
        .target(name: "TLS", dependencies: ["Locking", "COpenSSL", "CSystem", "EventLoop"]),
        .target(name: "Metrics", dependencies: ["Locking", "CSystem"]),
        // Store, snapshot and update transaction, and the sources that submit to it (files, uploads).
        .target(name: "Certificates", dependencies: ["Locking", "TLS", "COpenSSL", "Metrics", "Config", "Logs", "CSystem"]),
        .target(name: "Config", dependencies: ["Yams"]),
        .target(name: "Proxy", dependencies: ["Locking", "EventLoop", "Logs", "HTTP1", "Config", "ProxyProtocol", "TLS", "Metrics"]),
        .target(name: "Front", dependencies: ["EventLoop", "Logs", "TLS", "HTTP1", "Certificates", "Proxy", "Config", "HTTP2", "Metrics", "ProxyProtocol"]),
        // The admin API: listener, routes, JSON answers, metrics text, dashboard (off the hot path). The
        // OpenAPI document and the dashboard's pages are compiled in, so the binary needs no files beside it.
        .target(name: "Admin", dependencies: ["Certificates", "Metrics", "HTTP1", "CSystem", "EventLoop"],
                resources: [.embedInCode("openapi.json"), .embedInCode("Dashboard/dashboard.html"), .embedInCode("Dashboard/login.html")]),
        // The process around the proxy: systemd notifications and watchdog, socket activation, the
        // binary upgrade (listening sockets handed to a new process over a Unix socket).
        .target(name: "Lifecycle", dependencies: ["EventLoop", "Logs", "Front", "CSystem"]),
        // Active health checks of upstream servers (off the loops), published to the pools' ServerHealth.
        .target(name: "Health", dependencies: ["Locking", "Proxy", "Config", "ControlClient", "Logs", "HTTP1", "ProxyProtocol", "TLS"]),
        // The control plane's blocking HTTP/1.1 client (CA, cluster store); background threads only.
        .target(name: "ControlClient", dependencies: ["Locking", "TLS", "HTTP1", "EventLoop"]),
        // RFC 8555 client (off the hot path): account, orders, challenges, renewal policy, storage.
        .target(name: "ACME", dependencies: ["Locking", "TLS", "HTTP1", "Certificates", "Logs", "Config", "ControlClient", "DNS"]),
        // Several nodes through etcd: the etcd client (JSON gateway), sealing, shared certificates,
        // ACME state, locks, membership.
        .target(name: "Cluster", dependencies: ["Locking", "ControlClient", "Certificates", "ACME", "TLS", "COpenSSL", "Logs", "Metrics", "Config"]),
        // OCSP stapling: responses fetched, checked and refreshed off the loops, stapled by TLS.
        .target(name: "OCSP", dependencies: ["Locking", "TLS", "Certificates", "ControlClient", "HTTP1", "Logs"]),
        // DNS wire codec, RFC 2136 UPDATE, TSIG and a blocking client: the DNS-01 solver's groundwork.
        .target(name: "DNS", dependencies: ["EventLoop", "COpenSSL"]),
        .executableTarget(name: "edgeproxy", dependencies: ["Front", "Config", "Certificates", "TLS", "EventLoop", "Logs", "Proxy", "Admin", "Metrics", "ACME", "CSystem", "Cluster", "DNS", "ControlClient", "HTTP1", "Health", "OCSP",
                                                          "CBuildInfo", "COpenSSL", "CNghttp2", "Lifecycle",
                                                          .product(name: "ArgumentParser", package: "swift-argument-parser")]),
        // SNI lookup cost at scale, in process (bench/certs100k.py runs it).
        .executableTarget(name: "bench-sni", dependencies: ["Certificates", "TLS"]),

        .testTarget(name: "HTTP1Tests", dependencies: ["HTTP1"]),
        .testTarget(name: "ProxyTests", dependencies: ["Proxy", "Config", "EventLoop", "Metrics"]),
        .testTarget(name: "ProxyProtocolTests", dependencies: ["ProxyProtocol"]),
        .testTarget(name: "HTTP2Tests", dependencies: ["HTTP2", "HTTP1"]),
        .testTarget(name: "ConfigTests", dependencies: ["Config"]),
        .testTarget(name: "CertificatesTests", dependencies: ["Certificates", "TLS"]),
        .testTarget(name: "HealthTests", dependencies: ["Health", "Proxy", "Config", "Metrics", "TestSupport"]),
        .testTarget(name: "AdminTests", dependencies: ["Admin", "Certificates", "EventLoop", "Metrics", "TestSupport"]),
        .testTarget(name: "MetricsTests", dependencies: ["Metrics"]),
        .testTarget(name: "EventLoopTests", dependencies: ["EventLoop", "Locking"]),
        .testTarget(name: "FrontTests", dependencies: ["Front", "EventLoop", "Logs", "Metrics"]),
        .testTarget(name: "LifecycleTests", dependencies: ["Lifecycle", "Front", "EventLoop"]),
        // Temporary directories, programs, free ports: for the test targets that start real servers.
        .target(name: "TestSupport", path: "Tests/TestSupport"),
        .testTarget(name: "ACMETests", dependencies: ["ACME", "TLS", "HTTP1", "Certificates", "Config", "DNS", "TestSupport"]),
        .testTarget(name: "ControlClientTests", dependencies: ["ControlClient", "TLS", "HTTP1", "TestSupport"]),
        .testTarget(name: "DNSTests", dependencies: ["DNS", "TestSupport"]),
        .testTarget(name: "OCSPTests", dependencies: ["OCSP", "TLS", "TestSupport"]),
        .testTarget(name: "ClusterTests", dependencies: ["Cluster", "ControlClient", "Certificates", "TLS", "ACME", "TestSupport"]),

        // libFuzzer targets for the parsers that take outside bytes (`make fuzz`, Tests/Fuzz/README.md).
        // Built normally they read corpus files; `make fuzz` builds them with -sanitize=fuzzer,address.
        .target(name: "FuzzSupport", path: "Tests/Fuzz/Support"),
        .executableTarget(name: "FuzzHTTP1Request", dependencies: ["HTTP1", "FuzzSupport"], path: "Tests/Fuzz/HTTP1Request"),
        .executableTarget(name: "FuzzHTTP1Session", dependencies: ["HTTP1", "FuzzSupport"], path: "Tests/Fuzz/HTTP1Session"),
        .executableTarget(name: "FuzzHTTP1Response", dependencies: ["HTTP1", "FuzzSupport"], path: "Tests/Fuzz/HTTP1Response"),
        .executableTarget(name: "FuzzHTTP2", dependencies: ["HTTP2", "HTTP1", "FuzzSupport"], path: "Tests/Fuzz/HTTP2"),
        .executableTarget(name: "FuzzProxyProtocol", dependencies: ["ProxyProtocol", "FuzzSupport"], path: "Tests/Fuzz/ProxyProtocol"),
        .executableTarget(name: "FuzzCertificates", dependencies: ["Certificates", "TLS", "FuzzSupport"], path: "Tests/Fuzz/Certificates"),
        .executableTarget(name: "FuzzConfig", dependencies: ["Config", "FuzzSupport"], path: "Tests/Fuzz/Config"),
        .executableTarget(name: "FuzzACME", dependencies: ["ACME", "FuzzSupport"], path: "Tests/Fuzz/ACME"),
        .executableTarget(name: "FuzzEtcd", dependencies: ["Cluster", "ACME", "ControlClient", "TLS", "FuzzSupport"], path: "Tests/Fuzz/Etcd"),
    ]
)

// The data path's modules skip the run-time exclusivity checks in release builds, as `assert` is
// skipped there: debug builds (every unit and end-to-end test) keep them, and the compiler's static
// checks stay on. On the loops they cost ~65 calls into the runtime per proxied request (~2.5 % of
// its CPU), and they only catch re-entrant access on one thread, which the tests exercise.
let dataPath: Set<String> = ["EventLoop", "HTTP1", "HTTP2", "Proxy", "Front", "TLS", "Metrics"]
for target in package.targets where dataPath.contains(target.name) {
    target.swiftSettings = (target.swiftSettings ?? []) + [.unsafeFlags(["-enforce-exclusivity=unchecked"], .when(configuration: .release))]
}
