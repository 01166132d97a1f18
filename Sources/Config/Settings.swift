// The validated, typed configuration. Everything the running proxy reads comes from here;
// `ConfigLoader` is the only producer, so every value below has already been checked.

public struct Settings: Sendable, Equatable {
    /// Event loops (worker threads). Default: one per online core.
    public var workers: Int
    public var listen: Listen
    public var tls: TLSSettings
    public var timeouts: Timeouts
    public var limits: Limits
    public var upstreams: [String: Upstream]
    /// In file order: the first route that matches wins.
    public var routes: [Route]
    public var log: LogSettings
    /// The HTTP/2 front (ALPN h2); outside the initializer so it can keep its defaults.
    public var http2 = HTTP2Limits()
    /// The admin API (certificates, reload, metrics); nil: off.
    public var admin: AdminSettings?
    /// Certificates obtained and renewed through ACME; nil: off.
    public var acme: ACMESettings?
    /// Shared state in etcd; nil: a single node on local files.
    public var cluster: ClusterSettings?

    public init(workers: Int, listen: Listen, tls: TLSSettings, timeouts: Timeouts, limits: Limits,
                upstreams: [String: Upstream], routes: [Route], log: LogSettings) {
        self.workers = workers; self.listen = listen; self.tls = tls; self.timeouts = timeouts
        self.limits = limits; self.upstreams = upstreams; self.routes = routes; self.log = log
    }
}

/// "host:port"; host may be an IPv4 literal, `[IPv6]`, `*` / empty (all addresses), or `localhost`.
public struct SocketAddressSpec: Sendable, Hashable, CustomStringConvertible {
    public var host: String
    public var port: UInt16
    public init(host: String, port: UInt16) { self.host = host; self.port = port }
    public var description: String { host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)" }
}

public struct Listen: Sendable, Equatable {
    /// TLS front (HTTP/1.1; h2 later).
    public var https: [SocketAddressSpec]
    /// Plain port 80 role: ACME HTTP-01 answers, everything else redirected to https. Empty: off.
    public var http: [SocketAddressSpec]
    /// Port written into redirects; nil: the first https port (omitted from the URL when 443).
    public var redirectPort: UInt16?
    /// PROXY protocol headers expected ahead of each connection; nil: none.
    public var proxyProtocol: ProxyProtocolSettings?
    /// Where a new process asks for the listening sockets (`run --upgrade-from`).
    public var upgradeSocket: UpgradeSocket = .automatic
    public init(https: [SocketAddressSpec], http: [SocketAddressSpec], redirectPort: UInt16?) {
        self.https = https; self.http = http; self.redirectPort = redirectPort
    }

    /// The trusted sources when `address` expects a PROXY header, else nil.
    public func proxyProtocolSources(for address: SocketAddressSpec) -> [CIDR]? {
        guard let p = proxyProtocol, p.listeners.isEmpty || p.listeners.contains(address) else { return nil }
        return p.from
    }
}

/// PROXY protocol in (v1 or v2, told apart by their first bytes): connections to the listed
/// listeners must start with a header, and only from `from` (the load balancers).
public struct ProxyProtocolSettings: Sendable, Equatable {
    public var from: [CIDR]
    /// Listeners (from listen.https and listen.http) that expect the header; empty: all of them.
    public var listeners: [SocketAddressSpec] = []
    public init(from: [CIDR]) { self.from = from }
}

/// Mutual TLS: which clients must (or may) present a certificate from `ca`, and how the origin
/// hears of it.
public struct ClientAuthSettings: Sendable, Equatable {
    /// PEM file of the CAs client certificates chain to.
    public var ca: String
    /// PEM CRL file(s) checked for every certificate of a client's chain; nil: none.
    public var crl: String?
    /// `required`: no verified certificate, no handshake. `optional`: the handshake goes on and
    /// only a verified certificate is reported.
    public var required = true
    /// https listeners it applies to; empty: all.
    public var listeners: [SocketAddressSpec] = []
    /// Server names (exact or "*.name") it applies to; empty: every handshake on those listeners.
    public var names: [String] = []
    /// Request fields the verified certificate is forwarded in (nil: not forwarded). Copies a
    /// client sent are always removed.
    public var subjectHeader: String? = "X-Client-Cert-Subject"
    public var sansHeader: String? = "X-Client-Cert-SANs"
    public var fingerprintHeader: String? = "X-Client-Cert-SHA256"
    public init(ca: String) { self.ca = ca }

