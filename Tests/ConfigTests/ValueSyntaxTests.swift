import Testing
@testable import Config

@Suite struct ValueSyntaxTests {
    @Test(arguments: [("500ms", 0.5), ("30s", 30), ("2m", 120), ("1h", 3600), ("45", 45), ("0", 0)] as [(String, Double)])
    func durations(text: String, seconds: Double) {
        #expect(ValueSyntax.durationSeconds(text) == seconds)
    }

    @Test(arguments: ["", "s", "1.5s", "-1s", "+1s", "1 s", "1d", "30 seconds", "1sm", "99999999999999999999s"])
    func notDurations(text: String) {
        #expect(ValueSyntax.durationSeconds(text) == nil)
    }

    @Test(arguments: [("0", 0), ("512", 512), ("16k", 16384), ("16K", 16384), ("10m", 10 << 20), ("1g", 1 << 30)] as [(String, Int64)])
    func sizes(text: String, bytes: Int64) {
        #expect(ValueSyntax.sizeBytes(text) == bytes)
    }

    @Test(arguments: ["", "k", "1.5m", "10 MB", "10mb", "-1", "9999999999999g"])
    func notSizes(text: String) {
        #expect(ValueSyntax.sizeBytes(text) == nil)
    }

    @Test func addresses() throws {
        #expect(try ValueSyntax.address(":443").get() == SocketAddressSpec(host: "", port: 443))
        #expect(try ValueSyntax.address("*:443").get() == SocketAddressSpec(host: "", port: 443))
        #expect(try ValueSyntax.address("443").get() == SocketAddressSpec(host: "", port: 443))
        #expect(try ValueSyntax.address("0.0.0.0:80").get() == SocketAddressSpec(host: "0.0.0.0", port: 80))
        #expect(try ValueSyntax.address("[::]:80").get() == SocketAddressSpec(host: "::", port: 80))
        #expect(try ValueSyntax.address("localhost:80").get() == SocketAddressSpec(host: "localhost", port: 80))
        #expect(ValueSyntax.address("[::1]80") == .failure(.syntax))
        #expect(ValueSyntax.address("1.2.3:80") == .failure(.host("1.2.3")))
        #expect(ValueSyntax.address("[1.2.3.4]:80") == .failure(.host("1.2.3.4")))
        #expect(ValueSyntax.address(":65536") == .failure(.port("65536")))
        #expect(ValueSyntax.address(":") == .failure(.syntax))
    }

    @Test func hostPatterns() {
        for valid in ["example.com", "a", "*.example.com", "xn--bcher-kva.example", "127.0.0.1"] {
            #expect(ValueSyntax.isHostPattern(valid, wildcard: true), "\(valid)")
        }
        for invalid in ["", "*", "*.", "a..b", "a.b.", "-a.com", "a-.com", "a_b.com", "*.*.com", "a.*.com", "Ex.com",
                        String(repeating: "a", count: 64) + ".com"] {
            #expect(!ValueSyntax.isHostPattern(invalid, wildcard: true), "\(invalid)")
        }
        #expect(!ValueSyntax.isHostPattern("*.example.com", wildcard: false))
    }
}
