import Foundation

/// What serving a certificate needs to know before OpenSSL has parsed it: its names, validity
/// and serial, read from the DER of a P-256 leaf, and the proof that the private key is the
/// leaf's (the public key that SEC1 and PKCS#8 keys carry equals the leaf's). Start-up indexes
/// every certificate this way (~µs, against ~0.4 ms for OpenSSL 3.0 to decode and check one)
/// and builds the OpenSSL objects later, with OpenSSL's full checks.
///
/// It reads only the common shape: an X.509 v3 leaf with a P-256 key and subjectAltName DNS
/// names, and an unencrypted "PRIVATE KEY" or "EC PRIVATE KEY" holding its public key. For
/// anything else, a key that does not match, or a certificate that is expired, it answers nil
/// and the caller loads the files with OpenSSL at once, which gives the verdict and the error.
public struct CertificateIndex: Equatable, Sendable {
    public let names: [String]
    public let notBefore: Date
    public let notAfter: Date
    /// As OpenSSL's BN_bn2hex writes it: upper-case, whole bytes, no leading zero byte.
    public let serialHex: String

    public static func read(chainPEM: [UInt8], keyPEM: [UInt8], now: Date = Date()) -> CertificateIndex? {
        guard let chainBlocks = PEMBlocks.parse(chainPEM) else { return nil }
        let keyBlocks: [PEMBlocks.Block]? = keyPEM == chainPEM ? chainBlocks : PEMBlocks.parse(keyPEM)
        guard let keyBlocks,
              chainBlocks.allSatisfy({ $0.label == "CERTIFICATE" || $0.label.hasSuffix("PRIVATE KEY") }),
              let leafDER = chainBlocks.first(where: { $0.label == "CERTIFICATE" })?.der,
              let leaf = Leaf(leafDER),
              isInOrder(chainBlocks.filter { $0.label == "CERTIFICATE" }.map(\.der)),
              let keyBlock = keyBlocks.first(where: { $0.label.hasSuffix("PRIVATE KEY") }),  // the one OpenSSL's reader takes
              let keyPublic = publicKey(ofKey: keyBlock),
              keyPublic.elementsEqual(leaf.publicKey),
              leaf.notAfter > now else { return nil }
        return CertificateIndex(names: leaf.names, notBefore: leaf.notBefore, notAfter: leaf.notAfter, serialHex: leaf.serialHex)
    }

    /// Each certificate names the next one's subject as its issuer, byte for byte (OpenSSL refuses
    /// a chain out of order; names equal only after canonicalisation go to OpenSSL at once too).
    static func isInOrder(_ chain: [[UInt8]]) -> Bool {
        zip(chain, chain.dropFirst()).allSatisfy { pair in
            guard let lower = issuerAndSubject(pair.0), let upper = issuerAndSubject(pair.1) else { return false }
            return lower.issuer.elementsEqual(upper.subject)
        }
    }

    /// The issuer and subject Names (whole TLVs' contents) of any X.509 certificate.
    static func issuerAndSubject(_ der: [UInt8]) -> (issuer: ArraySlice<UInt8>, subject: ArraySlice<UInt8>)? {
        typealias D = DERReader
        var outer = D(der)
        guard let certificate = outer.read(D.sequence), outer.isAtEnd else { return nil }
        var c = outer.reader(certificate)
        guard let tbs = c.read(D.sequence) else { return nil }
        var t = c.reader(tbs)
        _ = t.read(D.context(0, constructed: true))  // version
        guard t.read(D.integer) != nil, t.read(D.sequence) != nil,
              let issuer = t.read(D.sequence), t.read(D.sequence) != nil, let subject = t.read(D.sequence) else { return nil }
        return (t.slice(issuer), t.slice(subject))
    }

    // id-ecPublicKey (RFC 5480 §2.1.1) with namedCurve secp256r1 (§2.1.1.1), as an AlgorithmIdentifier's content.
    static let p256Algorithm: [UInt8] = [0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01,
                                         0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07]
    static let p256Curve: [UInt8] = [0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07]
    static let subjectAltName: [UInt8] = [0x55, 0x1d, 0x11]  // 2.5.29.17 (RFC 5280 §4.2.1.6)

    /// An X.509 v3 certificate (RFC 5280 §4.1) with a P-256 key and at least one DNS name.
    struct Leaf {
        let names: [String]
        let notBefore: Date
        let notAfter: Date
        let serialHex: String
        /// The subjectPublicKey BIT STRING's content: 0x00, then the uncompressed point.
        let publicKey: ArraySlice<UInt8>