    /// The header names a client must never supply itself.
    public var headerNames: [String] { [subjectHeader, sansHeader, fingerprintHeader].compactMap { $0 } }
}

public struct CertificateFiles: Sendable, Equatable {
    public var cert: String
    public var key: String
    public init(cert: String, key: String) { self.cert = cert; self.key = key }
}

public enum TLSVersion: String, Sendable, Equatable { case tls12 = "1.2", tls13 = "1.3" }

public struct TLSSettings: Sendable, Equatable {
    /// Directory scanned for certificates: `NAME.crt`/`NAME.key` or `NAME.pem` holding chain + key.
    public var certificateDirectory: String?
    public var certificates: [CertificateFiles]
    /// Name whose certificate answers clients without SNI or with an unknown name; nil: the first loaded.
    public var defaultName: String?
    /// Unknown SNI names get an `unrecognized_name` alert instead of the default certificate.
    public var strictSNI: Bool
    public var minVersion: TLSVersion
    /// Session tickets issued per TLS 1.3 handshake; 0 turns tickets off (TLS 1.2 too).
    public var sessionTickets: Int
    /// Seconds between ticket-key rotations; the previous key still decrypts for one more period.
    public var ticketKeyRotation: Double
    /// With no certificate configured, generate a self-signed P-256 one for these names.
    public var selfSignedNames: [String]
    /// Watch `certificateDirectory` with inotify and apply changes as they land.
    public var watch = true
    /// Client certificates (mutual TLS); nil: none asked for.
    public var clientAuth: ClientAuthSettings?
    /// Staple OCSP responses for certificates whose leaf names a responder.
    public var ocspStapling = true
    /// Where OCSP responses are kept across restarts (nil: not kept).
    public var ocspCache: String?
    public init(certificateDirectory: String?, certificates: [CertificateFiles], defaultName: String?,
                strictSNI: Bool, minVersion: TLSVersion, sessionTickets: Int, ticketKeyRotation: Double,
                selfSignedNames: [String]) {
        self.certificateDirectory = certificateDirectory; self.certificates = certificates
        self.defaultName = defaultName; self.strictSNI = strictSNI; self.minVersion = minVersion
        self.sessionTickets = sessionTickets; self.ticketKeyRotation = ticketKeyRotation
        self.selfSignedNames = selfSignedNames
    }
}

/// All in seconds.
public struct Timeouts: Sendable, Equatable {
    public var handshake: Double
    public var header: Double
    public var idle: Double
    public var upstreamConnect: Double
    public var upstreamResponse: Double
    /// Graceful drain deadline on SIGTERM/SIGINT.
    public var shutdown: Double
    public init(handshake: Double, header: Double, idle: Double, upstreamConnect: Double,
                upstreamResponse: Double, shutdown: Double) {
        self.handshake = handshake; self.header = header; self.idle = idle
        self.upstreamConnect = upstreamConnect; self.upstreamResponse = upstreamResponse
        self.shutdown = shutdown
    }
}

public struct Limits: Sendable, Equatable {
    /// Request line + header fields, bytes (431 past it).
    public var maxHeaderBytes: Int
    /// Header field count (431 past it).
    public var maxHeaders: Int
    /// Default request body limit, bytes; 0 = unlimited. Routes may override (413 past it).
    public var maxBodyBytes: Int64
    /// Open client connections per event loop; new ones wait in the kernel's backlog past it.
    public var maxConnectionsPerWorker: Int
    public init(maxHeaderBytes: Int, maxHeaders: Int, maxBodyBytes: Int64, maxConnectionsPerWorker: Int) {
        self.maxHeaderBytes = maxHeaderBytes; self.maxHeaders = maxHeaders
        self.maxBodyBytes = maxBodyBytes; self.maxConnectionsPerWorker = maxConnectionsPerWorker
    }
}

