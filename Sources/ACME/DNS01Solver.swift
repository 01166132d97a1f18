import DNS
import Foundation
import Glibc
import Locking
import Logs
import TLS

/// Where and how the DNS-01 solver writes its TXT records (RFC 2136: signed UPDATEs to the
/// primary) and where it checks that they arrived.
public struct DNS01Configuration: Sendable {
    /// How the TXT record is written: signed UPDATEs to a primary, or an operator's program.
    public enum Writer: Sendable {
        /// RFC 2136 to the primary name server (an IP address) with this TSIG key.
        case rfc2136(server: String, port: Int, key: TSIGKey)
        /// `command present|cleanup FQDN VALUE` (lego's exec provider convention), bounded by `timeout`.
        case exec(command: String, timeout: Double)
    }
    public var writer: Writer
    /// The zone to update; nil: the closest enclosing zone the primary has an SOA for.
    public var zone: String?
    public var ttl: UInt32 = 60
    /// How long every check server has to answer the value before `present` gives up.
    public var propagationTimeout: Double = 60
    /// IP/port pairs to check at; empty: every NS of the zone, port 53.
    public var checkServers: [(host: String, port: Int)] = []
    public var pollInterval: Double = 0.25
    /// Per DNS exchange.
    public var queryTimeout: Double = 2

    public init(server: String, port: Int, key: TSIGKey) {
        writer = .rfc2136(server: server, port: port, key: key)
    }

    /// The `exec` provider: the program writes the record; no CNAME is followed (the program gets
    /// `_acme-challenge.NAME.`), and propagation is checked at `checkServers` when there are any
    /// (otherwise the program is trusted to return once the record is live, as lego's is).
    public init(command: String, timeout: Double) {
        writer = .exec(command: command, timeout: timeout)
    }
}

/// DNS-01 (RFC 8555 §8.4): the TXT record `_acme-challenge.<domain>` holding
/// base64url(SHA-256(key authorization)), written with a signed RFC 2136 UPDATE. When that name
/// is a CNAME (delegating the challenge to another zone), the record goes to the CNAME's target.
/// `present` returns once every check server answers the value, so the CA finds it.
public struct DNS01Solver: ChallengeSolver {
    public let challengeType = ChallengeType.dns01
    public let configuration: DNS01Configuration
    /// What `GET /acme` shows of DNS-01: records present now, propagation waits, failures.
    public let activity = DNS01Activity()

    public init(configuration: DNS01Configuration) { self.configuration = configuration }

    /// RFC 8555 §8.4: the TXT record's value, base64url without padding of SHA-256 of the key authorization.
    public static func txtValue(keyAuthorization: String) -> String {
        Base64URL.encode(Digest.sha256(Array(keyAuthorization.utf8)))
    }

    /// The primary (rfc2136); nil for the exec provider, which has none.
    var primary: DNSClient? {
        guard case .rfc2136(let server, let port, _) = configuration.writer else { return nil }
        return DNSClient(server: server, port: port, timeout: configuration.queryTimeout)
    }

    public func present(domain: String, token: String, keyAuthorization: String) throws {
        do { try write(domain: domain, keyAuthorization: keyAuthorization) } catch {
            activity.update { $0.failed += 1; $0.lastError = "\(error)" }
            throw error
        }
    }

    private func write(domain: String, keyAuthorization: String) throws {
        let value = Self.txtValue(keyAuthorization: keyAuthorization)
        let (name, zone) = try target(for: domain)
        switch configuration.writer {
        case .rfc2136(_, _, let key):
            do {
                try primary!.update(DNSUpdate(zone: zone).message(id: .random(in: .min ... .max),
                                                                   DNSRecord(name: name, ttl: configuration.ttl, .txt(value))), key: key)
            } catch {
                throw ACMEError(.dns, "DNS-01 for \(domain): adding TXT \(name) in zone \(zone): \(error.reason)")
            }
        case .exec(let command, let timeout):
            try ExternalProgram.run(command, ["present", name + ".", value], timeout: timeout, what: "DNS-01 for \(domain)")
        }
        // The issuer only cleans up what was presented: a record that never propagated is deleted here.
        let started = Date()
        do { try waitForPropagation(name: name, zone: zone, value: value, domain: domain) } catch {
            delete(name: name, zone: zone, value: value, domain: domain)
            throw error
        }
        activity.update { $0.present += 1; $0.presented += 1; $0.lastPropagationSeconds = Date().timeIntervalSince(started) }
    }

