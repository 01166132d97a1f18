/// The request-target forms of RFC 9112 §3.2, reduced to what the proxy forwards: an origin-form target
/// plus, for absolute-form, the authority it named.
struct RequestTarget {
    var target: String
    var authority: String?  // lower-cased, from absolute-form only

    init(_ raw: UnsafeRawBufferPointer, method: UnsafeRawBufferPointer) throws(HTTPParseError) {
        // '#' never belongs to a request target: fragments are not sent (RFC 9112 §3.2, RFC 9110 §4.2.5).
        if raw.firstIndex(of: 0x23) != nil { throw .badRequest("fragment in request target (RFC 9112 §3.2)") }
        let isConnect = method.equals("CONNECT")
        // authority-form is only, and always, for CONNECT (RFC 9112 §3.2.3).
        if isConnect {
            guard HostSyntax.isValid(raw, requirePort: true) else {
                throw .badRequest("CONNECT needs an authority-form target (RFC 9112 §3.2.3)")
            }
            self.init(target: raw.asciiString(), authority: nil)
        } else if raw[0] == ASCII.slash {
            self.init(target: raw.asciiString(), authority: nil)  // origin-form (RFC 9112 §3.2.1)
        } else if raw.count == 1, raw[0] == 0x2A {
            // asterisk-form is only for a server-wide OPTIONS (RFC 9112 §3.2.4).
            guard method.equals("OPTIONS") else { throw .badRequest("'*' target without OPTIONS (RFC 9112 §3.2.4)") }
            self.init(target: "*", authority: nil)
        } else {
            try self.init(absoluteForm: raw)
        }
    }

    private init(target: String, authority: String?) {
        self.target = target
        self.authority = authority
    }

    /// absolute-form (RFC 9112 §3.2.2) for http/https only; converted to origin-form, with an empty
    /// path becoming "/" (RFC 9112 §3.2.1).
    private init(absoluteForm raw: UnsafeRawBufferPointer) throws(HTTPParseError) {
        let schemeLength: Int
        if raw.hasPrefixLowercased("http://") { schemeLength = 7 }
        else if raw.hasPrefixLowercased("https://") { schemeLength = 8 }
        else { throw .badRequest("invalid request target (RFC 9112 §3.2)") }
        var end = schemeLength
        while end < raw.count, raw[end] != ASCII.slash, raw[end] != ASCII.question { end += 1 }
        // An http(s) URI needs a host, and userinfo is deprecated and treated as an error (RFC 9110 §4.2.1, §4.2.4);
        // HostSyntax rejects both.
        let authority = raw.slice(schemeLength..<end)
        guard HostSyntax.isValid(authority, requirePort: false) else {
            throw .badRequest("invalid authority in absolute-form target (RFC 9110 §4.2.1)")
        }
        let rest = raw.slice(end..<raw.count)
        let path = rest.isEmpty ? "/" : rest[0] == ASCII.question ? "/" + rest.asciiString() : rest.asciiString()
        self.init(target: path, authority: authority.lowercasedASCIIString())
    }
}

/// Host = uri-host [ ":" port ] (RFC 9110 §7.2, RFC 3986 §3.2.2–3.2.3): a reg-name or IPv4 address, or an
/// IP literal in brackets; no userinfo, no path, no whitespace.
enum HostSyntax {
    static func isValid(_ host: UnsafeRawBufferPointer, requirePort: Bool) -> Bool {
        guard !host.isEmpty else { return false }
        var i = 0
        if host[0] == 0x5B {  // "[" IP-literal "]"
            i = 1
            while i < host.count, host[i] != 0x5D {
                let b = host[i]
                guard ASCII.hexValue(b) != nil || b == ASCII.colon || b == 0x2E else { return false }
                i += 1
            }
            guard i < host.count, i > 1 else { return false }
            i += 1
        } else {
            while i < host.count, host[i] != ASCII.colon {
                let b = host[i]
                if b == 0x25 {  // pct-encoded = "%" HEXDIG HEXDIG
                    guard i + 2 < host.count, ASCII.hexValue(host[i + 1]) != nil, ASCII.hexValue(host[i + 2]) != nil else { return false }
                    i += 3
                    continue
                }
                guard ASCII.isRegNameChar(b) else { return false }
                i += 1
            }
            guard i > 0 else { return false }
        }
        if i == host.count { return !requirePort }
        return isValidPort(host.slice(i..<host.count))
    }

    /// ":" port, with 1–5 digits (RFC 3986 allows an empty port; we don't, it has no use in Host).
    private static func isValidPort(_ p: UnsafeRawBufferPointer) -> Bool {
        guard p.count >= 2, p.count <= 6, p[0] == ASCII.colon else { return false }
        return p.slice(1..<p.count).allSatisfy(ASCII.isDigit)
    }
}
