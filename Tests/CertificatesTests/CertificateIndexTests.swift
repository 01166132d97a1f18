import COpenSSL
import Foundation
import Testing
@testable import Certificates
@testable import TLS

/// The start-up index must read what OpenSSL reads from the common certificates, and answer nil
/// (OpenSSL decides) to everything else: truncated, corrupted or unusual input never traps.
@Suite struct CertificateIndexTests {
    struct Pair {
        let cert: X509Certificate
        let key: PrivateKey
        var certPEM: [UInt8]
        var keyPEM: [UInt8]
    }

    static func p256(_ names: [String], lifetime: Int = 86_400) throws -> Pair {
        let key = try PrivateKey.generateP256()
        let cert = try SelfSigned.make(names: names, key: key, lifetime: lifetime) { (_: OpaquePointer) throws(TLSError) in }
        return Pair(cert: cert, key: key, certPEM: try cert.pem(), keyPEM: try key.pem())
    }

    static func der(_ cert: X509Certificate) -> [UInt8] {
        var out: UnsafeMutablePointer<UInt8>?
        let len = i2d_X509(cert.x509, &out)
        defer { COpenSSL_free(out) }
        return Array(UnsafeBufferPointer(start: out, count: Int(len)))
    }

    @Test func readsWhatOpenSSLReads() throws {
        let caKey = try PrivateKey.generateP256()
        let ca = try SelfSigned.make(names: ["ca.test"], key: caKey)
        for _ in 0..<20 {
            let pair = try Self.p256(["a.test", "WWW.A.test", "*.wild.a.test"])
            let issued = try IssuerCacheTests.leaf("chain.test", key: pair.key, ca: ca, caKey: caKey)
            let sec1 = try KeyFormatTests.typeSpecificPEM(pair.key, label: "EC PRIVATE KEY")
            let cases: [(X509Certificate, [UInt8], [UInt8])] = [
                (pair.cert, pair.certPEM, pair.keyPEM),                          // NAME.crt + PKCS#8 NAME.key
                (pair.cert, pair.certPEM, sec1),                                 // SEC1 key
                (pair.cert, pair.certPEM + pair.keyPEM, pair.certPEM + pair.keyPEM),  // NAME.pem
                (issued, try issued.pem() + ca.pem(), pair.keyPEM),              // leaf + issuer
            ]
            for (cert, chain, key) in cases {
                let index = try #require(CertificateIndex.read(chainPEM: chain, keyPEM: key))
                #expect(index.names == cert.dnsNames)
                #expect(index.notBefore == cert.notBefore && index.notAfter == cert.notAfter)
                #expect(index.serialHex == cert.serialHex)
                let eager = try CertificateLoader.bundle(chainPEM: chain, keyPEM: key, source: "t")
                #expect(index.names == eager.names)
            }
        }
    }

    @Test func refusesWhatItCannotVouchFor() throws {
        let pair = try Self.p256(["a.test"])
        let other = try Self.p256(["a.test"])
        #expect(CertificateIndex.read(chainPEM: pair.certPEM, keyPEM: other.keyPEM) == nil)  // another key
        #expect(CertificateIndex.read(chainPEM: pair.certPEM, keyPEM: []) == nil)
        #expect(CertificateIndex.read(chainPEM: [], keyPEM: pair.keyPEM) == nil)
        let expired = try Self.p256(["old.test"], lifetime: -60)
        #expect(CertificateIndex.read(chainPEM: expired.certPEM, keyPEM: expired.keyPEM) == nil)
        let rsaKey = try PrivateKey.generateRSA()
        let rsa = try SelfSigned.make(names: ["rsa.test"], key: rsaKey)
        #expect(CertificateIndex.read(chainPEM: try rsa.pem(), keyPEM: try rsaKey.pem()) == nil)
        // An encrypted key, and a PEM header: OpenSSL's to read.
        let headered = Array("-----BEGIN EC PRIVATE KEY-----\nProc-Type: 4,ENCRYPTED\n\nAAAA\n-----END EC PRIVATE KEY-----\n".utf8)
        #expect(CertificateIndex.read(chainPEM: pair.certPEM, keyPEM: headered) == nil)
    }

    /// OpenSSL takes a PEM marker only at the start of a line, alone on it; so must the index, or
    /// it serves the names of a leaf OpenSSL never reads (found by fuzzing: a BEGIN line after
    /// other text on its line, which OpenSSL skips with its block, so the next block was its leaf).
    @Test func pemMarkersOnlyWhereOpenSSLSeesThem() throws {
        let pair = try Self.p256(["hidden.test"])
        let other = try Self.p256(["seen.test"])
        let pem = String(decoding: pair.certPEM, as: UTF8.self)
        let sees = { (text: String) in try X509Certificate.parseChain(pem: Array(text.utf8)).first?.dnsNames }
        for hidden in ["x " + pem, pem.replacingOccurrences(of: "CERTIFICATE-----\n", with: "CERTIFICATE-----x\n", range: pem.range(of: "CERTIFICATE-----\n"))] {
            let text = hidden + String(decoding: other.certPEM + pair.keyPEM, as: UTF8.self)
            #expect(try sees(text) == ["seen.test"])
            #expect(PEMBlocks.parse(Array(text.utf8)) == nil)
            let alone = Array((hidden + String(decoding: pair.keyPEM, as: UTF8.self)).utf8)
            #expect(try X509Certificate.parseChain(pem: alone).isEmpty)
            #expect(CertificateIndex.read(chainPEM: alone, keyPEM: alone) == nil)
        }
        // An END marker inside a base64 line is not one for OpenSSL either.
        #expect(PEMBlocks.parse(Array(pem.replacingOccurrences(of: "\n-----END", with: "-----END").utf8)) == nil)
        // CRLF lines and no final newline are still read.
        let crlf = pem.replacingOccurrences(of: "\n", with: "\r\n")
        #expect(PEMBlocks.parse(Array(crlf.utf8))?.map(\.der) == [Self.der(pair.cert)])
        #expect(PEMBlocks.parse(Array(pem.dropLast().utf8))?.map(\.der) == [Self.der(pair.cert)])
    }

