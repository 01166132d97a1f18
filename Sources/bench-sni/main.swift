import Certificates
import Foundation
import TLS

// bench-sni [COUNT]: the certificate store's ClientHello → certificate cost with COUNT names, in
// process, as the handshake path calls it (CertificateStore.select on a catalog-built snapshot).
// Every name shares one certificate and key: lookups do not depend on what the bundle holds.
// Prints one JSON object: nanoseconds per lookup for exact hits, wildcard hits and misses.

let count = CommandLine.arguments.count > 1 ? Int(CommandLine.arguments[1]) ?? 100_000 : 100_000
let key = try PrivateKey.generateP256()
let certified = try CertifiedKey(chain: [try SelfSigned.make(names: ["bench.test"], key: key)], key: key)
func bundle(_ name: String) -> CertificateBundle {
    CertificateBundle(names: [name], keyType: .ecdsa, certified: certified, source: "bench")
}

let catalog = CertificateCatalog()
let names = (0..<count).map { "cert-\($0).bench.test" }
catalog.apply(upserts: names.enumerated().map { (id: "n\($0.offset)", bundle: bundle($0.element), origin: "bench") }
                       + [(id: "wild", bundle: bundle("*.wild.test"), origin: "bench")], removals: [])
let store = CertificateStore(catalog.snapshot(defaultName: nil), strictSNI: true)

/// Median over 5 rounds of ns per select() for `hellos` (reused, so building them is not timed).
func measure(_ hellos: [ClientHello]) -> Double {
    var rounds: [Double] = []
    var found = 0
    for _ in 0..<5 {
        let start = DispatchTime.now().uptimeNanoseconds
        for hello in hellos { if case .certificate = store.select(hello) { found += 1 } }
        rounds.append(Double(DispatchTime.now().uptimeNanoseconds - start) / Double(hellos.count))
    }
    precondition(found >= 0)
    return rounds.sorted()[2]
}

let lookups = 200_000
var rng = SystemRandomNumberGenerator()
let exact = (0..<lookups).map { _ in ClientHello(serverName: names[Int.random(in: 0..<count, using: &rng)], offersECDSA: true) }
let wildcard = (0..<lookups).map { ClientHello(serverName: "host\($0 % 1000).wild.test", offersECDSA: true) }
let miss = (0..<lookups).map { ClientHello(serverName: "nope-\($0).other.test", offersECDSA: true) }
let result = ["exact": measure(exact), "wildcard": measure(wildcard), "miss": measure(miss)]
print("{\"names\": \(count + 1), " + result.sorted { $0.key < $1.key }.map { "\"\($0.key)_ns\": \(String(format: "%.0f", $0.value))" }.joined(separator: ", ") + "}")
