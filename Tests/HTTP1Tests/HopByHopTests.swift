
import Testing
@testable import HTTP1

/// Hop-by-hop fields (RFC 9110 §7.6.1) never reach the next hop, whatever their case.
@Suite struct HopByHopTests {
    @Test func everyListedNameIsHopByHopInAnyCase() {
        for name in HopByHop.names {
            #expect(HopByHop.isHopByHop(name))
            #expect(HopByHop.isHopByHop(name.uppercased()))
            #expect(HopByHop.isHopByHop(String(name.prefix(1)).uppercased() + name.dropFirst()))
        }
    }

    /// The response parser takes a recognised field's answer from its kind: it must be the list's.
    @Test func fieldKindsAgreeWithTheList() {
        for name in HopByHop.names + ["host", "expect", "Upgrade", "CONNECTION", "content-type", "x-other"] {
            let kind = name.withBytes { FieldKind($0) }
            if kind != .other { #expect(kind.isHopByHop == HopByHop.isHopByHop(name), "\(name)") }
        }
    }

    @Test func endToEndFieldsAndNearMissesAreKept() {
        for name in ["host", "content-type", "upgrade-insecure-requests", "tes", "t", "connections", "keep-alive2",
                     "content-lengt", "x-transfer-encoding", "proxy-authorizatio", "trailers", ""] {
            #expect(!HopByHop.isHopByHop(name), "\(name)")
        }
    }

    @Test func endToEndDropsHopByHopAndConnectionNamedFields() {
        let fields: HTTPFields = [HTTPField(name: "Host", value: "a"), HTTPField(name: "Connection", value: "close, x-private"),
                      HTTPField(name: "X-Private", value: "1"), HTTPField(name: "TE", value: "trailers"),
                      HTTPField(name: "Content-Length", value: "3"), HTTPField(name: "Accept", value: "*/*")]
        let connection = ConnectionOptions(close: true, others: ["x-private"])
        let kept = HopByHop.endToEnd(fields, connection: connection, room: 64)
        #expect(kept.map(\.name) == ["Host", "Accept"])
        #expect(HopByHop.endToEnd(fields, connection: ConnectionOptions()).map(\.name) == ["Host", "X-Private", "Accept"])
    }

    @Test func fieldsTheConnectionOptionsNameAreDropped() {
        let fields: HTTPFields = [HTTPField(name: "Close", value: "x"), HTTPField(name: "Keep-Alive", value: "timeout=5"),
                                  HTTPField(name: "Accept", value: "*/*")]
        #expect(HopByHop.endToEnd(fields, connection: ConnectionOptions(close: true)).map(\.name) == ["Accept"])
        #expect(HopByHop.endToEnd(fields, connection: ConnectionOptions()).map(\.name) == ["Close", "Accept"])
    }
}