    public func cleanUp(domain: String, token: String, keyAuthorization: String) {
        activity.update { $0.present = max(0, $0.present - 1) }
        let value = Self.txtValue(keyAuthorization: keyAuthorization)
        do {
            let (name, zone) = try target(for: domain)
            delete(name: name, zone: zone, value: value, domain: domain)
        } catch {
            Log.warning("DNS-01 for \(domain): could not find the challenge TXT record to delete: \(error)")
        }
    }

    /// Deletes exactly this value (RFC 2136 §2.5.4), leaving other pending authorizations' values.
    private func delete(name: String, zone: String, value: String, domain: String) {
        do {
            switch configuration.writer {
            case .rfc2136(_, _, let key):
                try primary!.update(DNSUpdate(zone: zone).message(id: .random(in: .min ... .max),
                                                                   DNSRecord(name: name, dnsClass: .none, ttl: 0, .txt(value))), key: key)
            case .exec(let command, let timeout):
                try ExternalProgram.run(command, ["cleanup", name + ".", value], timeout: timeout, what: "DNS-01 for \(domain)")
            }
        } catch {
            Log.warning("DNS-01 for \(domain): could not delete TXT \(name) in zone \(zone): \(error)")
        }
    }

    /// The name the TXT record goes to (`_acme-challenge.<domain>`, or where its CNAMEs lead) and its zone.
    func target(for domain: String) throws(ACMEError) -> (name: String, zone: String) {
        var name = DNSUpdate.challengeName(for: domain)
        guard primary != nil else { return (name, configuration.zone ?? "") }  // exec: the program's business
        var seen: Set<String> = [name]
        // RFC 8555 §8.4 lets the CA follow CNAMEs; follow them the same way (a few hops, no loops).
        while let next = try cname(of: name) {
            guard seen.insert(next.lowercased()).inserted, seen.count <= 8 else {
                throw ACMEError(.dns, "DNS-01 for \(domain): the CNAMEs from \(DNSUpdate.challengeName(for: domain)) loop or go on too long")
            }
            name = next
        }
        if let zone = configuration.zone, Self.name(name, isIn: zone) { return (name, zone) }
        return (name, try enclosingZone(of: name, domain: domain))
    }

    private func cname(of name: String) throws(ACMEError) -> String? {
        let answers: [DNSRecord]
        do { answers = try primary!.query(name: name, type: .cname) } catch {
            if error.code == .rcode { return nil }  // REFUSED: outside the primary's zones, no CNAME it knows
            throw ACMEError(.dns, "DNS-01: looking up a CNAME at \(name): \(error.reason)")
        }
        for record in answers where record.name.lowercased() == name.lowercased() {
            if case .cname(let target) = record.data { return target }
        }
        return nil
    }

    /// Walks up from `name` until the primary answers an SOA for the name itself.
    func enclosingZone(of name: String, domain: String) throws(ACMEError) -> String {
        var labels = name.split(separator: ".").map(String.init)
        while !labels.isEmpty {
            let candidate = labels.joined(separator: ".")
            do {
                let answers = try primary!.query(name: candidate, type: .soa)
                if answers.contains(where: { $0.type == .soa && $0.name.lowercased() == candidate.lowercased() }) { return candidate }
            } catch where error.code == .rcode {
                // Not a zone the primary serves; keep walking up.
            } catch {
                throw ACMEError(.dns, "DNS-01 for \(domain): looking up the zone of \(name): \(error.reason)")
            }
            labels.removeFirst()
        }
        throw ACMEError(.dns, "DNS-01 for \(domain): \(primary!.peer) serves no zone above \(name); "
                        + "set acme.dns.zone or check the server address")
    }

    static func name(_ name: String, isIn zone: String) -> Bool {
        let n = name.lowercased(), z = zone.lowercased()
        return n == z || n.hasSuffix("." + z)
    }

    /// Polls every check server directly until each answers `value` for `name`.
    private func waitForPropagation(name: String, zone: String, value: String, domain: String) throws {
        // The exec provider without check servers has no primary to find the zone's NS at.
        if configuration.checkServers.isEmpty && primary == nil { return }
        let servers = configuration.checkServers.isEmpty ? try nameServers(of: zone) : configuration.checkServers
        let deadline = Date().addingTimeInterval(configuration.propagationTimeout)
        for server in servers {
            let client = DNSClient(server: server.host, port: server.port, timeout: configuration.queryTimeout)
            var last = "no answer yet"
            while true {
                do {
                    let texts = try client.query(name: name, type: .txt).compactMap(\.data.text)
                    if texts.contains(value) { break }
                    last = texts.isEmpty ? "no TXT record" : "other TXT values only"
                } catch {
                    last = error.reason
                }
                guard Date() < deadline else {
                    throw ACMEError(.timedOut, "DNS-01 for \(domain): \(client.peer) did not answer TXT \(name) with the challenge value "
                                    + "within \(configuration.propagationTimeout) s (\(last))")
                }
                usleep(UInt32(configuration.pollInterval * 1_000_000))
            }
        }
    }

