// Fuzzes the PROXY protocol reader (v1 text, v2 binary). Invariants: the answer for the bytes
// received so far never contradicts the answer for more of them (a prefix of a header is
// `.incomplete`, never `.invalid`; the header and its length do not change as bytes follow); a
// header never claims more bytes than it was given or than the limits; v1 addresses are what
// inet_pton reads; a header written out again (PROXY out) reads back the same.
// Input: 2 parameter bytes (prefix lengths), then the stream.
import FuzzSupport
import ProxyProtocol
#if canImport(Glibc)
import Glibc
#endif

func parse(_ bytes: ArraySlice<UInt8>) -> ProxyHeaderParse {
    bytes.withUnsafeBytes { ProxyHeader.parse($0) }
}

/// The address as inet_pton reads `text` (glibc: RFC 4291 text; IPv4 without leading zeros).
func pton(_ text: Substring, family: Int32) -> [UInt8]? {
    var out = [UInt8](repeating: 0, count: 16)
    guard inet_pton(family, String(text), &out) == 1 else { return nil }
    return Array(out.prefix(family == AF_INET ? 4 : 16))
}

func checkV1Text(_ header: ProxyHeader, _ line: ArraySlice<UInt8>) {
    let fields = String(decoding: line, as: UTF8.self).split(separator: " ", omittingEmptySubsequences: false)
    guard fields.count == 6, let source = header.source, let destination = header.destination else {
        require(header.source == nil && header.destination == nil && fields.count >= 2 && fields[1] == "UNKNOWN",
                "v1 \(fields) read as \(header)")
        return
    }
    let family = fields[1] == "TCP4" ? AF_INET : AF_INET6
    require(pton(fields[2], family: family) == source.address && pton(fields[3], family: family) == destination.address,
            "v1 addresses \(fields[2]) \(fields[3]) read as \(source.address) \(destination.address)")
    require(String(source.port) == fields[4] && String(destination.port) == fields[5], "v1 ports \(fields[4]) \(fields[5])")
}

func test(_ data: [UInt8]) {
    var input = FuzzInput(data)
    let (a, b) = (input.byte(), input.byte())
    let stream = input.rest
    let whole = parse(stream)

    var prefixes = [stream.count * Int(a) / 256, stream.count * Int(b) / 256]
    if case .header(let h) = whole {
        require(h.length > 0 && h.length <= stream.count, "header of \(h.length) bytes from \(stream.count)")
        require(h.length <= (h.version == 1 ? ProxyHeader.v1MaxLength : ProxyHeader.maxLength), "header of \(h.length) bytes")
        prefixes += [h.length - 1, h.length]
    }
    for n in prefixes {
        let part = parse(stream.prefix(n))
        switch (whole, part) {
        case (_, .incomplete): if case .header(let h) = whole { require(n < h.length, "\(n) bytes of a header of \(h.length) are incomplete") }
        case (.header(let h), .header(let p)): require(h == p, "\(n) bytes read as \(p), all as \(h)")
        case (.invalid, .invalid): break
        default: require(false, "\(n) bytes read as \(part), all \(stream.count) as \(whole)")
        }
    }

    guard case .header(let header) = whole else { return }
    if header.version == 1 { checkV1Text(header, stream.prefix(header.length - 2)) }
    if let source = header.source, let destination = header.destination {
        for written in [ProxyHeader.v1(source: source, destination: destination), ProxyHeader.v2(source: source, destination: destination)] {
            guard case .header(let again) = ProxyHeader.parse(written) else {
                return require(false, "\(header) written as \(written) does not read back")
            }
            require(again.source == source && again.destination == destination && again.length == written.count,
                    "\(header) written as \(written) reads back as \(again)")
        }
    }
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>?, _ size: Int) -> Int32 {
    test(FuzzInput(data, size).bytes)
    return 0
}

@main enum Main { static func main() { fuzzMain(fuzz) } }