        init?(_ der: [UInt8]) {
            typealias D = DERReader
            var outer = D(der)
            guard let certificate = outer.read(D.sequence), outer.isAtEnd else { return nil }
            var c = outer.reader(certificate)
            guard let tbs = c.read(D.sequence), c.read(D.sequence) != nil, c.read(D.bitString) != nil, c.isAtEnd else { return nil }
            var t = c.reader(tbs)
            guard let version = t.read(D.context(0, constructed: true)) else { return nil }
            var v = t.reader(version)
            guard let number = v.read(D.integer), v.isAtEnd, t.equals(number, [2]) else { return nil }  // v3
            guard let serial = t.read(D.integer), let serialHex = Self.hex(positiveInteger: t.slice(serial)),
                  t.read(D.sequence) != nil,  // signature algorithm
                  t.read(D.sequence) != nil,  // issuer
                  let validity = t.read(D.sequence),
                  t.read(D.sequence) != nil,  // subject
                  let spki = t.read(D.sequence) else { return nil }
            var times = t.reader(validity)
            guard let nb = times.read(), let na = times.read(), times.isAtEnd,
                  let notBefore = Self.time(nb, t.slice(nb)), let notAfter = Self.time(na, t.slice(na)) else { return nil }
            var key = t.reader(spki)
            guard let algorithm = key.read(D.sequence), t.equals(algorithm, CertificateIndex.p256Algorithm),
                  let point = key.read(D.bitString), key.isAtEnd, Self.isUncompressedP256(t.slice(point)) else { return nil }
            _ = t.read(D.context(1, constructed: false))  // issuerUniqueID, subjectUniqueID
            _ = t.read(D.context(2, constructed: false))
            guard let extensions = t.read(D.context(3, constructed: true)), t.isAtEnd,
                  let names = Self.dnsNames(t.reader(extensions)), !names.isEmpty else { return nil }
            self.names = names
            self.notBefore = notBefore
            self.notAfter = notAfter
            self.serialHex = serialHex
            publicKey = t.slice(point)
        }

        /// DNS names of the one subjectAltName extension; nil when there is none, or two.
        static func dnsNames(_ explicit: DERReader) -> [String]? {
            var outer = explicit
            guard let list = outer.read(DERReader.sequence), outer.isAtEnd else { return nil }
            var extensions = outer.reader(list)
            var names: [String]?
            while !extensions.isAtEnd {
                guard let ext = extensions.read(DERReader.sequence) else { return nil }
                var e = extensions.reader(ext)
                guard let id = e.read(DERReader.objectIdentifier) else { return nil }
                _ = e.read(DERReader.boolean)  // critical
                guard let value = e.read(DERReader.octetString), e.isAtEnd else { return nil }
                guard e.equals(id, CertificateIndex.subjectAltName) else { continue }
                guard names == nil, let found = generalNames(e.reader(value)) else { return nil }
                names = found
            }
            return names
        }

        /// dNSName entries ([2] IA5String) of GeneralNames. IP addresses and URIs are skipped;
        /// any other kind is OpenSSL's to judge (a malformed one makes it fall back to the CN).
        static func generalNames(_ value: DERReader) -> [String]? {
            var outer = value
            guard let seq = outer.read(DERReader.sequence), outer.isAtEnd else { return nil }
            var list = outer.reader(seq)
            var names: [String] = []
            while !list.isAtEnd {
                guard let name = list.read() else { return nil }
                if name.tag == DERReader.context(7, constructed: false) || name.tag == DERReader.context(6, constructed: false) { continue }
                guard name.tag == DERReader.context(2, constructed: false) else { return nil }
                let bytes = list.slice(name)
                // Printable ASCII only, lower-cased as OpenSSL's path does; anything else is OpenSSL's to judge.
                guard !bytes.isEmpty, bytes.allSatisfy({ $0 > 0x20 && $0 < 0x7f }) else { return nil }
                names.append(String(decoding: bytes.map { $0 >= 0x41 && $0 <= 0x5a ? $0 | 0x20 : $0 }, as: UTF8.self))
            }
            return names
        }

        static func isUncompressedP256(_ bits: ArraySlice<UInt8>) -> Bool {
            bits.count == 66 && bits[bits.startIndex] == 0 && bits[bits.startIndex + 1] == 0x04
        }

