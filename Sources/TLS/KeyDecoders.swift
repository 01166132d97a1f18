internal import COpenSSL
import Locking
import Glibc

/// Private-key decoding through OSSL_DECODER contexts that are built once and reused. OpenSSL 3.0
/// builds a decoder context by walking every provider's decoders and key managers (~0.1 ms, under
/// global locks), and PEM_read_bio_PrivateKey builds several per key while it tries every format:
/// ~1 ms a key, most of a certificate's load time. A reused context that is told the structure
/// and key type decodes a P-256 key in ~40 µs.
enum KeyDecoders {
    struct Kind: Hashable {
        let structure: String
        let keyType: String?
    }

    private static let idle = Locked<[Kind: [KeyDecoder]]>([:])

    /// The first private key in a PEM text, for the formats met in practice (PKCS#8 "PRIVATE KEY",
    /// SEC1 "EC PRIVATE KEY", PKCS#1 "RSA PRIVATE KEY"); nil for anything else, which the caller
    /// hands to OpenSSL's general reader.
    static func firstKey(pem: [UInt8]) -> OpaquePointer? {
        let bio = pem.withUnsafeBytes { BIO_new_mem_buf($0.baseAddress, Int32($0.count)) }
        guard let bio else { return nil }
        defer { BIO_free(bio); ERR_clear_error() }  // reading stops on "no start line" at the end
        var name: UnsafeMutablePointer<CChar>?
        var header: UnsafeMutablePointer<CChar>?
        var data: UnsafeMutablePointer<UInt8>?
        var len = 0
        while PEM_read_bio(bio, &name, &header, &data, &len) == 1 {
            let label = name.map { String(cString: $0) } ?? ""
            let der = UnsafeRawBufferPointer(start: data, count: len)
            let encrypted = header.map { $0.pointee != 0 } ?? false  // "Proc-Type: 4,ENCRYPTED": not ours to read
            var key: OpaquePointer?
            if !encrypted {
                switch label {
                case "PRIVATE KEY":
                    key = decode(der, Kind(structure: "PrivateKeyInfo", keyType: "EC"))
                        ?? decode(der, Kind(structure: "PrivateKeyInfo", keyType: nil))
                case "EC PRIVATE KEY": key = decode(der, Kind(structure: "type-specific", keyType: "EC"))
                case "RSA PRIVATE KEY": key = decode(der, Kind(structure: "type-specific", keyType: "RSA"))
                default: break
                }
            }
            COpenSSL_free(name); COpenSSL_free(header); COpenSSL_free(data)
            if label.hasSuffix("PRIVATE KEY") { return key }
        }
        return nil
    }

    static func decode(_ der: UnsafeRawBufferPointer, _ kind: Kind) -> OpaquePointer? {
        guard let decoder = idle.withLock({ $0[kind]?.popLast() }) ?? KeyDecoder(kind) else { return nil }
        defer { idle.withLock { $0[kind, default: []].append(decoder) } }
        return decoder.decode(der)
    }
}

/// Owner of one OSSL_DECODER_CTX, of the slot its constructor writes keys to and of the strings
/// it points to: OpenSSL 3.0 keeps the input type and structure pointers without copying them.
final class KeyDecoder: @unchecked Sendable {  // one thread at a time: the idle list hands it over under its lock
    private let ctx: OpaquePointer
    /// Where the context's constructor stores each key: it must keep one address for the context's life.
    private let slot: UnsafeMutablePointer<OpaquePointer?>
    private let inputType: UnsafeMutablePointer<CChar>
    private let structure: UnsafeMutablePointer<CChar>

    init?(_ kind: KeyDecoders.Kind) {
        slot = .allocate(capacity: 1)
        slot.initialize(to: nil)
        inputType = strdup("DER")
        structure = strdup(kind.structure)
        guard let ctx = OSSL_DECODER_CTX_new_for_pkey(slot, inputType, structure, kind.keyType, COpenSSL_EVP_PKEY_KEYPAIR(), nil, nil),
              OSSL_DECODER_CTX_get_num_decoders(ctx) > 0 else {
            slot.deallocate(); free(inputType); free(structure)
            return nil
        }
        self.ctx = ctx
    }

    deinit {
        OSSL_DECODER_CTX_free(ctx)
        slot.deallocate()
        free(inputType)
        free(structure)
    }

    /// The key in `der` (owned by the caller), or nil.
    func decode(_ der: UnsafeRawBufferPointer) -> OpaquePointer? {
        guard let base = der.baseAddress?.assumingMemoryBound(to: UInt8.self) else { return nil }
        slot.pointee = nil  // the constructor's success is this slot becoming non-nil
        var p: UnsafePointer<UInt8>? = base
        var len = der.count
        let ok = OSSL_DECODER_from_data(ctx, &p, &len) == 1
        let key = slot.pointee
        slot.pointee = nil
        if ok && len == 0 { return key }
        if let key { EVP_PKEY_free(key) }
        ERR_clear_error()
        return nil
    }
}
