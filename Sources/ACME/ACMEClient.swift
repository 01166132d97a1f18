import Foundation
import HTTP1
import TLS

/// Retry and polling limits. Defaults suit a real CA; tests shorten the poll interval.
public struct ACMEClientOptions: Sendable {
    /// Consecutive badNonce answers retried with the fresh nonce before giving up (RFC 8555 §6.5).
    /// Ten keeps a CA that rejects 30 % of nonces (Pebble in the tests) from failing a request
    /// more than once in a million; each retry is one round trip, never a tight loop.
    public var badNonceRetries = 10
    /// 429/503 with a Retry-After at most this long are waited out inline (then retried once per
    /// `rateLimitRetries`); longer ones are thrown with `retryAfter` set, for the renewal scheduler.
    public var maxInlineRetryAfter: Double = 30
    public var rateLimitRetries = 2
    /// First wait between polls when the CA sends no Retry-After; doubles up to `maxPollInterval`
    /// (a quick CA answers in a fraction of a second, a slow one gets few polls). Never below
    /// `pollInterval`, whatever Retry-After says, so polling cannot become a tight loop.
    public var pollInterval: Double = 0.25
    public var maxPollInterval: Double = 10
    /// How long an authorization or order may stay pending/processing.
    public var pollTimeout: Double = 120

    public init() {}
}

/// An RFC 8555 client bound to one directory and one account key. Blocking: run it on a
/// background thread (it sleeps for Retry-After and polling). Not thread-safe: one owner.
public final class ACMEClient {
    public let directoryURL: String
    public let accountKey: AccountKey
    public let options: ACMEClientOptions
    /// The account URL, used as JWS "kid" once known (RFC 8555 §6.2).
    public private(set) var accountURL: String?
    /// Every HTTP request made to the CA, retries included.
    public private(set) var requestCount = 0
    /// badNonce answers retried with the fresh nonce (RFC 8555 §6.5), for tests and metrics.
    public private(set) var badNonceRetries = 0
    /// How the client waits (Retry-After, polling); tests may record instead of sleeping.
    public var sleep: (Double) -> Void = { Thread.sleep(forTimeInterval: $0) }

    private let transport: HTTPTransport
    private var cachedDirectory: Directory?
    /// Nonces from Replay-Nonce headers, newest last; each is used once (RFC 8555 §6.5).
    private var nonces: [String] = []

    public init(directoryURL: String, accountKey: AccountKey, transport: HTTPTransport, accountURL: String? = nil,
                options: ACMEClientOptions = ACMEClientOptions()) {
        self.directoryURL = directoryURL
        self.accountKey = accountKey
        self.transport = transport
        self.accountURL = accountURL
        self.options = options
    }

    // MARK: Directory and nonces

    public func directory() throws(ACMEError) -> Directory {
        if let cachedDirectory { return cachedDirectory }
        let response = try send("GET", directoryURL)
        guard response.status == 200 else { throw error(for: response, "GET directory") }
        let dir = try decode(Directory.self, response, "directory")
        cachedDirectory = dir
        return dir
    }

    /// A fresh nonce: reused from the last response when there is one, else HEAD newNonce (§7.2).
    private func nonce() throws(ACMEError) -> String {
        if let n = nonces.popLast() { return n }
        let response = try send("HEAD", try directory().newNonce)
        guard response.status == 200 || response.status == 204, let n = response.header("Replay-Nonce") else {
            throw ACMEError(.protocolViolation, "newNonce answered \(response.status) without Replay-Nonce", status: response.status)
        }
        return n
    }

    // MARK: Requests

