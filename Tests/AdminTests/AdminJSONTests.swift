import Foundation
import Testing
@testable import Admin

@Suite struct AdminJSONTests {
    @Test func absentValuesAreWrittenAsNull() {
        let text = String(decoding: AdminJSON.encode(RenewingAnswer(renewing: "a.test", serial: nil)), as: UTF8.self)
        #expect(text == "{\"renewing\":\"a.test\",\"serial\":null}\n")
        // Optional fields that are absent when unset stay absent (the reload answer's `error`).
        let deleted = String(decoding: AdminJSON.encode(DeletedAnswer(deleted: "a.test")), as: UTF8.self)
        #expect(deleted == "{\"deleted\":\"a.test\"}\n")
    }

    @Test func errorsAreEscapedJSON() throws {
        let r = AdminResponse.error(422, "bad \"name\"\n")
        let decoded = try JSONSerialization.jsonObject(with: Data(r.body)) as? [String: String]
        #expect(decoded == ["error": "bad \"name\"\n"] && r.contentType == "application/json")
    }

    @Test func keysAreSnakeCaseAndDatesISO8601() {
        let window = ACMEReport.Window(start: Date(timeIntervalSince1970: 0), end: Date(timeIntervalSince1970: 86400))
        let pending = ACMEReport.Pending(http01: 1, tlsALPN01: 2)
        #expect(String(decoding: AdminJSON.encode(window), as: UTF8.self) == "{\"end\":\"1970-01-02T00:00:00Z\",\"start\":\"1970-01-01T00:00:00Z\"}\n")
        #expect(String(decoding: AdminJSON.encode(pending), as: UTF8.self) == "{\"http-01\":1,\"tls-alpn-01\":2}\n")
    }
}
