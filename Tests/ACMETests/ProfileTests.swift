import ACME
import Foundation
import HTTP1
import Synchronization
import Testing

/// Certificate profiles (draft-ietf-acme-profiles). Debian's Pebble (2.4) has no profiles, so a
/// scripted CA stands in: its directory lists profiles, and it records each newOrder payload.
@Suite struct ProfileTests {
    @Test func aListedProfileIsSentInNewOrder() throws {
        let ca = ProfileCA(profiles: ["classic": "90 days", "shortlived": "6 days"])
        let client = try ca.client()
        let (url, order) = try client.newOrder(names: ["p.example"], profile: "shortlived")
        #expect(url == "https://ca.test/order/1" && order.profile == "shortlived")
        let payload = try #require(ca.orders.first)
        #expect(payload["profile"] as? String == "shortlived")
        // Without one, the field is left out and the CA's default applies.
        _ = try client.newOrder(names: ["p.example"])
        #expect(ca.orders.count == 2 && ca.orders[1]["profile"] == nil)
    }

    @Test func aProfileTheCADoesNotListIsAClearErrorBeforeAnyOrder() throws {
        let ca = ProfileCA(profiles: ["classic": "90 days", "shortlived": "6 days"])
        let error = #expect(throws: ACMEError.self) { try ca.client().newOrder(names: ["p.example"], profile: "tlsserver") }
        #expect(error?.code == .profile)
        #expect(error?.reason == "the CA does not offer the certificate profile \"tlsserver\" (it offers: classic, shortlived)")
        let none = ProfileCA(profiles: nil)
        let refused = #expect(throws: ACMEError.self) { try none.client().newOrder(names: ["p.example"], profile: "shortlived") }
        #expect(refused?.reason.contains("its directory lists no profiles") == true)
        #expect(ca.orders.isEmpty && none.orders.isEmpty)
    }
}

/// Directory, nonces and newOrder; every other path is a 404.
private final class ProfileCA: HTTPTransport, @unchecked Sendable {  // `seen` is behind a Mutex
    let profiles: [String: String]?
    /// Each newOrder payload, as JSON.
    private let seen = Mutex<[Data]>([])
    var orders: [[String: Any]] { seen.withLock { $0 }.map { try! JSONSerialization.jsonObject(with: $0) as! [String: Any] } }

    init(profiles: [String: String]?) { self.profiles = profiles }

    func client() throws -> ACMEClient {
        ACMEClient(directoryURL: "https://ca.test/dir", accountKey: try AccountKey.generate(), transport: self,
                   accountURL: "https://ca.test/acct/1")
    }

    func request(method: String, url: String, headers: [HTTPField], body: [UInt8]) throws(ACMEError) -> HTTPResponse {
        let path = URLComponents(string: url)?.path ?? url
        let nonce = HTTPField(name: "Replay-Nonce", value: "n\(UInt32.random(in: 0 ... .max))")
        switch (method, path) {
        case ("GET", "/dir"):
            var dir: [String: Any] = ["newNonce": "https://ca.test/nonce", "newAccount": "https://ca.test/acct", "newOrder": "https://ca.test/order"]
            if let profiles { dir["meta"] = ["profiles": profiles] }
            return HTTPResponse(status: 200, headers: [], body: [UInt8](try! JSONSerialization.data(withJSONObject: dir)))
        case ("HEAD", "/nonce"):
            return HTTPResponse(status: 200, headers: [nonce], body: [])
        case ("POST", "/order"):
            let jws = try! JSONSerialization.jsonObject(with: Data(body)) as! [String: String]
            var b64 = jws["payload"]!.replacingOccurrences(of: "-", with: "+").replacingOccurrences(of: "_", with: "/")
            while b64.count % 4 != 0 { b64 += "=" }
            let raw = Data(base64Encoded: b64)!
            let payload = try! JSONSerialization.jsonObject(with: raw) as! [String: Any]
            seen.withLock { $0.append(raw) }
            var order: [String: Any] = ["status": "pending", "identifiers": payload["identifiers"]!, "authorizations": [],
                                        "finalize": "https://ca.test/order/1/finalize"]
            if let profile = payload["profile"] { order["profile"] = profile }
            return HTTPResponse(status: 201, headers: [nonce, HTTPField(name: "Location", value: "https://ca.test/order/1")],
                                body: [UInt8](try! JSONSerialization.data(withJSONObject: order)))
        default:
            return HTTPResponse(status: 404, headers: [nonce], body: [])
        }
    }
}
