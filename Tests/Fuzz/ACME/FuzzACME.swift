// Fuzzes the decoding of what an ACME CA sends: the directory, orders, authorizations,
// challenges and problem documents (RFC 8555 §7.1, §6.7), renewal information (RFC 9773) and
// Retry-After. Invariants: nothing traps; a decoded document encodes and decodes to the same
// document; dates and delays are finite and delays never negative.
// Input: 1 parameter byte (which document), then the response body.
import ACME
import Foundation
import FuzzSupport

/// Decodes `body` as `T` as the client does; when it decodes, its JSON decodes back to itself.
func roundTrip<T: Codable>(_ type: T.Type, _ body: [UInt8]) {
    guard let value = try? JSONDecoder().decode(type, from: Data(body)) else { return }
    let encoder = JSONEncoder()
    encoder.outputFormatting = .sortedKeys
    guard let json = try? encoder.encode(value) else { return require(false, "\(value) does not encode") }
    guard let again = try? JSONDecoder().decode(type, from: json) else {
        return require(false, "\(String(decoding: json, as: UTF8.self)) does not decode")
    }
    require((try? encoder.encode(again)) == json, "\(value) decodes back otherwise")
}

func test(_ data: [UInt8]) {
    var input = FuzzInput(data)
    let kind = input.byte()
    let body = Array(input.rest)
    switch kind % 8 {
    case 0: roundTrip(Directory.self, body)
    case 1: roundTrip(Order.self, body)
    case 2: roundTrip(Authorization.self, body)
    case 3: roundTrip(Challenge.self, body)
    case 4:
        roundTrip(Problem.self, body)
        if let problem = try? JSONDecoder().decode(Problem.self, from: Data(body)) { _ = problem.description; _ = problem.shortType }
    case 5:
        guard let info = try? RenewalInfo.decode(body) else { return }
        let window = info.suggestedWindow
        require(window.start.timeIntervalSince1970.isFinite && window.end.timeIntervalSince1970.isFinite, "window \(window)")
        let time = RenewalPolicy.renewalTime(notBefore: Date(timeIntervalSince1970: 0), notAfter: Date(timeIntervalSince1970: 1e9),
                                             ariWindow: window, random: 0.5)
        require(time.timeIntervalSince1970.isFinite, "renewal at \(time) from \(window)")
    case 6:
        let value = String(decoding: body, as: UTF8.self)
        if let seconds = RetryAfter.seconds(value, now: Date(timeIntervalSince1970: 1_750_000_000)) {
            require(seconds.isFinite && seconds >= 0, "Retry-After \(value.debugDescription) read as \(seconds)")
        }
    default:
        require(Base64URL.decode(Base64URL.encode(body)) == body, "base64url of \(body) does not decode back")
        _ = Base64URL.decode(String(decoding: body, as: UTF8.self))
    }
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>?, _ size: Int) -> Int32 {
    test(FuzzInput(data, size).bytes)
    return 0
}

@main enum Main { static func main() { fuzzMain(fuzz) } }
