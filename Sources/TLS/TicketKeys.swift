import COpenSSL
import Synchronization

/// Session-ticket keys, shared by every loop: the newest encrypts, the previous one still
/// decrypts (and asks for a fresh ticket), so a rotation never turns a resumption into a failure.
public final class TicketKeys: Sendable {
    struct Key {
        var name = [UInt8](repeating: 0, count: 16)
        var aes = [UInt8](repeating: 0, count: 32)
        var hmac = [UInt8](repeating: 0, count: 32)

        static func random() -> Key {
            var k = Key()
            RAND_bytes(&k.name, 16); RAND_bytes(&k.aes, 32); RAND_bytes(&k.hmac, 32)
            return k
        }
    }

    public static let shared = TicketKeys()
    let keys = Mutex<[Key]>([Key.random()])

    /// Makes a new encryption key; keeps the one before it for decryption only.
    public func rotate() {
        keys.withLock { k in
            k.insert(.random(), at: 0)
            if k.count > 2 { k.removeLast(k.count - 2) }
        }
    }
}

/// RFC 5077-style ticket protection with AES-256-CBC + HMAC-SHA256, keyed from `TicketKeys.shared`.
let ticketKeyCallback: @convention(c) (OpaquePointer?, UnsafeMutablePointer<UInt8>?, UnsafeMutablePointer<UInt8>?, OpaquePointer?, OpaquePointer?, Int32) -> Int32 = { _, keyName, iv, cipher, mac, enc in
    guard let keyName, let iv, let cipher, let mac else { return -1 }
    let candidates = TicketKeys.shared.keys.withLock { $0 }
    let key: TicketKeys.Key
    var result: Int32 = 1
    if enc == 1 {
        key = candidates[0]
        guard RAND_bytes(iv, 16) == 1 else { return -1 }
        key.name.withUnsafeBufferPointer { keyName.update(from: $0.baseAddress!, count: 16) }
    } else {
        guard let index = candidates.firstIndex(where: { k in k.name.withUnsafeBufferPointer { memcmp($0.baseAddress!, keyName, 16) == 0 } }) else { return 0 }
        key = candidates[index]
        if index > 0 { result = 2 }
    }
    let ok = key.aes.withUnsafeBufferPointer { aes in
        enc == 1 ? EVP_EncryptInit_ex(cipher, EVP_aes_256_cbc(), nil, aes.baseAddress, iv)
                 : EVP_DecryptInit_ex(cipher, EVP_aes_256_cbc(), nil, aes.baseAddress, iv)
    }
    guard ok == 1 else { return -1 }
    var hmacKey = key.hmac
    let macOK = hmacKey.withUnsafeMutableBufferPointer { COpenSSL_HMAC_SHA256_set_key(mac, $0.baseAddress, 32) }
    return macOK == 1 ? result : -1
}