public enum Balance: String, Sendable, Equatable { case roundRobin = "round_robin", leastConnections = "least_conn" }

public struct Upstream: Sendable, Equatable {
    public var name: String
    public var servers: [SocketAddressSpec]
    public var balance: Balance
    /// Idle keep-alive connections kept per server per event loop.
    public var keepalive: Int
    /// Seconds an idle pooled connection is kept.
    public var keepaliveTimeout: Double
    /// Seconds a server that failed to connect is skipped (passive health).
    public var failTimeout: Double
    /// PROXY protocol header (1 or 2) written first on each connection to a server; nil: none.
    public var proxyProtocol: Int?
    /// Servers given by name are resolved again this often (in the background).
    public var resolveInterval: Double = 30
    /// Active health checks; nil: off (only passive health).
    public var healthCheck: HealthCheck? = nil
    /// TLS towards the servers; nil: plain TCP.
    public var tls: UpstreamTLS? = nil
    public init(name: String, servers: [SocketAddressSpec], balance: Balance, keepalive: Int,
                keepaliveTimeout: Double, failTimeout: Double) {
        self.name = name; self.servers = servers; self.balance = balance; self.keepalive = keepalive
        self.keepaliveTimeout = keepaliveTimeout; self.failTimeout = failTimeout
    }
}

public struct FixedResponse: Sendable, Equatable {
    public var status: Int
    public var body: String
    public var contentType: String
    public init(status: Int, body: String, contentType: String) {
        self.status = status; self.body = body; self.contentType = contentType
    }
}

public enum RouteAction: Sendable, Equatable {
    case proxy(upstream: String)
    case respond(FixedResponse)
}

public struct Route: Sendable, Equatable {
    /// Lower-cased; exact name, `*.suffix` (one label), or nil for any host.
    public var host: String?
    /// Path prefix, starts with "/".
    public var pathPrefix: String
    public var action: RouteAction
    /// Overrides `limits.maxBodyBytes` when set; 0 = unlimited.
    public var maxBodyBytes: Int64?
    /// Add X-Forwarded-For/-Proto/-Host to proxied requests.
    public var forwardedHeaders: Bool
    /// Fields set on every response of the route (an origin's field of the same name is replaced),
    /// as nginx's `add_header ... always` or Traefik's headers middleware.
    public var responseHeaders: [HeaderSetting]
    public init(host: String?, pathPrefix: String, action: RouteAction, maxBodyBytes: Int64?, forwardedHeaders: Bool,
                responseHeaders: [HeaderSetting] = []) {
        self.host = host; self.pathPrefix = pathPrefix; self.action = action
        self.maxBodyBytes = maxBodyBytes; self.forwardedHeaders = forwardedHeaders
        self.responseHeaders = responseHeaders
    }
}

/// One header field from the configuration: a token name, a value without control characters.
public struct HeaderSetting: Sendable, Equatable {
    public var name: String
    public var value: String
    public init(name: String, value: String) { self.name = name; self.value = value }
}

public struct LogSettings: Sendable, Equatable {
    /// "stdout", "off", or a file path (appended).
    public var access: String
    /// "info" or "debug".
    public var level: String
    /// One JSON object per line, or nginx's "combined" line.
    public var format: AccessLogFormat = .json
    /// "stderr", or a file path (appended) the error log goes to instead.
    public var error = "stderr"
    /// Access-log bytes waiting for a slow writer (disk, pipe) beyond which lines are dropped and counted.
    public var accessQueueBytes = 8 << 20
    public init(access: String, level: String, format: AccessLogFormat = .json, error: String = "stderr") {
        self.access = access; self.level = level; self.format = format; self.error = error
    }
}

