@testable import Cluster
import Foundation
import Testing

@Suite struct SealerTests {
    static func key(_ fill: UInt8) throws -> Sealer.Key { try Sealer.Key([UInt8](repeating: fill, count: 32)) }

    @Test func roundTrip() throws {
        let sealer = try Sealer(keys: [Self.key(1)])
        let secret = Array("-----BEGIN PRIVATE KEY-----".utf8)
        let sealed = try sealer.seal(secret, context: "/edgeproxy/certs/a.example")
        #expect(sealed.count == secret.count + 12 + 12 + 16)
        #expect(Sealer.keyID(of: sealed) == (try Self.key(1)).id)
        #expect(try sealer.open(sealed, context: "/edgeproxy/certs/a.example") == secret)
        #expect(try sealer.open(try sealer.seal([], context: "x"), context: "x") == [])
    }

    @Test func aRecordMovedToAnotherKeyDoesNotOpen() throws {
        let sealer = try Sealer(keys: [Self.key(1)])
        let sealed = try sealer.seal(Array("secret".utf8), context: "/a")
        let error = #expect(throws: SealerError.self) { try sealer.open(sealed, context: "/b") }
        #expect(error?.code == .authentication)
    }

    @Test func theWrongKeyDoesNotOpen() throws {
        let sealed = try Sealer(keys: [Self.key(1)]).seal(Array("secret".utf8), context: "/a")
        let other = try Sealer(keys: [Self.key(2)])
        let error = #expect(throws: SealerError.self) { try other.open(sealed, context: "/a") }
        #expect(error?.code == .missingKey)
        #expect(error?.keyID == (try Self.key(1)).id)
        #expect(error?.reason.contains(Sealer.hex((try Self.key(1)).id)) == true)
        // The same key id with other key bytes (a forged header) fails authentication instead.
        var forged = sealed
        forged.replaceSubrange(4..<12, with: (try Self.key(2)).id)
        #expect(throws: SealerError.self) { try other.open(forged, context: "/a") }
    }

    @Test func rotationOpensOldRecordsAndSealsUnderTheNewKey() throws {
        let old = try Sealer(keys: [Self.key(1)])
        let rotated = try Sealer(keys: [Self.key(2), Self.key(1)])
        let before = try old.seal(Array("v1".utf8), context: "/k")
        #expect(try rotated.open(before, context: "/k") == Array("v1".utf8))
        let after = try rotated.seal(Array("v2".utf8), context: "/k")
        #expect(Sealer.keyID(of: after) == (try Self.key(2)).id)
        let error = #expect(throws: SealerError.self) { try old.open(after, context: "/k") }
        #expect(error?.code == .missingKey)
    }

    @Test func everyTamperedByteFails() throws {
        let sealer = try Sealer(keys: [Self.key(1)])
        let sealed = try sealer.seal(Array("secret value".utf8), context: "/a")
        for i in sealed.indices {
            var tampered = sealed
            tampered[i] ^= 0x01
            #expect(throws: SealerError.self) { try sealer.open(tampered, context: "/a") }
        }
        #expect(throws: SealerError.self) { try sealer.open(Array(sealed.dropLast()), context: "/a") }
        let short = #expect(throws: SealerError.self) { try sealer.open([1, 2, 3], context: "/a") }
        #expect(short?.code == .notSealed)
    }

    @Test func everySealUsesAFreshNonce() throws {
        let sealer = try Sealer(keys: [Self.key(1)])
        let a = try sealer.seal(Array("same".utf8), context: "/a"), b = try sealer.seal(Array("same".utf8), context: "/a")
        #expect(a != b)
        #expect(a[12..<24] != b[12..<24])
    }

    @Test func loadsKeyFilesInEachFormAndNamesTheBadOne() throws {
        let dir = try TempDir()
        let raw = [UInt8](repeating: 7, count: 32)
        _ = FileManager.default.createFile(atPath: dir.path("raw"), contents: Data(raw))
        try (raw.map { String(format: "%02x", $0) }.joined() + "\n").write(toFile: dir.path("hex"), atomically: true, encoding: .utf8)
        try (Data(raw).base64EncodedString() + "\n").write(toFile: dir.path("b64"), atomically: true, encoding: .utf8)
        let sealer = try Sealer.load(files: [dir.path("raw"), dir.path("hex"), dir.path("b64")])
        #expect(sealer.keys.count == 3)
        #expect(Set(sealer.keys.map(\.id)).count == 1)
        _ = FileManager.default.createFile(atPath: dir.path("short"), contents: Data(repeating: 1, count: 31))
        let error = #expect(throws: SealerError.self) { try Sealer.load(files: [dir.path("raw"), dir.path("short")]) }
        #expect(error?.reason.contains(dir.path("short")) == true)
        let missing = #expect(throws: SealerError.self) { try Sealer.load(files: [dir.path("absent")]) }
        #expect(missing?.reason.contains("absent") == true)
        #expect(throws: SealerError.self) { try Sealer.load(files: []) }
    }
}
