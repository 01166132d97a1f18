#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif
import Foundation
import Yams

/// Builds `Settings` section by section from the composed tree. Each section reader owns its
/// keys, their defaults and their checks; cross-section checks (routes → upstreams) come last.
struct SettingsReader {
    let source: ConfigSource

    static let topLevelKeys = ["workers", "listen", "tls", "timeouts", "limits", "upstreams", "routes", "log", "http2", "admin", "acme", "cluster"]

    func settings(_ root: Node?) throws(ConfigError) -> Settings {
        let map = try mapping(root, name: "the configuration", location: "at the top level",
                              keys: Self.topLevelKeys)
        let (upstreams, upstreamOrder) = try self.upstreams(map["upstreams"])
        var settings = Settings(
            workers: try workers(map["workers"]),
            listen: try listen(map["listen"]),
            tls: try tls(map["tls"], listen: try listen(map["listen"])),
            timeouts: try timeouts(map["timeouts"]),
            limits: try limits(map["limits"]),
            upstreams: upstreams,
            routes: try routes(map["routes"], upstreams: upstreamOrder),
            log: try log(map["log"]))
        settings.http2 = try http2(map["http2"])
        settings.admin = try admin(map["admin"])
        settings.acme = try acme(map["acme"], listen: settings.listen)
        settings.cluster = try cluster(map["cluster"])
        return settings
    }

    /// An absent section reads as an empty one, so every key in it takes its default.
    func mapping(_ node: Node?, name: String, location: String? = nil, keys: [String]?) throws(ConfigError) -> MappingReader {
        guard let node else { return MappingReader.empty }
        return try MappingReader(node, name: name, location: location, allowedKeys: keys, source: source)
    }

    // MARK: - workers

    static let maxWorkers = 256

    func workers(_ node: Node?) throws(ConfigError) -> Int {
        guard let node else { return Self.onlineCores() }
        let expected = "\"auto\" or an integer from 1 to \(Self.maxWorkers)"
        let text = try source.scalar(node, expected: expected)
        if text == "auto" { return Self.onlineCores() }
        guard let count = ValueSyntax.digits(Substring(text)), (1...Int64(Self.maxWorkers)).contains(count) else {
            throw source.error("expected \(expected), got \(node.foundDescription)", at: node)
        }
        return Int(count)
    }

    static func onlineCores() -> Int {
        let cores = sysconf(Int32(_SC_NPROCESSORS_ONLN))
        return min(max(Int(cores), 1), maxWorkers)
    }

    // MARK: - listen

    static let defaultHTTPS = [SocketAddressSpec(host: "", port: 8443)]
    static let defaultHTTP = [SocketAddressSpec(host: "", port: 8080)]

    func listen(_ node: Node?) throws(ConfigError) -> Listen {
        let map = try mapping(node, name: "listen", keys: ["https", "http", "redirect_port", "proxy_protocol", "upgrade_socket"])
        var seen: [(address: SocketAddressSpec, node: Node)] = []
        var https = Self.defaultHTTPS
        if let value = map["https"] {
            https = try addresses(value, name: "listen.https", seen: &seen)
            // Without a TLS listener the http role only redirects to nowhere.
            if https.isEmpty { throw source.error("listen.https needs at least one address", at: value) }
        }
        var http = Self.defaultHTTP
        if let value = map["http"] { http = try addresses(value, name: "listen.http", seen: &seen) }
        var redirectPort: UInt16?
        if let value = map["redirect_port"] { redirectPort = try source.port(value) }
        var listen = Listen(https: https, http: http, redirectPort: redirectPort)
        if let value = map["proxy_protocol"] { listen.proxyProtocol = try proxyProtocol(value, listeners: https + http) }
        if let value = map["upgrade_socket"] {
            let path = try source.string(value, expected: "a socket path, or \"off\"")
            if path == "off" {
                listen.upgradeSocket = .off
            } else {
                let resolved = source.resolve(path: path)
                // sockaddr_un holds 107 bytes and a NUL.
                guard resolved.utf8.count <= 107 else {
                    throw source.error("listen.upgrade_socket is \(resolved.utf8.count) bytes long once resolved; a Unix socket path "
                                       + "holds at most 107: choose a shorter path", at: value)
                }
                listen.upgradeSocket = .path(resolved)
            }
        }
        return listen
    }