    @Test func truncatedOrCorruptedInputNeverTraps() throws {
        let pair = try Self.p256(["t.test", "u.test"])
        let full = try #require(CertificateIndex.read(chainPEM: pair.certPEM, keyPEM: pair.keyPEM))
        let der = Self.der(pair.cert)
        #expect(CertificateIndex.Leaf(der) != nil)
        for n in 0..<der.count { #expect(CertificateIndex.Leaf(Array(der[..<n])) == nil) }
        for n in 0..<pair.certPEM.count {
            // Cut inside the block: refused; cut after its END line: the same index.
            let index = CertificateIndex.read(chainPEM: Array(pair.certPEM[..<n]), keyPEM: pair.keyPEM)
            #expect(index == nil || index == full)
        }
        for n in 0..<pair.keyPEM.count {
            let index = CertificateIndex.read(chainPEM: pair.certPEM, keyPEM: Array(pair.keyPEM[..<n]))
            #expect(index == nil || index == full)
        }
        // Every byte of the DER changed in turn: whatever comes out is a complete reading.
        var rng = SystemRandomNumberGenerator()
        for i in 0..<der.count {
            var bad = der
            bad[i] ^= UInt8.random(in: 1...255, using: &rng)
            if let leaf = CertificateIndex.Leaf(bad) { #expect(!leaf.names.isEmpty && leaf.publicKey.count == 66) }
        }
        for _ in 0..<2000 {
            let junk = (0..<Int.random(in: 0...600, using: &rng)).map { _ in UInt8.random(in: 0...255, using: &rng) }
            _ = CertificateIndex.Leaf(junk)
            _ = PEMBlocks.parse(junk)
            _ = CertificateIndex.publicKey(ofKey: PEMBlocks.Block(label: "PRIVATE KEY", der: junk))
            _ = CertificateIndex.publicKey(ofKey: PEMBlocks.Block(label: "EC PRIVATE KEY", der: junk))
        }
    }

    @Test func derLengthsAreStrict() {
        func element(_ bytes: [UInt8]) -> DERReader.Element? { var r = DERReader(bytes); return r.read() }
        #expect(element([0x04, 0x01, 0xaa])?.content == 2..<3)
        #expect(element([0x04, 0x81, 0x80] + [UInt8](repeating: 0, count: 0x80))?.content == 3..<0x83)
        #expect(element([0x04, 0x81, 0x01, 0xaa]) == nil)        // long form for a short length
        #expect(element([0x04, 0x82, 0x00, 0x80] + [UInt8](repeating: 0, count: 0x80)) == nil)  // leading zero
        #expect(element([0x30, 0x80, 0x00, 0x00]) == nil)        // indefinite
        #expect(element([0x04, 0x02, 0xaa]) == nil)              // past the end
        #expect(element([0x1f, 0x01, 0x00]) == nil)              // multi-byte tag
        #expect(element([0x04, 0x84, 0x7f, 0xff, 0xff, 0xff]) == nil)
        #expect(element([0x04]) == nil)
    }

    @Test func base64IsStrict() {
        #expect(Base64.decode(ArraySlice("aGVsbG8=".utf8)) == Array("hello".utf8))
        #expect(Base64.decode(ArraySlice("aGVs\r\nbG8h".utf8)) == Array("hello!".utf8))
        #expect(Base64.decode(ArraySlice("aGVsbA==".utf8)) == Array("hell".utf8))
        #expect(Base64.decode(ArraySlice("aGVsbG8".utf8)) == nil)     // not whole quanta
        #expect(Base64.decode(ArraySlice("aGVs=bG8".utf8)) == nil)    // padding inside
        #expect(Base64.decode(ArraySlice("aGVsbG9=".utf8)) == nil)    // non-zero leftover bits
        #expect(Base64.decode(ArraySlice("aGV:bG8h".utf8)) == nil)
    }

    @Test func serialsAndTimesAsOpenSSLWritesThem() {
        typealias L = CertificateIndex.Leaf
        #expect(L.hex(positiveInteger: [0x01]) == "01")
        #expect(L.hex(positiveInteger: [0x00, 0x80, 0x0a]) == "800A")
        #expect(L.hex(positiveInteger: [0x00]) == "0")
        #expect(L.hex(positiveInteger: [0x00, 0x01]) == nil)  // not the shortest form
        #expect(L.hex(positiveInteger: [0x80]) == nil)        // negative
        #expect(L.hex(positiveInteger: []) == nil)
        func time(_ tag: UInt8, _ s: String) -> TimeInterval? {
            L.time(DERReader.Element(tag: tag, content: 0..<0), ArraySlice(s.utf8))?.timeIntervalSince1970
        }
        #expect(time(DERReader.utcTime, "491231235959Z") == 2_524_607_999)
        #expect(time(DERReader.utcTime, "500101000000Z") == -631_152_000)
        #expect(time(DERReader.generalizedTime, "20500101000000Z") == 2_524_608_000)
        #expect(time(DERReader.generalizedTime, "20240229120000Z") == 1_709_208_000)
        #expect(time(DERReader.generalizedTime, "20230229120000Z") == nil)
        #expect(time(DERReader.utcTime, "4912312359Z") == nil)
        #expect(time(DERReader.utcTime, "491231235959+0100") == nil)
        #expect(time(DERReader.generalizedTime, "491231235959Z") == nil)
    }
}