    /// Signs and POSTs `payload` (nil: POST-as-GET, §6.3), retrying badNonce with the nonce the
    /// error carried (§6.5) and waiting out short Retry-After answers on 429/503 (§6.6).
    @discardableResult
    /// `signer`: another key signs instead of the account's, with its JWK (revocation by the
    /// certificate's own key, §7.6).
    func post(_ url: String, payload: [UInt8]?, useJWK: Bool = false, signer: AccountKey? = nil, accept: String? = nil) throws(ACMEError) -> HTTPResponse {
        guard useJWK || signer != nil || accountURL != nil else { throw ACMEError(.protocolViolation, "no account URL yet for \(url)") }
        var badNonces = 0, rateLimited = 0
        while true {
            let jws: JWSObject
            let body: [UInt8]
            do {
                jws = try JWS.sign(payload: payload, url: url, nonce: try nonce(), key: signer ?? accountKey,
                                   kid: useJWK || signer != nil ? nil : accountURL)
                body = [UInt8](try JWS.encoder.encode(jws))
            } catch let e as ACMEError { throw e } catch { throw ACMEError(.protocolViolation, "signing: \(error)") }
            var headers = [HTTPField(name: "Content-Type", value: "application/jose+json")]
            if let accept { headers.append(HTTPField(name: "Accept", value: accept)) }
            let response = try send("POST", url, headers: headers, body: body)
            if response.status < 400 { return response }
            let failure = error(for: response, "POST \(url)")
            if failure.problem?.is(Problem.badNonce) == true, badNonces < options.badNonceRetries {
                badNonces += 1
                badNonceRetries += 1
                continue
            }
            if response.status == 429 || response.status == 503, let wait = failure.retryAfter,
               wait <= options.maxInlineRetryAfter, rateLimited < options.rateLimitRetries {
                rateLimited += 1
                sleep(max(wait, 1))
                continue
            }
            throw failure
        }
    }

    private func send(_ method: String, _ url: String, headers: [HTTPField] = [], body: [UInt8] = []) throws(ACMEError) -> HTTPResponse {
        requestCount += 1
        let response = try transport.request(method: method, url: url, headers: headers, body: body)
        // Every response may carry a nonce, errors included (§6.5): keep it for the next POST.
        if let n = response.header("Replay-Nonce"), !n.isEmpty {
            nonces.append(n)
            if nonces.count > 4 { nonces.removeFirst() }  // old ones may have expired; keep few
        }
        return response
    }

    private func decode<T: Decodable>(_ type: T.Type, _ response: HTTPResponse, _ what: String) throws(ACMEError) -> T {
        do { return try JSONDecoder().decode(type, from: Data(response.body)) } catch {
            throw ACMEError(.protocolViolation, "undecodable \(what): \(error)", status: response.status)
        }
    }

    private func error(for response: HTTPResponse, _ what: String) -> ACMEError {
        let problem = (try? JSONDecoder().decode(Problem.self, from: Data(response.body)))
            ?? Problem(type: nil, detail: String(decoding: response.body.prefix(512), as: UTF8.self), status: response.status)
        return ACMEError(.problem, "\(what) → \(response.status)", problem: problem, status: response.status,
                         retryAfter: RetryAfter.seconds(response.header("Retry-After")))
    }

    private func location(_ response: HTTPResponse, _ what: String) throws(ACMEError) -> String {
        guard let url = response.header("Location"), !url.isEmpty else {
            throw ACMEError(.protocolViolation, "\(what) answered without Location", status: response.status)
        }
        return url
    }

    // MARK: Account (§7.3)

    /// Looks up the account of this key without creating one (onlyReturnExisting, §7.3.1).
    public func findAccount() throws(ACMEError) -> String? {
        do {
            let response = try post(try directory().newAccount, payload: try encode(NewAccountRequest(onlyReturnExisting: true)), useJWK: true)
            accountURL = try location(response, "newAccount")
            return accountURL
        } catch where error.problem?.is(Problem.accountDoesNotExist) == true {
            return nil
        }
    }