public enum AccessLogFormat: String, Sendable, Equatable {
    case json, combined
}

/// Where a running node answers a binary upgrade (its listening sockets for the new process).
public enum UpgradeSocket: Sendable, Equatable {
    /// `$RUNTIME_DIRECTORY/edgeproxy.sock` under systemd, else `edgeproxy.sock` beside the configuration.
    case automatic
    case path(String)
    case off
}

/// HTTP/2 front settings and protections (RFC 9113). Header size and count come from `Limits`.
public struct HTTP2Limits: Sendable, Equatable {
    /// Offer h2 in ALPN (preferred over http/1.1).
    public var enabled = true
    /// SETTINGS_MAX_CONCURRENT_STREAMS per connection.
    public var maxConcurrentStreams = 128
    /// SETTINGS_INITIAL_WINDOW_SIZE: request body bytes per stream in flight before the upstream takes them.
    public var initialWindowSize = 256 * 1024
    /// Connection receive window.
    public var connectionWindowSize = 1024 * 1024
    /// Client resets (more than completed streams) that close the connection (CVE-2023-44487).
    public var rapidResetLimit = 100
    /// PING/SETTINGS/PRIORITY/empty DATA frames per second a connection may send (burst: twice that).
    public var controlFramesPerSecond = 100
    public init() {}
}

/// The admin API's listener. Without a token it only answers loopback clients, and a listener
/// that is not loopback-only needs a token (checked at load).
public struct AdminSettings: Sendable, Equatable {
    public var listen: SocketAddressSpec
    /// Bearer token every request must carry (from `token` or the first line of `token_file`).
    public var token: String?
    public init(listen: SocketAddressSpec, token: String?) { self.listen = listen; self.token = token }
}

/// Certificates edgeproxy obtains and renews itself (RFC 8555); nil: off.
public struct ACMESettings: Sendable, Equatable {
    /// The CAs in order of preference (at least one): a name whose issuance keeps failing at one
    /// moves on to the next after `fallbackAfter` failed attempts. Each CA has its own account.
    public var issuers: [ACMEIssuerSettings]
    /// Failed attempts in a row at one CA before a name tries the next.
    public var fallbackAfter = 3
    /// Contact e-mail for the accounts (the CAs' expiry and incident notices); nil: none.
    public var email: String?
    public static let defaultChallenges = ["http-01", "tls-alpn-01"]
    /// The DNS-01 provider; nil: no DNS-01 (and no wildcard names).
    public var dns: ACMEDNSSettings?
    /// Account, certificates (NAME.crt + NAME.key) and locks live here.
    public var storage: String
    /// One entry per certificate; its first name names it.
    public var certificates: [[String]]
    /// When to renew and how to retry; applied without a restart (the rest needs one).
    public var renewal = ACMERenewal()
    /// Where certificate events (obtained, renewed, failed, revoked, expiring soon) go; nil: nowhere.
    public var events: ACMEEventSettings?
    /// Socket timeout for each request to the CA.
    public var requestTimeout: Double = 30
    /// Certificates obtained during the first handshake of a name; nil: off.
    public var onDemand: OnDemandSettings?
    /// The CA's certificate profile for every certificate (draft-ietf-acme-profiles); nil: the CA's default.
    public var profile: String?
    /// Profiles of single certificates, by primary name (over `profile`).
    public var profiles: [String: String] = [:]

    /// A certificate's own profile, else its CA's, else `profile`.
    public func profile(for primary: String, issuer: Int = 0) -> String? {
        profiles[primary] ?? (issuers.indices.contains(issuer) ? issuers[issuer].profile : nil) ?? profile
    }

    /// The first CA's settings (the only one unless `issuers` lists more).
    public var directory: String {
        get { issuers[0].directory }
        set { issuers[0].directory = newValue }
    }
    public var caRoot: String? {
        get { issuers[0].caRoot }
        set { issuers[0].caRoot = newValue }
    }
    public var eab: EABSettings? {
        get { issuers[0].eab }
        set { issuers[0].eab = newValue }
    }
    public var challenges: [String] {
        get { issuers[0].challenges }
        set { issuers[0].challenges = newValue }
    }