    /// The zone's NS records, each name resolved to addresses (the primary first, then the system resolver), port 53.
    private func nameServers(of zone: String) throws(ACMEError) -> [(host: String, port: Int)] {
        let names: [String]
        do {
            names = try primary!.query(name: zone, type: .ns).compactMap { if case .ns(let n) = $0.data { n } else { nil } }
        } catch {
            throw ACMEError(.dns, "DNS-01: looking up the NS records of \(zone): \(error.reason)")
        }
        var servers: [(host: String, port: Int)] = []
        for name in names {
            var addresses = ((try? primary!.query(name: name, type: .a)) ?? []).compactMap { record -> String? in
                guard case .a(let b) = record.data, b.count == 4 else { return nil }
                return "\(b[0]).\(b[1]).\(b[2]).\(b[3])"
            }
            if addresses.isEmpty { addresses = Self.resolve(name) }
            guard !addresses.isEmpty else { throw ACMEError(.dns, "DNS-01: name server \(name) of \(zone) has no address") }
            servers += addresses.map { ($0, 53) }
        }
        guard !servers.isEmpty else { throw ACMEError(.dns, "DNS-01: zone \(zone) has no NS records to check propagation at") }
        return servers
    }

    /// IPv4 and IPv6 addresses of `host` through getaddrinfo.
    static func resolve(_ host: String) -> [String] {
        var hints = addrinfo()
        hints.ai_socktype = Int32(SOCK_DGRAM.rawValue)
        var list: UnsafeMutablePointer<addrinfo>?
        guard getaddrinfo(host, nil, &hints, &list) == 0 else { return [] }
        defer { freeaddrinfo(list) }
        var result: [String] = []
        var cursor = list
        while let entry = cursor {
            var buffer = [CChar](repeating: 0, count: Int(NI_MAXHOST))
            if getnameinfo(entry.pointee.ai_addr, entry.pointee.ai_addrlen, &buffer, socklen_t(buffer.count), nil, 0, NI_NUMERICHOST) == 0 {
                let text = String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
                if !result.contains(text) { result.append(text) }
            }
            cursor = entry.pointee.ai_next
        }
        return result
    }
}

/// Runs an operator's program with a deadline (SIGKILL past it); its output goes into the error.
/// `input` goes to its stdin (nil: /dev/null); `setting` names the key to check when it cannot start.
enum ExternalProgram {
    static func run(_ command: String, _ arguments: [String], input: [UInt8]? = nil, timeout: Double, what: String,
                    code: ACMEError.Code = .dns, setting: String = "acme.dns.command") throws(ACMEError) {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: command)
        process.arguments = arguments
        let output = Pipe()
        process.standardOutput = output
        process.standardError = output
        if let input { process.standardInput = try Self.inputFile(input, what: what, code: code) } else { process.standardInput = FileHandle.nullDevice }
        let done = DispatchSemaphore(value: 0)
        process.terminationHandler = { _ in done.signal() }
        do { try process.run() } catch {
            throw ACMEError(code, "\(what): cannot run \(command): \(error) (check \(setting) and its execute permission)")
        }
        if done.wait(timeout: .now() + timeout) == .timedOut {
            kill(process.processIdentifier, SIGKILL)
            done.wait()
            throw ACMEError(code, "\(what): \(command) \(arguments[0]) did not finish within \(timeout) s; it was killed")
        }
        let text = String(decoding: output.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        guard process.terminationStatus == 0 else {
            throw ACMEError(code, "\(what): \(command) \(arguments.joined(separator: " ")) exited with status \(process.terminationStatus): "
                            + String(text.suffix(500)).trimmingCharacters(in: .whitespacesAndNewlines))
        }
    }
}

/// DNS-01's activity, for the admin API: safe from any thread.
public final class DNS01Activity: Sendable {
    public struct Counts: Sendable {
        /// Records written and not cleaned up yet.
        public var present = 0
        public var presented = 0
        public var failed = 0
        /// How long the last record took to be answered by every check server.
        public var lastPropagationSeconds: Double?
        public var lastError: String?
    }
    private let counts = Locked(Counts())
    public init() {}
    public var current: Counts { counts.withLock { $0 } }
    func update(_ change: (inout Counts) -> Void) { counts.withLock { change(&$0) } }
}
