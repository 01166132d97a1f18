/// Just enough JSON writing for the access log and the admin API: string literals (RFC 8259 §7).
public enum JSON {
    public static func string(_ s: String) -> String {
        var out: [UInt8] = []
        append(s, to: &out)
        return String(decoding: out, as: UTF8.self)
    }

    /// The literal for `s` (nil: `null`) appended as bytes, for writers that build lines without
    /// intermediate strings (the access log). Control characters become escapes; the rest of the
    /// UTF-8 passes through.
    public static func append(_ s: String?, to out: inout [UInt8]) {
        guard let s else { out.append(contentsOf: "null".utf8); return }
        out.append(UInt8(ascii: "\""))
        for b in s.utf8 {
            switch b {
            case UInt8(ascii: "\""), UInt8(ascii: "\\"): out.append(UInt8(ascii: "\\")); out.append(b)
            case UInt8(ascii: "\n"): out.append(UInt8(ascii: "\\")); out.append(UInt8(ascii: "n"))
            case UInt8(ascii: "\r"): out.append(UInt8(ascii: "\\")); out.append(UInt8(ascii: "r"))
            case UInt8(ascii: "\t"): out.append(UInt8(ascii: "\\")); out.append(UInt8(ascii: "t"))
            case 0..<0x20, 0x7f:
                func hex(_ n: UInt8) -> UInt8 { n < 10 ? UInt8(ascii: "0") + n : UInt8(ascii: "a") + n - 10 }
                out.append(contentsOf: #"\u00"#.utf8); out.append(hex(b >> 4)); out.append(hex(b & 0xf))
            default: out.append(b)
            }
        }
        out.append(UInt8(ascii: "\""))
    }

    public static func string(_ s: String?) -> String { s.map { string($0) } ?? "null" }
}
