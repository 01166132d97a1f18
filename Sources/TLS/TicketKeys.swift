internal import COpenSSL
import CSystem
import Glibc

/// Session-ticket keys, shared by every loop (each reads its own copy): the newest usable one encrypts, the others still
/// decrypt (and ask for a fresh ticket), so a rotation never turns a resumption into a failure.
/// On one node the keys rotate here; in a cluster they come from the fleet (`install`), each
/// published before its `notBefore`, so every node can decrypt a ticket before any node issues one.
public final class TicketKeys: Sendable {
    public struct Key: Sendable, Equatable {
        public var name = [UInt8](repeating: 0, count: 16)
        public var aes = [UInt8](repeating: 0, count: 32)
        public var hmac = [UInt8](repeating: 0, count: 32)
        /// Unix time from which this key encrypts (decrypting needs no wait).
        public var notBefore: Double = 0

        public static func random(notBefore: Double = 0) -> Key {
            var k = Key()
            RAND_bytes(&k.name, 16); RAND_bytes(&k.aes, 32); RAND_bytes(&k.hmac, 32)
            k.notBefore = notBefore
            return k
        }

        /// name | aes | hmac, 80 bytes: what a cluster record seals.
        public var material: [UInt8] { name + aes + hmac }

        public init(material: [UInt8], notBefore: Double) {
            precondition(material.count == 80, "a ticket key is 80 bytes")
            name = Array(material[0..<16]); aes = Array(material[16..<48]); hmac = Array(material[48..<80])
            self.notBefore = notBefore
        }

        init() {}
    }

    public static let shared = TicketKeys()
    /// The encrypting key first (`rotate` puts a new one at the front; `install` sorts the fleet's by
    /// `notBefore`, newest first); never empty.
    private let keys = PerThreadCopy<[Key]>([Key.random()], threadSlot: Int32(CSystem_slotTicketKeys))

    public init() {}

    /// Makes a new encryption key; keeps the one before it for decryption only.
    public func rotate() {
        keys.update { k in
            k.insert(.random(), at: 0)
            if k.count > 2 { k.removeLast(k.count - 2) }
        }
    }

    /// The fleet's keys replace this node's own (none: unchanged).
    public func install(_ fleet: [Key]) {
        guard !fleet.isEmpty else { return }
        keys.update { $0 = fleet.sorted { $0.notBefore > $1.notBefore } }
    }

    /// The keys as this thread last copied them, refreshed when a change happened since.
    func local() -> [Key] { keys.local() }

    /// Names of the keys held, newest first (for tests and the admin API).
    public var names: [[UInt8]] { keys.current.map(\.name) }

    /// The key that encrypts at `now`: the newest already valid, else the oldest held.
    static func encrypting(_ keys: [Key], now: Double) -> Key {
        keys.first { $0.notBefore <= now } ?? keys[keys.count - 1]
    }
}

/// RFC 5077-style ticket protection with AES-256-CBC + HMAC-SHA256, keyed from `TicketKeys.shared`.
let ticketKeyCallback: @convention(c) (OpaquePointer?, UnsafeMutablePointer<UInt8>?, UnsafeMutablePointer<UInt8>?, OpaquePointer?, OpaquePointer?, Int32) -> Int32 = { _, keyName, iv, cipher, mac, enc in
    guard let keyName, let iv, let cipher, let mac else { return -1 }
    let candidates = TicketKeys.shared.local()
    let key: TicketKeys.Key
    var result: Int32 = 1
    if enc == 1 {
        key = TicketKeys.encrypting(candidates, now: Double(time(nil)))
        guard RAND_bytes(iv, 16) == 1 else { return -1 }
        key.name.withUnsafeBufferPointer { keyName.update(from: $0.baseAddress!, count: 16) }
    } else {
        guard let index = candidates.firstIndex(where: { k in k.name.withUnsafeBufferPointer { memcmp($0.baseAddress!, keyName, 16) == 0 } }) else { return 0 }
        key = candidates[index]
        if key.name != TicketKeys.encrypting(candidates, now: Double(time(nil))).name { result = 2 }
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