    public init(directory: String, storage: String, certificates: [[String]]) {
        self.issuers = [ACMEIssuerSettings(directory: directory)]
        self.storage = storage; self.certificates = certificates
    }
}

/// One CA: where it is, how to trust and bind to it, and which challenges to answer for it.
public struct ACMEIssuerSettings: Sendable, Equatable {
    /// The CA's directory URL (https).
    public var directory: String
    /// PEM file of roots trusted for the CA's API; nil: the system store.
    public var caRoot: String?
    /// External Account Binding (RFC 8555 §7.3.4), when the CA asks for one: key id and the
    /// base64url HMAC key, both from the CA.
    public var eab: EABSettings?
    /// Challenge types in order of preference: "http-01", "tls-alpn-01", "dns-01".
    public var challenges = ACMESettings.defaultChallenges
    /// This CA's certificate profile (profile names are the CA's own); nil: `acme.profile`.
    public var profile: String?
    public init(directory: String) { self.directory = directory }
}

/// On-demand TLS: a handshake for a name that has no certificate waits while one is obtained,
/// when the name is allowed (by `names`, and by the `ask` endpoint when there is one).
public struct OnDemandSettings: Sendable, Equatable {
    /// GET `ask?domain=NAME`; a 200 answer allows the name, anything else (or no answer) does not.
    public var ask: String?
    /// Names allowed: exact, or `*.example.com` for one label under example.com. Empty: every
    /// name `ask` allows.
    public var names: [String] = []
    /// How long an `ask` answer is kept, yes or no.
    public var askCache: Double = 60
    /// Socket timeout of one `ask` request.
    public var askTimeout: Double = 5
    /// How long a handshake waits for its certificate before it takes the default one.
    public var wait: Double = 10
    /// At most `rateLimit` names start issuance within any `rateInterval`, across all names.
    public var rateLimit = 10
    public var rateInterval: Double = 60
    public init() {}

    /// Whether a client's server name may be issued for at all: a host name of two labels or more
    /// (not an IP address), covered by `names` when there are any. `ask` has the last word.
    public func admits(_ name: String) -> Bool {
        guard name.contains("."), ValueSyntax.isHostPattern(name, wildcard: false), !ValueSyntax.isIPv4(name) else { return false }
        guard !names.isEmpty else { return true }
        return names.contains { pattern in
            guard pattern.hasPrefix("*.") else { return pattern == name }
            guard let dot = name.firstIndex(of: ".") else { return false }
            return name[name.index(after: dot)...] == pattern.dropFirst(2)
        }
    }
}

/// DNS-01 through RFC 2136: signed UPDATEs to the zone's primary.
public struct ACMEDNSSettings: Sendable, Equatable {
    /// "rfc2136" (signed UPDATEs to `server`) or "exec" (`command present|cleanup FQDN VALUE`).
    public var provider = "rfc2136"
    /// rfc2136: the primary name server that accepts the UPDATEs (an IP address).
    public var server: SocketAddressSpec?
    /// rfc2136: the TSIG key (HMAC-SHA256): its name and base64 secret, as in named.conf.
    public var keyName: String?
    public var keySecret: String?
    /// exec: the program, and how long one call may take.
    public var command: String?
    public var commandTimeout: Double = 60
    /// The zone the records go in; nil: found by SOA queries walking up from the name.
    public var zone: String?
    /// TTL of the TXT records, seconds.
    public var ttl: Double = 60
    /// How long to wait for every check server to answer the record before telling the CA.
    public var propagationTimeout: Double = 60
    /// Where propagation is checked (IP:port); empty: the zone's NS records, port 53.
    public var checkServers: [SocketAddressSpec] = []

    public init(server: SocketAddressSpec, keyName: String, keySecret: String) {
        self.server = server; self.keyName = keyName; self.keySecret = keySecret
    }

