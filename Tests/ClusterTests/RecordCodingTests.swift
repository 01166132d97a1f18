@testable import Cluster
import Foundation
import Testing

@Suite struct RecordCodingTests {
    struct Stamped: Codable, Equatable { var at: Date }

    static func read(_ text: String) -> Date? {
        try? RecordCoding.decoder().decode(Stamped.self, from: Data(#"{"at":"\#(text)"}"#.utf8)).at
    }

    @Test func readsRFC3339TimesWithOrWithoutFractionsAndOffsets() throws {
        #expect(Self.read("2026-12-06T05:40:09.317Z")?.timeIntervalSince1970 == 1_796_535_609.317)
        #expect(Self.read("2026-12-06T05:40:09Z")?.timeIntervalSince1970 == 1_796_535_609)
        #expect(Self.read("2026-12-06T07:40:09+02:00")?.timeIntervalSince1970 == 1_796_535_609)
        #expect(Self.read("2026-12-06T05:40:09.123456789Z") != nil)
    }

    /// The formatters alone read these too, and some as other times: a year of 57 digits wrapped
    /// around to year -2997078 (found by Tests/Fuzz/Etcd), a signed year read as another.
    @Test func refusesWhatIsNotAnRFC3339TimeInYears1To9999() {
        for text in ["202444444444444444444444444444444444444444444444444444447-02-05T00:00:00.000Z", "20244-01-01T00:00:00Z",
                     "-2024-01-01T00:00:00Z", "0000-01-01T00:00:00Z", "0001-01-01T00:30:00+01:00", "9999-12-31T23:30:00-01:00",
                     "2024-1-1T0:0:0Z", " 2024-01-01T00:00:00Z", "2024-01-01T00:00:00", "2024-01-01T00:00:00.Z",
                     "2024-01-01T00:00:00.1234567890Z", "2024-01-01T00:00:00+0100", "2024-01-01 00:00:00Z", "2024-01-01T00:00:00Z "] {
            #expect(Self.read(text) == nil, "\(text)")
        }
    }

    @Test func theFirstAndLastTimesWriteBackAsTheyRead() throws {
        for text in ["0001-01-01T00:00:00.000Z", "9999-12-31T23:59:59.999Z", "2026-12-06T05:40:09.317Z"] {
            let date = try #require(Self.read(text))
            let json = try RecordCoding.encoder().encode(Stamped(at: date))
            #expect(String(decoding: json, as: UTF8.self) == #"{"at":"\#(text)"}"#)
        }
    }
}
