// Fuzzes what start-up reads from certificate files before OpenSSL does: PEM splitting, base64,
// the strict DER reader and the certificate index, with a file as `NAME.pem` (chain + key).
// Invariants: PEM blocks written out again read back the same; base64 is canonical (what decodes
// is exactly what encoding the result gives); every DER element read re-encodes to the bytes it
// came from and stays inside its parent; and a certificate the index accepts is read the same by
// OpenSSL: its names, serial and validity, which serve before OpenSSL has looked.
// Input: the file's bytes.
@testable import Certificates
import Foundation
import FuzzSupport
import TLS

let now = Date(timeIntervalSince1970: 1_750_000_000)

func base64(_ bytes: [UInt8]) -> [UInt8] {
    let alphabet = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/".utf8)
    var out: [UInt8] = []
    var i = 0
    while i < bytes.count {
        let n = min(3, bytes.count - i)
        let v = (0..<3).reduce(UInt32(0)) { $0 << 8 | UInt32($1 < n ? bytes[i + $1] : 0) }
        for k in 0..<4 { out.append(k <= n ? alphabet[Int(v >> UInt32(18 - 6 * k) & 63)] : UInt8(ascii: "=")) }
        i += 3
    }
    return out
}

/// DER for a tag and content: the shortest length form (X.690 §10.1).
func encode(tag: UInt8, _ content: ArraySlice<UInt8>) -> [UInt8] {
    let n = content.count
    let length: [UInt8] = n < 0x80 ? [UInt8(n)]
        : n < 0x100 ? [0x81, UInt8(n)]
        : n < 0x10000 ? [0x82, UInt8(n >> 8), UInt8(n & 0xff)]
        : [0x83, UInt8(n >> 16), UInt8(n >> 8 & 0xff), UInt8(n & 0xff)]
    return [tag] + length + content
}

/// Reads every element of `reader`, descending into constructed ones, until it stops.
func walk(_ reader: DERReader, depth: Int = 0) {
    guard depth < 32 else { return }
    var r = reader
    while !r.isAtEnd {
        let start = r.position
        guard let element = r.read() else { return }
        require(element.content.lowerBound >= start && element.content.upperBound == r.position && r.position <= reader.end,
                "element \(element) read from \(start) leaves its parent ending at \(reader.end)")
        require(r.bytes[start..<r.position].elementsEqual(encode(tag: element.tag, r.slice(element))),
                "element at \(start) is not in DER's shortest form")
        if element.tag & 0x20 != 0 { walk(r.reader(element), depth: depth + 1) }
    }
}

func test(_ data: [UInt8]) {
    // Base64 over the raw input: canonical when it decodes.
    if let decoded = Base64.decode(data[...]) {
        let significant = data.filter { !" \t\r\n".utf8.contains($0) }
        require(base64(decoded) == significant, "base64 \(significant) decodes to \(decoded), which encodes otherwise")
    }
    require(Base64.decode(base64(data)[...]) == data, "base64 of \(data) does not decode back")

    guard let blocks = PEMBlocks.parse(data) else { return }
    var written: [UInt8] = []
    for block in blocks {
        written += Array("-----BEGIN \(block.label)-----\n".utf8) + base64(block.der)
        written += Array("\n-----END \(block.label)-----\n".utf8)
        walk(DERReader(block.der))
    }
    let again = PEMBlocks.parse(written)
    require(again?.map(\.label) == blocks.map(\.label) && again?.map(\.der) == blocks.map(\.der), "PEM blocks read back otherwise")

    guard let index = CertificateIndex.read(chainPEM: data, keyPEM: data, now: now) else { return }
    // OpenSSL may refuse what the index took (it checks more, and start-up then drops the
    // certificate); what both read must agree.
    guard let leaf = try? X509Certificate.parseChain(pem: data).first else { return }
    require(leaf.dnsNames == index.names, "index names \(index.names), OpenSSL's \(leaf.dnsNames)")
    require(leaf.serialHex == index.serialHex, "index serial \(index.serialHex), OpenSSL's \(leaf.serialHex)")
    require(leaf.notBefore == index.notBefore && leaf.notAfter == index.notAfter,
            "index validity \(index.notBefore)–\(index.notAfter), OpenSSL's \(leaf.notBefore)–\(leaf.notAfter)")
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>?, _ size: Int) -> Int32 {
    test(FuzzInput(data, size).bytes)
    return 0
}

@main enum Main { static func main() { fuzzMain(fuzz) } }
