// swift-tools-version: 6.0
import PackageDescription

let package = Package(
    name: "edgeproxy",
    products: [
        .executable(name: "edgeproxy", targets: ["edgeproxy"]),
    ],
    dependencies: [
        .package(url: "https://github.com/jpsim/Yams", from: "5.0.1"),
    ],
    targets: [
        // C libraries and the shims for what Swift cannot import (macros, _GNU_SOURCE calls).
        .systemLibrary(name: "COpenSSL", pkgConfig: "openssl",
                       providers: [.apt(["libssl-dev"])]),
        .target(name: "CSystem"),

        // accept → handshake (SNI → certificate) → HTTP/1 → route → upstream pool → response
        .target(name: "EventLoop", dependencies: ["CSystem"]),
        .target(name: "HTTP1"),
        .target(name: "TLS", dependencies: ["COpenSSL"]),
        .target(name: "Certificates", dependencies: ["TLS", "COpenSSL"]),
        .target(name: "Config", dependencies: ["Yams"]),
        .target(name: "Proxy", dependencies: ["EventLoop", "HTTP1", "Config"]),
        .target(name: "Front", dependencies: ["EventLoop", "TLS", "HTTP1", "Certificates", "Proxy", "Config", "COpenSSL"]),
        .executableTarget(name: "edgeproxy", dependencies: ["Front", "Config", "Certificates", "TLS", "EventLoop", "Proxy"]),

        .testTarget(name: "HTTP1Tests", dependencies: ["HTTP1"]),
        .testTarget(name: "ConfigTests", dependencies: ["Config"]),
        .testTarget(name: "CertificatesTests", dependencies: ["Certificates", "TLS"]),
    ]
)