        /// A positive INTEGER in its shortest form, as upper-case hex of its magnitude.
        static func hex(positiveInteger content: ArraySlice<UInt8>) -> String? {
            guard let first = content.first, first < 0x80 else { return nil }
            if first == 0, content.count > 1, content[content.startIndex + 1] < 0x80 { return nil }  // not the shortest form
            let magnitude = content.drop(while: { $0 == 0 })
            if magnitude.isEmpty { return "0" }
            let digits = Array("0123456789ABCDEF".utf8)
            var out: [UInt8] = []
            out.reserveCapacity(magnitude.count * 2)
            for b in magnitude { out.append(digits[Int(b >> 4)]); out.append(digits[Int(b & 15)]) }
            return String(decoding: out, as: UTF8.self)
        }

        /// UTCTime "YYMMDDHHMMSSZ" or GeneralizedTime "YYYYMMDDHHMMSSZ" (RFC 5280 §4.1.2.5).
        static func time(_ element: DERReader.Element, _ s: ArraySlice<UInt8>) -> Date? {
            let utc = element.tag == DERReader.utcTime
            guard utc || element.tag == DERReader.generalizedTime, s.count == (utc ? 13 : 15), s.last == UInt8(ascii: "Z") else { return nil }
            var digits: [Int] = []
            for b in s.dropLast() {
                guard b >= 0x30 && b <= 0x39 else { return nil }
                digits.append(Int(b - 0x30))
            }
            func number(_ at: Int, _ count: Int) -> Int { digits[at..<(at + count)].reduce(0) { $0 * 10 + $1 } }
            let two = utc ? number(0, 2) : 0
            let year = utc ? two + (two >= 50 ? 1900 : 2000) : number(0, 4)  // RFC 5280 §4.1.2.5.1
            let i = utc ? 2 : 4
            let month = number(i, 2), day = number(i + 2, 2), hour = number(i + 4, 2), minute = number(i + 6, 2), second = number(i + 8, 2)
            let leap = year % 4 == 0 && (year % 100 != 0 || year % 400 == 0)
            let monthDays = [31, leap ? 29 : 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31]
            guard (1...12).contains(month), day >= 1, day <= monthDays[month - 1], hour < 24, minute < 60, second < 60 else { return nil }
            let days = daysFromCivil(year, month, day)
            return Date(timeIntervalSince1970: TimeInterval(days * 86_400 + hour * 3600 + minute * 60 + second))
        }

        /// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's days_from_civil).
        static func daysFromCivil(_ y0: Int, _ m: Int, _ d: Int) -> Int {
            let y = m <= 2 ? y0 - 1 : y0
            let era = (y >= 0 ? y : y - 399) / 400
            let yoe = y - era * 400
            let doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1
            let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy
            return era * 146_097 + doe - 719_468
        }
    }

    /// The public key a P-256 private key carries (the BIT STRING's content), from PKCS#8
    /// (RFC 5208 §5) or SEC1 (RFC 5915 §3); nil for other key types and for keys without it.
    static func publicKey(ofKey block: PEMBlocks.Block) -> ArraySlice<UInt8>? {
        switch block.label {
        case "PRIVATE KEY":
            var outer = DERReader(block.der)
            guard let info = outer.read(DERReader.sequence), outer.isAtEnd else { return nil }
            var p = outer.reader(info)
            guard let version = p.read(DERReader.integer), p.equals(version, [0]),
                  let algorithm = p.read(DERReader.sequence), p.equals(algorithm, p256Algorithm),
                  let key = p.read(DERReader.octetString), p.isAtEnd else { return nil }  // no attributes
            return ecPrivateKeyPublicPart(p.reader(key))
        case "EC PRIVATE KEY":
            return ecPrivateKeyPublicPart(DERReader(block.der))
        default:
            return nil
        }
    }

    /// ECPrivateKey ::= SEQUENCE { version 1, privateKey OCTET STRING, [0] parameters OPTIONAL, [1] publicKey }.
    static func ecPrivateKeyPublicPart(_ reader: DERReader) -> ArraySlice<UInt8>? {
        var outer = reader
        guard let seq = outer.read(DERReader.sequence), outer.isAtEnd else { return nil }
        var k = outer.reader(seq)
        guard let version = k.read(DERReader.integer), k.equals(version, [1]),
              let scalar = k.read(DERReader.octetString), scalar.content.count == 32 else { return nil }
        if let parameters = k.read(DERReader.context(0, constructed: true)) {
            var p = k.reader(parameters)
            guard let curve = p.read(DERReader.objectIdentifier), p.isAtEnd, p.equals(curve, p256Curve) else { return nil }
        }
        guard let explicit = k.read(DERReader.context(1, constructed: true)), k.isAtEnd else { return nil }
        var e = k.reader(explicit)
        guard let bits = e.read(DERReader.bitString), e.isAtEnd, Leaf.isUncompressedP256(e.slice(bits)) else { return nil }
        return e.slice(bits)
    }
}