    /// `listen.proxy_protocol`: `from` (required: who may send the header) and `listeners`.
    func proxyProtocol(_ node: Node, listeners: [SocketAddressSpec]) throws(ConfigError) -> ProxyProtocolSettings {
        let map = try mapping(node, name: "listen.proxy_protocol", keys: ["from", "listeners"])
        guard let fromNode = map["from"] else {
            throw source.error("listen.proxy_protocol needs `from`: the load balancers' addresses or blocks (e.g. [\"10.0.0.0/8\"]); "
                               + "a header from anyone else would let any client claim any address", at: node)
        }
        var from: [CIDR] = []
        for item in try source.list(fromNode, of: "listen.proxy_protocol.from") {
            let text = try source.string(item, expected: "an address or block like \"10.0.0.0/8\"")
            guard let block = CIDR(text) else {
                throw source.error("expected an IP address or block like \"10.0.0.0/8\" or \"2001:db8::/32\", got \(item.foundDescription)", at: item)
            }
            from.append(block)
        }
        guard !from.isEmpty else { throw source.error("listen.proxy_protocol.from needs at least one address or block", at: fromNode) }
        var settings = ProxyProtocolSettings(from: from)
        if let value = map["listeners"] {
            for item in try source.list(value, of: "listen.proxy_protocol.listeners") {
                let address = try source.address(item)
                guard listeners.contains(address) else {
                    throw source.error("\(quoted(address.description)) is not one of listen.https or listen.http", at: item)
                }
                settings.listeners.append(address)
            }
        }
        return settings
    }

    /// Reads a listener list and rejects any address a previous listener already binds: the same
    /// address twice, or a specific address on a port some listener holds for all addresses.
    func addresses(_ node: Node, name: String,
                   seen: inout [(address: SocketAddressSpec, node: Node)]) throws(ConfigError) -> [SocketAddressSpec] {
        var result: [SocketAddressSpec] = []
        for item in try source.list(node, of: name) {
            let address = try source.address(item)
            for earlier in seen where earlier.address.port == address.port {
                if earlier.address == address {
                    throw source.error("listener \(quoted(address.description)) is already listed at "
                                       + position(earlier.node.mark), at: item)
                }
                if earlier.address.host.isEmpty || address.host.isEmpty {
                    throw source.error("listener \(quoted(address.description)) overlaps the one at "
                                       + "\(position(earlier.node.mark)), which together cover port \(address.port) "
                                       + "twice (an empty host means every address)", at: item)
                }
            }
            seen.append((address, item))
            result.append(address)
        }
        return result
    }

    // MARK: - tls

    static let tlsKeys = ["certificate_dir", "certificates", "default", "strict_sni", "min_version",
                          "session_tickets", "ticket_key_rotation", "self_signed", "watch", "client_auth",
                          "ocsp_stapling", "ocsp_cache"]

    /// `tls.client_auth`: ca (required), crl, mode, listeners, names, headers.
    func clientAuth(_ node: Node, listen: Listen) throws(ConfigError) -> ClientAuthSettings {
        let map = try mapping(node, name: "tls.client_auth", keys: ["ca", "crl", "mode", "listeners", "names", "headers"])
        guard let caNode = map["ca"] else {
            throw source.error("tls.client_auth needs `ca`: a PEM file of the CAs that issue the client certificates", at: node)
        }
        func readable(_ value: Node, _ what: String) throws(ConfigError) -> String {
            let path = try source.path(value)
            guard FileManager.default.isReadableFile(atPath: path) else {
                throw source.error("tls.client_auth.\(what): cannot read \(quoted(path))", at: value)
            }
            return path
        }
        var settings = ClientAuthSettings(ca: try readable(caNode, "ca"))
        if let value = map["crl"] { settings.crl = try readable(value, "crl") }
        if let value = map["mode"] { settings.required = try source.choice(value, ["required", "optional"]) == "required" }
        if let value = map["listeners"] {
            for item in try source.list(value, of: "tls.client_auth.listeners") {
                let address = try source.address(item)
                guard listen.https.contains(address) else { throw source.error("\(quoted(address.description)) is not one of listen.https", at: item) }
                settings.listeners.append(address)
            }
        }
        if let value = map["names"] {
            settings.names = try source.list(value, of: "tls.client_auth.names").map { (n) throws(ConfigError) in try source.hostPattern(n, wildcard: true) }
        }
        if let value = map["headers"] {
            let headers = try mapping(value, name: "tls.client_auth.headers", keys: ["subject", "sans", "fingerprint"])
            func name(_ key: String) throws(ConfigError) -> String? {
                guard let n = headers[key] else { return nil }
                if n.isNull { return nil }
                let text = try source.string(n, expected: "a header name like X-Client-Cert-Subject, or null")
                guard !text.isEmpty, text.utf8.allSatisfy({ $0 > 0x20 && $0 < 0x7F && !"()<>@,;:\\\"/[]?={}".utf8.contains($0) }) else {
                    throw source.error("expected a header name like X-Client-Cert-Subject, got \(n.foundDescription)", at: n)
                }
                return text
            }
            if headers["subject"] != nil { settings.subjectHeader = try name("subject") }
            if headers["sans"] != nil { settings.sansHeader = try name("sans") }
            if headers["fingerprint"] != nil { settings.fingerprintHeader = try name("fingerprint") }
        }
        return settings
    }

