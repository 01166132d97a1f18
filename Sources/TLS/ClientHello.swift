internal import COpenSSL

/// What the ClientHello callback learnt, handed to the certificate selector.
public struct ClientHello {
    /// Lower case, without a trailing dot.
    public var serverName: String?
    /// The client offered ecdsa_secp256r1_sha256 among its signature algorithms.
    public var offersECDSA: Bool
    /// The client offered ALPN "acme-tls/1": it may be validating a TLS-ALPN-01 challenge (RFC 8737 §3).
    public var offersACMETLS: Bool
    /// False once this handshake has waited for a certificate: it takes what there is now.
    public var mayWait: Bool
    public init(serverName: String?, offersECDSA: Bool, offersACMETLS: Bool = false, mayWait: Bool = false) {
        self.serverName = serverName; self.offersECDSA = offersECDSA; self.offersACMETLS = offersACMETLS
        self.mayWait = mayWait
    }
}

/// Readers of ClientHello extension bodies as SSL_client_hello_get0_ext hands them over: bytes
/// OpenSSL has not parsed yet, so every length is checked here. They read in place; the only
/// allocation is a server name's String, and none for names of up to 15 bytes (small strings).
enum ClientHelloBytes {
    /// server_name (RFC 6066 §3): a list (length 2) holding one host_name (type 0) entry, name
    /// length 2. OpenSSL refuses any other shape after the callback, so those read as nil here.
    /// Names compare case-insensitively and absolute ("a.test.") equals relative: the result is
    /// lower case without one trailing dot. Lower-case ASCII, what clients send, is copied as is.
    static func serverName(_ b: UnsafeBufferPointer<UInt8>) -> String? {
        guard b.count > 5, Int(b[0]) << 8 | Int(b[1]) == b.count - 2, b[2] == 0,
              Int(b[3]) << 8 | Int(b[4]) == b.count - 5 else { return nil }
        let name = UnsafeBufferPointer(rebasing: b[5...])
        var upper = false
        for c in name {
            if c >= 0x80 { return unicodeName(name) }
            if isUpper(c) { upper = true }
        }
        let count = name.last == UInt8(ascii: ".") ? name.count - 1 : name.count
        guard upper else { return String(decoding: UnsafeBufferPointer(rebasing: name[..<count]), as: UTF8.self) }
        return String(unsafeUninitializedCapacity: count) { out in
            for i in 0..<count { out[i] = isUpper(name[i]) ? name[i] | 0x20 : name[i] }
            return count
        }
    }

    @inline(__always) private static func isUpper(_ c: UInt8) -> Bool { c &- UInt8(ascii: "A") < 26 }

    /// Not a host name (those are ASCII, RFC 6066 §3), but OpenSSL lets it through: Unicode lower case.
    private static func unicodeName(_ name: UnsafeBufferPointer<UInt8>) -> String {
        var s = String(decoding: name, as: UTF8.self).lowercased()
        if s.hasSuffix(".") { s.removeLast() }
        return s
    }

    /// Whether an ALPN extension (RFC 7301 §3.1: a list (length 2) of names (length 1)) offers `name`.
    static func offers(_ name: StaticString, alpn b: UnsafeBufferPointer<UInt8>) -> Bool {
        guard b.count > 2, Int(b[0]) << 8 | Int(b[1]) == b.count - 2, let base = b.baseAddress else { return false }
        return findProtocol(name, in: base + 2, count: b.count - 2) != nil
    }

    /// Where `name` starts inside a list of length-prefixed protocol names, or nil (also when an
    /// entry before it overruns the list).
    static func findProtocol(_ name: StaticString, in input: UnsafePointer<UInt8>, count: Int) -> Int? {
        let length = name.utf8CodeUnitCount
        var i = 0
        while i < count {
            let n = Int(input[i])
            guard i + 1 + n <= count else { return nil }
            if n == length && memcmp(input + i + 1, name.utf8Start, length) == 0 { return i + 1 }
            i += 1 + n
        }
        return nil
    }
}
