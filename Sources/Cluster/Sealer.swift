internal import COpenSSL
import Foundation

/// Seals records for the cluster store with AES-256-GCM (OpenSSL EVP), so the store's operators
/// and backups never see private keys in the clear.
///
/// Record format (all fixed sizes, big-endian where it matters):
///
///     offset  size  field
///     0       3     magic "eps" (0x65 0x70 0x73)
///     3       1     version, 1
///     4       8     key id: the first 8 bytes of SHA-256(key), so a reader picks the right key
///     12      12    nonce: fresh random bytes for every record (RAND_bytes)
///     24      n     ciphertext (same length as the plaintext)
///     24+n    16    GCM tag
///
/// The associated data is the 12-byte header followed by the caller's `context` in UTF-8 (the
/// record's etcd key): a record copied under another key, or re-labelled with another key id,
/// fails to open. Several keys may be loaded: the first seals, all of them open (rotation: put
/// the new key first, keep the old ones until every record has been re-sealed).
///
/// Key files hold exactly 32 bytes: raw, or as 64 hex digits, or as 44 characters of base64
/// (a trailing newline is allowed for the text forms), e.g. `openssl rand 32 > key` or
/// `openssl rand -hex 32 > key`.
public struct Sealer: Sendable {
    public struct Key: Sendable {
        public let id: [UInt8]
        let bytes: [UInt8]

        public init(_ bytes: [UInt8]) throws(SealerError) {
            guard bytes.count == 32 else { throw SealerError(.badKey, "an AES-256 key is 32 bytes, not \(bytes.count)") }
            self.bytes = bytes
            id = Array(Sealer.sha256(bytes).prefix(8))
        }
    }

    static let magic: [UInt8] = [0x65, 0x70, 0x73]
    static let version: UInt8 = 1
    static let headerSize = 12, nonceSize = 12, tagSize = 16

    public let keys: [Key]

    /// `keys[0]` seals; every key opens.
    public init(keys: [Key]) throws(SealerError) {
        guard !keys.isEmpty else { throw SealerError(.badKey, "no sealing key given") }
        self.keys = keys
    }

    /// Reads each key file (see the type's comment for the accepted forms); the first seals.
    public static func load(files: [String]) throws(SealerError) -> Sealer {
        var keys: [Key] = []
        for file in files {
            guard let data = FileManager.default.contents(atPath: file) else {
                throw SealerError(.badKey, "cannot read key file \(file)")
            }
            guard let bytes = decodeKeyFile(Array(data)) else {
                throw SealerError(.badKey, "\(file) holds \(data.count) bytes: a key file must be 32 raw bytes, 64 hex digits or 44 base64 characters (e.g. `openssl rand 32 > \(file)`)")
            }
            keys.append(try Key(bytes))
        }
        return try Sealer(keys: keys)
    }

    static func decodeKeyFile(_ data: [UInt8]) -> [UInt8]? {
        if data.count == 32 { return data }
        var text = data
        while let last = text.last, last == 0x0A || last == 0x0D { text.removeLast() }
        if text.count == 64 {
            var out: [UInt8] = []
            var i = 0
            while i < 64 {
                guard let hi = hexValue(text[i]), let lo = hexValue(text[i + 1]) else { return nil }
                out.append(hi << 4 | lo)
                i += 2
            }
            return out
        }
        if text.count == 44, let decoded = Data(base64Encoded: Data(text)), decoded.count == 32 { return Array(decoded) }
        return nil
    }

    private static func hexValue(_ c: UInt8) -> UInt8? {
        switch c {
        case 0x30...0x39: return c - 0x30
        case 0x61...0x66: return c - 0x61 + 10
        case 0x41...0x46: return c - 0x41 + 10
        default: return nil
        }
    }

    /// The key id a sealed record names, or nil if it is not a record of this format.
    public static func keyID(of sealed: [UInt8]) -> [UInt8]? {
        guard sealed.count >= headerSize + nonceSize + tagSize, Array(sealed[0..<3]) == magic, sealed[3] == version else { return nil }
        return Array(sealed[4..<12])
    }

    public func seal(_ plaintext: [UInt8], context: String) throws(SealerError) -> [UInt8] {
        let key = keys[0]
        var nonce = [UInt8](repeating: 0, count: Self.nonceSize)
        guard RAND_bytes(&nonce, Int32(nonce.count)) == 1 else { throw SealerError(.crypto, "RAND_bytes failed") }
        let header = Self.magic + [Self.version] + key.id
        let aad = header + Array(context.utf8)
        var (ciphertext, tag) = try Self.gcm(encrypt: true, key: key.bytes, nonce: nonce, aad: aad, input: plaintext, tag: nil)
        ciphertext.insert(contentsOf: header + nonce, at: 0)
        return ciphertext + tag
    }