    /// Creates (or, for a key already registered, finds: the CA answers 200) the account.
    public func createAccount(contact: [String] = [], termsOfServiceAgreed: Bool = true,
                              externalAccountBinding eab: ExternalAccountBinding? = nil) throws(ACMEError) -> String {
        let dir = try directory()
        var request = NewAccountRequest(contact: contact.isEmpty ? nil : contact, termsOfServiceAgreed: termsOfServiceAgreed)
        if let eab {
            do {
                request.externalAccountBinding = try JWS.externalAccountBinding(accountKey: accountKey, keyID: eab.keyID,
                                                                                 macKey: eab.macKey, url: dir.newAccount)
            } catch { throw ACMEError(.protocolViolation, "EAB signing: \(error)") }
        }
        let response = try post(dir.newAccount, payload: try encode(request), useJWK: true)
        accountURL = try location(response, "newAccount")
        return accountURL!
    }

    // MARK: Orders (§7.4)

    /// `replaces`: the ARI identifier of the certificate this order renews (RFC 9773 §5).
    /// `profile`: one the directory lists (checked here: a CA may ignore one it does not know).
    public func newOrder(names: [String], replaces: String? = nil, profile: String? = nil) throws(ACMEError) -> (url: String, order: Order) {
        if let profile {
            let offered = try directory().meta?.profiles ?? [:]
            guard offered[profile] != nil else {
                let list = offered.keys.sorted().joined(separator: ", ")
                throw ACMEError(.profile, "the CA does not offer the certificate profile \"\(profile)\" "
                                + (list.isEmpty ? "(its directory lists no profiles: remove `profile`)" : "(it offers: \(list))"))
            }
        }
        let request = NewOrderRequest(identifiers: names.map(Identifier.init(dns:)), replaces: replaces, profile: profile)
        let response = try post(try directory().newOrder, payload: try encode(request))
        return (try location(response, "newOrder"), try decode(Order.self, response, "order"))
    }

    // MARK: Revocation (§7.6)

    /// Revokes a certificate this account holds, or, with `certificateKey`, any certificate whose
    /// key that is (the way to revoke for keyCompromise).
    public func revoke(certificateDER: [UInt8], reason: RevocationReason, certificateKey: AccountKey? = nil) throws(ACMEError) {
        guard let url = try directory().revokeCert else { throw ACMEError(.protocolViolation, "the CA's directory has no revokeCert") }
        let request = RevocationRequest(certificate: Base64URL.encode(certificateDER), reason: reason.rawValue)
        try post(url, payload: try encode(request), signer: certificateKey)
    }

    public func order(_ url: String) throws(ACMEError) -> Order {
        try decode(Order.self, try post(url, payload: nil), "order")
    }

    public func authorization(_ url: String) throws(ACMEError) -> Authorization {
        try decode(Authorization.self, try post(url, payload: nil), "authorization")
    }

    /// Tells the CA the challenge is ready: the payload is an empty object (§7.5.1).
    @discardableResult
    public func respond(to challenge: Challenge) throws(ACMEError) -> Challenge {
        try decode(Challenge.self, try post(challenge.url, payload: Array("{}".utf8)), "challenge")
    }

    /// Polls an authorization until valid; invalid throws with the failed challenge's problem.
    public func waitForAuthorization(_ url: String) throws(ACMEError) -> Authorization {
        let authz = try poll(url, Authorization.self) { $0.status != Status.pending }
        guard authz.status == Status.valid else {
            let failed = authz.challenges.first { $0.error != nil }
            throw ACMEError(.authorizationFailed, "\(authz.identifier.value): authorization \(authz.status)"
                            + (failed.map { " (\($0.type))" } ?? ""), problem: failed?.error)
        }
        return authz
    }

    /// Sends the CSR (§7.4) and polls the order until it is valid (certificate URL set).
    public func finalize(orderURL: String, order: Order, csrDER: [UInt8]) throws(ACMEError) -> Order {
        var current = order
        if current.status == Status.pending || current.status == Status.ready {
            current = try decode(Order.self, try post(order.finalize, payload: try encode(FinalizeRequest(csr: Base64URL.encode(csrDER)))), "order")
        }
        if current.status == Status.processing || current.status == Status.ready || current.status == Status.pending {
            current = try poll(orderURL, Order.self) { $0.status == Status.valid || $0.status == Status.invalid }
        }
        guard current.status == Status.valid, current.certificate != nil else {
            throw ACMEError(.orderFailed, "order \(orderURL) is \(current.status)", problem: current.error)
        }
        return current
    }