    public init(command: String) {
        provider = "exec"
        self.command = command
    }
}

/// Certificate events delivered to consumers: signed webhooks and/or a program, retried from a
/// bounded queue on a thread of their own.
public struct ACMEEventSettings: Sendable, Equatable {
    public struct Webhook: Sendable, Equatable {
        /// POSTed the event's JSON (http:// or https://).
        public var url: String
        /// Key of the HMAC-SHA256 in the `X-Edgeproxy-Signature` header.
        public var secret: String
        public init(url: String, secret: String) { self.url = url; self.secret = secret }
    }
    public var webhooks: [Webhook] = []
    /// Run as `command KIND NAME` with the event's JSON on stdin; exit status 0 is delivered.
    public var command: String?
    /// One delivery: the HTTP exchange's socket timeout, or the program's whole run.
    public var timeout: Double = 10
    /// Attempts after the first before a delivery is given up (and counted as failed).
    public var retries = 10
    /// Retries back off exponentially from `backoffBase` to at most `backoffCap` (jittered).
    public var backoffBase: Double = 1
    public var backoffCap: Double = 600
    /// Deliveries waiting at most; one more drops the oldest (counted).
    public var queue = 1000
    /// `expiring_soon` once per serial when less than this remains; nil: a sixth of the
    /// certificate's lifetime, at most 7 days (a served certificate that is renewed on time never gets one).
    public var expiringWithin: Double?
    public init() {}
}

public struct ACMERenewal: Sendable, Equatable {
    /// How often each certificate's renewal is looked at (also the ARI polling ceiling).
    public var checkInterval: Double = 3600
    /// Renew once less than this remains; nil: when a third of the lifetime remains.
    public var renewBefore: Double?
    /// Follow the CA's renewal window (RFC 9773) when it offers one.
    public var ari = true
    /// Failed attempts back off exponentially from `backoffBase` to at most `backoffCap` (jittered).
    public var backoffBase: Double = 60
    public var backoffCap: Double = 6 * 3600
    public init() {}
}

public struct EABSettings: Sendable, Equatable {
    public var keyID: String
    public var hmacKey: String
    public init(keyID: String, hmacKey: String) { self.keyID = keyID; self.hmacKey = hmacKey }
}

/// Several nodes sharing certificates and ACME state through etcd; nil: a single node on local files.
public struct ClusterSettings: Sendable, Equatable {
    /// etcd client URLs (http:// or https://), tried in turn.
    public var endpoints: [String]
    /// PEM roots trusted for https endpoints; nil: the system store.
    public var caFile: String?
    /// Client certificate and key for etcd's client-certificate authentication.
    public var clientCertificate: String?
    public var clientKey: String?
    /// etcd's own authentication (`etcdctl auth enable`); the password is read from a file.
    public var username: String?
    public var password: String?
    /// Every key this fleet writes starts with it; several fleets can share one etcd.
    public var prefix = "/edgeproxy/"
    /// This node's name in the cluster (locks, the node list, records it stored).
    public var node: String
    /// Seconds a dead node's locks and membership outlive it.
    public var leaseTTL: Double = 10
    /// Seconds for one request to etcd (per endpoint tried).
    public var requestTimeout: Double = 5
    /// Sealing keys (32 bytes each): the first seals, every one opens, so keys can be rotated.
    public var sealingKeys: [SealingKey]
    /// What this node serves, kept (keys still sealed) to serve through a restart while etcd is down.
    public var cacheDirectory: String

    public init(endpoints: [String], node: String, sealingKeys: [SealingKey], cacheDirectory: String) {
        self.endpoints = endpoints; self.node = node; self.sealingKeys = sealingKeys; self.cacheDirectory = cacheDirectory
    }
}

/// A key that seals private keys before they leave the process; `path` names it in messages.
public struct SealingKey: Sendable, Equatable {
    public var path: String
    public var bytes: [UInt8]
    public init(path: String, bytes: [UInt8]) { self.path = path; self.bytes = bytes }
}