    func tls(_ node: Node?, listen: Listen) throws(ConfigError) -> TLSSettings {
        let map = try mapping(node, name: "tls", keys: Self.tlsKeys)
        var settings = TLSSettings(certificateDirectory: nil, certificates: [], defaultName: nil, strictSNI: false,
                                   minVersion: .tls12, sessionTickets: 2, ticketKeyRotation: 3600,
                                   selfSignedNames: ["localhost"])
        if let value = map["certificate_dir"] { settings.certificateDirectory = try source.path(value) }
        if let value = map["certificates"] {
            for item in try source.list(value, of: "tls.certificates") {
                settings.certificates.append(try certificate(item))
            }
        }
        if let value = map["default"] { settings.defaultName = try source.hostPattern(value, wildcard: true) }
        if let value = map["strict_sni"] { settings.strictSNI = try source.bool(value) }
        if let value = map["min_version"] {
            settings.minVersion = TLSVersion(rawValue: try source.choice(value, ["1.2", "1.3"])) ?? .tls12
        }
        // OpenSSL takes any count; a handful covers parallel connections of one browser.
        if let value = map["session_tickets"] { settings.sessionTickets = try source.int(value, in: 0...16) }
        if let value = map["ticket_key_rotation"] { settings.ticketKeyRotation = try source.duration(value) }
        if let value = map["watch"] { settings.watch = try source.bool(value) }
        if let value = map["client_auth"] { settings.clientAuth = try clientAuth(value, listen: listen) }
        if let value = map["ocsp_stapling"] { settings.ocspStapling = try source.bool(value) }
        settings.ocspCache = source.resolve(path: "ocsp-cache")
        if let value = map["ocsp_cache"] { settings.ocspCache = try source.path(value) }
        if let value = map["self_signed"] {
            settings.selfSignedNames = []
            for item in try source.list(value, of: "tls.self_signed") {
                settings.selfSignedNames.append(try source.hostPattern(item, wildcard: true))
            }
        }
        return settings
    }

    func certificate(_ node: Node) throws(ConfigError) -> CertificateFiles {
        let map = try mapping(node, name: "a tls.certificates entry", keys: ["cert", "key"])
        guard let cert = map["cert"], let key = map["key"] else {
            let missing = map["cert"] == nil ? "cert" : "key"
            throw source.error("a tls.certificates entry needs both cert and key (\(missing) is missing)", at: node)
        }
        return CertificateFiles(cert: try source.path(cert), key: try source.path(key))
    }

    // MARK: - timeouts, limits, log

    func timeouts(_ node: Node?) throws(ConfigError) -> Timeouts {
        let map = try mapping(node, name: "timeouts", keys: ["handshake", "header", "idle", "upstream_connect",
                                                             "upstream_response", "shutdown"])
        func read(_ key: String, _ fallback: Double) throws(ConfigError) -> Double {
            guard let value = map[key] else { return fallback }
            return try source.duration(value)
        }
        return Timeouts(handshake: try read("handshake", 10), header: try read("header", 15), idle: try read("idle", 60),
                        upstreamConnect: try read("upstream_connect", 5),
                        upstreamResponse: try read("upstream_response", 60), shutdown: try read("shutdown", 30))
    }

    func limits(_ node: Node?) throws(ConfigError) -> Limits {
        let map = try mapping(node, name: "limits", keys: ["max_header_bytes", "max_headers", "max_body",
                                                           "max_connections_per_worker"])
        var limits = Limits(maxHeaderBytes: 16 * 1024, maxHeaders: 100, maxBodyBytes: 0, maxConnectionsPerWorker: 10_000)
        // A request line alone needs some room; below 1k every real client would get 431.
        if let value = map["max_header_bytes"] { limits.maxHeaderBytes = Int(try source.size(value, minimum: 1024)) }
        if let value = map["max_headers"] { limits.maxHeaders = try source.int(value, in: 1...Int.max) }
        if let value = map["max_body"] { limits.maxBodyBytes = try source.size(value) }
        if let value = map["max_connections_per_worker"] {
            limits.maxConnectionsPerWorker = try source.int(value, in: 1...Int.max)
        }
        return limits
    }

    func log(_ node: Node?) throws(ConfigError) -> LogSettings {
        let map = try mapping(node, name: "log", keys: ["access", "level", "format", "error", "access_queue"])
        var log = LogSettings(access: "stdout", level: "info")
        if let value = map["access"] {
            let access = try source.string(value, expected: "\"stdout\", \"off\" or a file path")
            log.access = access == "stdout" || access == "off" ? access : source.resolve(path: access)
        }
        if let value = map["level"] { log.level = try source.choice(value, ["info", "debug"]) }
        if let value = map["format"] { log.format = AccessLogFormat(rawValue: try source.choice(value, ["json", "combined"]))! }
        // Two loops' buffers (32k each) at least, or every hand-off would be dropped.
        if let value = map["access_queue"] { log.accessQueueBytes = Int(try source.size(value, minimum: 64 * 1024)) }
        if let value = map["error"] {
            let error = try source.string(value, expected: "\"stderr\" or a file path")
            log.error = error == "stderr" ? error : source.resolve(path: error)
        }
        return log
    }
}