    /// The CA's suggested renewal window for `leaf` (RFC 9773 §4), or nil when the CA offers no
    /// renewalInfo. Unauthenticated GET; `retryAfter` says when to ask again (§4.3).
    public func renewalInfo(for leaf: X509Certificate) throws(ACMEError) -> (info: RenewalInfo, retryAfter: Double?)? {
        guard let base = try directory().renewalInfo, let id = RenewalInfo.certificateID(leaf) else { return nil }
        let response = try send("GET", base.hasSuffix("/") ? base + id : base + "/" + id)
        guard response.status == 200 else { throw error(for: response, "renewalInfo") }
        do {
            return (try RenewalInfo.decode(response.body), RetryAfter.seconds(response.header("Retry-After")))
        } catch {
            throw ACMEError(.protocolViolation, "undecodable renewalInfo: \(error)", status: response.status)
        }
    }

    /// The PEM chain, leaf first (§7.4.2).
    public func downloadCertificate(_ url: String) throws(ACMEError) -> [UInt8] {
        let response = try post(url, payload: nil, accept: "application/pem-certificate-chain")
        guard response.status == 200, !response.body.isEmpty else {
            throw ACMEError(.protocolViolation, "certificate download answered \(response.status)", status: response.status)
        }
        return response.body
    }

    /// POST-as-GET `url` until `done`, waiting Retry-After (§7.5.1, §7.4) or a growing interval.
    private func poll<T: Decodable>(_ url: String, _ type: T.Type, until done: (T) -> Bool) throws(ACMEError) -> T {
        let deadline = Date().addingTimeInterval(options.pollTimeout)
        var interval = options.pollInterval
        while true {
            let response = try post(url, payload: nil)
            let value = try decode(type, response, "\(T.self)")
            if done(value) { return value }
            let wait = max(RetryAfter.seconds(response.header("Retry-After")) ?? interval, options.pollInterval)
            guard Date().addingTimeInterval(wait) < deadline else {
                throw ACMEError(.timedOut, "\(url) still not final after \(Int(options.pollTimeout)) s")
            }
            sleep(wait)
            interval = min(interval * 2, options.maxPollInterval)
        }
    }

    private func encode<T: Encodable>(_ value: T) throws(ACMEError) -> [UInt8] {
        do { return [UInt8](try JWS.encoder.encode(value)) } catch { throw ACMEError(.protocolViolation, "encoding: \(error)") }
    }
}

/// External Account Binding credentials issued by the CA (RFC 8555 §7.3.4).
public struct ExternalAccountBinding: Sendable {
    public var keyID: String
    public var macKey: [UInt8]

    public init(keyID: String, macKey: [UInt8]) { self.keyID = keyID; self.macKey = macKey }

    /// CAs hand out the MAC key base64url-encoded.
    public init?(keyID: String, base64URLMACKey: String) {
        guard let key = Base64URL.decode(base64URLMACKey), !key.isEmpty else { return nil }
        self.init(keyID: keyID, macKey: key)
    }
}

/// Retry-After (RFC 9110 §10.2.3): delta-seconds or an HTTP-date.
public enum RetryAfter {
    public static func seconds(_ value: String?, now: Date = Date()) -> Double? {
        guard let value = value?.trimmingCharacters(in: .whitespaces), !value.isEmpty else { return nil }
        if let n = Int(value) { return n >= 0 ? Double(n) : nil }
        guard let at = HTTPDate.seconds(value) else { return nil }
        return max(0, Double(at) - now.timeIntervalSince1970)
    }
}
