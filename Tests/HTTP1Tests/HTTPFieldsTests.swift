import Testing
@testable import HTTP1

/// The wire-form field section: what the parsers fill and the forwarders change in place.
@Suite struct HTTPFieldsTests {
    let sample: HTTPFields = [HTTPField(name: "Host", value: "a.example"), HTTPField(name: "X-Empty", value: ""),
                              HTTPField(name: "Accept", value: "*/*"), HTTPField(name: "accept", value: "text/html")]

    @Test func linesAreTheWireFormAndReadBackAsFields() {
        #expect(String(decoding: sample.bytes, as: UTF8.self) == "Host: a.example\r\nX-Empty: \r\nAccept: */*\r\naccept: text/html\r\n")
        #expect(sample.count == 4)
        #expect(Array(sample).map(\.name) == ["Host", "X-Empty", "Accept", "accept"])
        #expect(Array(sample).map(\.value) == ["a.example", "", "*/*", "text/html"])
        #expect(HTTPFields().isEmpty && Array(HTTPFields()).isEmpty)
    }

    /// Lines short enough to be put together on the stack, and longer ones, read back the same.
    @Test func linesOfEveryLengthReadBack() {
        for valueLength in [0, 1, 501, 502, 503, 600, 5000] {
            let value = String(repeating: "v", count: valueLength)
            let fields: HTTPFields = [HTTPField(name: "X-Long", value: value), HTTPField(name: "B", value: "2")]
            #expect(String(decoding: fields.bytes, as: UTF8.self) == "X-Long: \(value)\r\nB: 2\r\n")
            #expect(Array(fields) == [HTTPField(name: "X-Long", value: value), HTTPField(name: "B", value: "2")])
        }
    }

    @Test func lookupIgnoresCaseAndFindsTheFirst() {
        #expect(sample.firstValue(named: "ACCEPT") == "*/*")
        #expect(sample.firstValue(named: "x-empty") == "")
        #expect(sample.firstValue(named: "accep") == nil)
        #expect(sample.contains(named: "host") && !sample.contains(named: "hos"))
    }

    @Test func removalKeepsTheOrderOfWhatStays() {
        var fields = sample
        fields.removeAll(named: "accept")
        #expect(fields == [HTTPField(name: "Host", value: "a.example"), HTTPField(name: "X-Empty", value: "")])
        #expect(fields.count == 2)
        var first = sample
        first.removeAll { name, _ in name.count == 4 }
        #expect(Array(first).map(\.name) == ["X-Empty", "Accept", "accept"])
        var none = sample
        none.removeAll(named: "cookie")
        #expect(none == sample)
        var all = sample
        all.removeAll { _, _ in true }
        #expect(all.isEmpty && all.bytes.isEmpty)
    }

    @Test func valuesAreReplacedAndFieldsAppended() {
        var fields = sample
        fields.replaceValue(of: fields.firstLine(named: "x-empty")!, with: "now set")
        fields.append(name: "Via", value: "1.1 edge")
        #expect(fields.firstValue(named: "x-empty") == "now set")
        #expect(Array(fields).last == HTTPField(name: "Via", value: "1.1 edge"))
        #expect(fields.count == 5)
        #expect(fields.firstValue(named: "accept") == "*/*")
    }

    @Test func parsedHeadsCarryTheirFieldsAsSent() throws {
        var parser = RequestParser()
        let input = Array("GET / HTTP/1.1\r\nHost: a\r\nX-Utf8:  caf\u{e9} \r\nX-Tab:\tv\t\r\n\r\n".utf8)
        let (_, event) = try input.withUnsafeBytes { try parser.parse($0) }
        guard case .head(let head) = event else { Issue.record("no head"); return }
        #expect(head.fields == [HTTPField(name: "Host", value: "a"), HTTPField(name: "X-Utf8", value: "caf\u{e9}"),
                                HTTPField(name: "X-Tab", value: "v")])
        #expect(String(decoding: head.fields.bytes, as: UTF8.self) == "Host: a\r\nX-Utf8: caf\u{e9}\r\nX-Tab: v\r\n")
    }
}

extension HTTPFieldsTests {
    @Test func pseudoHeaderNamesKeepTheirColon() {
        let fields: HTTPFields = [HTTPField(name: ":method", value: "GET"), HTTPField(name: ":path", value: "/a:b")]
        #expect(Array(fields) == [HTTPField(name: ":method", value: "GET"), HTTPField(name: ":path", value: "/a:b")])
        #expect(fields.firstValue(named: ":path") == "/a:b")
    }
}

extension HTTPFieldsTests {
    @Test func connectionOptionsKeepTheCommonOnesAsFlagsAndOthersByName() throws {
        var parser = ResponseParser()
        let input = Array("HTTP/1.1 200 OK\r\nConnection: Keep-Alive, X-Private\r\nConnection: close,upgrade\r\nContent-Length: 0\r\n\r\n".utf8)
        let (_, event) = try input.withUnsafeBytes { try parser.parse($0) }
        guard case .head(let head) = event else { Issue.record("no head"); return }
        #expect(head.connection == ConnectionOptions(close: true, keepAlive: true, upgrade: true, others: ["x-private"]))
        #expect(!head.keepAlive)
        for (name, named) in [("x-PRIVATE", true), ("Close", true), ("x-privat", false), ("host", false)] {
            #expect(name.utf8.withContiguousStorageIfAvailable { head.connection.names(UnsafeRawBufferPointer($0)) } == named, "\(name)")
        }
    }
}

extension HTTPFieldsTests {
    @Test func valuesFromOutsideTheParsersCannotEndTheirLine() {
        var fields = HTTPFields()
        fields.append(name: "X-Client-Subject", value: "CN=a\r\nX-Injected: 1\0")
        #expect(fields.count == 1)
        #expect(Array(fields) == [HTTPField(name: "X-Client-Subject", value: "CN=a  X-Injected: 1 ")])
        fields.replaceValue(of: fields.firstLine(named: "x-client-subject")!, with: "b\nc")
        #expect(fields.firstValue(named: "X-Client-Subject") == "b c")
    }
}