    public func open(_ sealed: [UInt8], context: String) throws(SealerError) -> [UInt8] {
        guard let id = Self.keyID(of: sealed) else {
            throw SealerError(.notSealed, "not a sealed record (bad magic/version or \(sealed.count) bytes is too short)")
        }
        guard let key = keys.first(where: { $0.id == id }) else {
            throw SealerError(.missingKey, "record sealed with key id \(Self.hex(id)), which is not loaded; add that key file (loaded: \(keys.map { Self.hex($0.id) }.joined(separator: ", ")))", keyID: id)
        }
        let nonce = Array(sealed[Self.headerSize..<(Self.headerSize + Self.nonceSize)])
        let body = Array(sealed[(Self.headerSize + Self.nonceSize)..<(sealed.count - Self.tagSize)])
        let tag = Array(sealed[(sealed.count - Self.tagSize)...])
        let aad = Array(sealed[0..<Self.headerSize]) + Array(context.utf8)
        return try Self.gcm(encrypt: false, key: key.bytes, nonce: nonce, aad: aad, input: body, tag: tag).output
    }

    /// One AES-256-GCM pass. Decrypting checks `tag` and throws `.authentication` on mismatch.
    private static func gcm(encrypt: Bool, key: [UInt8], nonce: [UInt8], aad: [UInt8], input: [UInt8],
                            tag: [UInt8]?) throws(SealerError) -> (output: [UInt8], tag: [UInt8]) {
        ERR_clear_error()
        guard let ctx = EVP_CIPHER_CTX_new() else { throw SealerError(.crypto, "EVP_CIPHER_CTX_new failed") }
        defer { EVP_CIPHER_CTX_free(ctx) }
        let initialised = encrypt ? EVP_EncryptInit_ex(ctx, EVP_aes_256_gcm(), nil, key, nonce)
            : EVP_DecryptInit_ex(ctx, EVP_aes_256_gcm(), nil, key, nonce)
        guard initialised == 1 else { ERR_clear_error(); throw SealerError(.crypto, "EVP_\(encrypt ? "Encrypt" : "Decrypt")Init_ex(aes-256-gcm) failed") }
        var n: Int32 = 0
        if !aad.isEmpty {
            let ok = encrypt ? EVP_EncryptUpdate(ctx, nil, &n, aad, Int32(aad.count)) : EVP_DecryptUpdate(ctx, nil, &n, aad, Int32(aad.count))
            guard ok == 1 else { ERR_clear_error(); throw SealerError(.crypto, "EVP update (associated data) failed") }
        }
        var output = [UInt8](repeating: 0, count: input.count + 16)
        var written: Int32 = 0
        if !input.isEmpty {
            let ok = encrypt ? EVP_EncryptUpdate(ctx, &output, &written, input, Int32(input.count))
                : EVP_DecryptUpdate(ctx, &output, &written, input, Int32(input.count))
            guard ok == 1 else { ERR_clear_error(); throw SealerError(.crypto, "EVP update failed") }
        }
        var outTag = [UInt8](repeating: 0, count: tagSize)
        if encrypt {
            let ok = output.withUnsafeMutableBufferPointer { EVP_EncryptFinal_ex(ctx, $0.baseAddress! + Int(written), &n) }
            guard ok == 1, EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_GET_TAG, Int32(tagSize), &outTag) == 1 else {
                ERR_clear_error(); throw SealerError(.crypto, "EVP_EncryptFinal_ex failed")
            }
        } else {
            var expected = tag ?? []
            guard EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_TAG, Int32(tagSize), &expected) == 1 else {
                ERR_clear_error(); throw SealerError(.crypto, "setting the GCM tag failed")
            }
            let ok = output.withUnsafeMutableBufferPointer { EVP_DecryptFinal_ex(ctx, $0.baseAddress! + Int(written), &n) }
            guard ok == 1 else {
                ERR_clear_error()
                throw SealerError(.authentication, "record does not authenticate: wrong key, moved to another etcd key, or corrupted")
            }
        }
        output.removeSubrange(Int(written + n)...)
        return (output, outTag)
    }

    static func sha256(_ bytes: [UInt8]) -> [UInt8] {
        var digest = [UInt8](repeating: 0, count: 32)
        var length: UInt32 = 0
        _ = EVP_Digest(bytes, bytes.count, &digest, &length, EVP_sha256(), nil)
        return digest
    }

    static func hex(_ bytes: [UInt8]) -> String { bytes.map { String(format: "%02x", $0) }.joined() }
}

/// Why sealing or opening failed.
public struct SealerError: Error, Sendable, CustomStringConvertible {
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        let raw: String
        public var description: String { raw }
        /// A key file or key is malformed.
        public static let badKey = Code(raw: "badKey")
        /// The record names a key id that is not loaded (`keyID`).
        public static let missingKey = Code(raw: "missingKey")
        /// The tag did not verify: wrong key, record moved to another context, or corrupted.
        public static let authentication = Code(raw: "authentication")
        /// Not a record in the sealed format.
        public static let notSealed = Code(raw: "notSealed")
        public static let crypto = Code(raw: "crypto")
    }
    public let code: Code
    public let reason: String
    /// The key id the record needs, for `.missingKey`.
    public let keyID: [UInt8]?

    public init(_ code: Code, _ reason: String, keyID: [UInt8]? = nil) { self.code = code; self.reason = reason; self.keyID = keyID }
    public var description: String { "sealer \(code): \(reason)" }
}
