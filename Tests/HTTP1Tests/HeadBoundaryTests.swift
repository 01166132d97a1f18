import XCTest
@testable import HTTP1

/// The head scanner must resume where it stopped, not rescan a partial head from byte 0 on every read.
final class HeadBoundaryTests: XCTestCase {
    private func scan(_ boundary: inout HeadBoundary, _ s: String, limit: Int = 1000) throws -> HeadBoundary.Outcome {
        try s.bytes.withUnsafeBytes { try boundary.scan($0, limit: limit) }
    }

    func testResumesWhereItStopped() throws {
        var boundary = HeadBoundary()
        XCTAssertEqual(try scan(&boundary, "GET / HTTP/1.1\r\nHo"), .incomplete)
        XCTAssertEqual(boundary.scanned, 18)
        // A CR at the end is judged only once its next byte is there.
        XCTAssertEqual(try scan(&boundary, "GET / HTTP/1.1\r\nHost: a\r"), .incomplete)
        XCTAssertEqual(boundary.scanned, 23)
        XCTAssertEqual(try scan(&boundary, "GET / HTTP/1.1\r\nHost: a\r\n\r\nBODY"), .complete(end: 27, firstLineEnd: 14))
        XCTAssertTrue(boundary.isEmpty)
    }

    func testEmptySection() throws {
        var boundary = HeadBoundary()
        XCTAssertEqual(try scan(&boundary, "\r\nrest"), .complete(end: 2, firstLineEnd: 0))
    }

    func testLimit() throws {
        var boundary = HeadBoundary()
        XCTAssertEqual(try scan(&boundary, "GET /aaaaaaaa", limit: 8), .tooLarge(firstLineComplete: false))
        boundary = HeadBoundary()
        XCTAssertEqual(try scan(&boundary, "GET /\r\nA: b\r\n", limit: 10), .tooLarge(firstLineComplete: true))
    }
}
