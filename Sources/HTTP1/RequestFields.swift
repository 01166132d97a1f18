/// The request-only field rules (Host, Expect, Upgrade) on top of the shared framing rules.
struct RequestFields {
    private let versionMinor: Int
    private var framing = FramingFields()
    private var host: String?
    private var hostCount = 0
    private var expectContinue = false
    private var upgrade: String?

    init(versionMinor: Int) { self.versionMinor = versionMinor }

    mutating func add(_ kind: FieldKind, value: UnsafeRawBufferPointer) throws(HTTPParseError) {
        switch kind {
        case .host:
            // Exactly one Host, and a valid one (RFC 9112 §3.2: "more than one Host ... or invalid" → 400).
            hostCount += 1
            guard hostCount == 1 else { throw .badRequest("more than one Host field (RFC 9112 §3.2)") }
            guard HostSyntax.isValid(value, requirePort: false) else { throw .badRequest("invalid Host (RFC 9112 §3.2)") }
            host = value.lowercasedASCIIString()
        case .expect:
            // The only expectation defined is 100-continue, case-insensitive (RFC 9110 §10.1.1).
            if value.equalsLowercased("100-continue") { expectContinue = true }
        case .upgrade:
            let value = String(decoding: value, as: UTF8.self)
            upgrade = upgrade.map { "\($0), \(value)" } ?? value
        case .contentLength, .transferEncoding, .connection:
            try framing.add(kind, value: value)
        case .other:
            break
        }
    }

    func makeHead(method: String, target: RequestTarget, fields: HTTPFields) throws(HTTPParseError) -> RequestHead {
        // A 1.1 request without Host is rejected (RFC 9112 §3.2), even in absolute-form.
        if versionMinor == 1 && hostCount == 0 { throw .badRequest("missing Host (RFC 9112 §3.2)") }
        // absolute-form wins over Host for an origin (RFC 9112 §3.2.2), but a proxy that forwards Host
        // unchanged would let the two disagree downstream: treat disagreement as ambiguous.
        if let authority = target.authority, let host, authority != host {
            throw .badRequest("absolute-form authority disagrees with Host (RFC 9112 §3.2.2)")
        }
        // No Content-Length and no Transfer-Encoding: a request has no body (RFC 9112 §6.3 ¶7).
        let bodyFraming = try framing.declaredFraming(versionMinor: versionMinor) ?? .none
        // Upgrade needs "Connection: upgrade" (RFC 9110 §7.8), and is ignored in HTTP/1.0 requests.
        let upgrades = versionMinor == 1 && framing.connection.upgrade
        return RequestHead(method: method, target: target.target, versionMinor: versionMinor, fields: fields,
                           host: target.authority ?? host, framing: bodyFraming,
                           keepAlive: framing.keepAlive(versionMinor: versionMinor),
                           expectContinue: expectContinue, upgrade: upgrades ? upgrade : nil,
                           connection: framing.connection)
    }
}
