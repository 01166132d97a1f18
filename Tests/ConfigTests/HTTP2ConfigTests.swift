import Testing
@testable import Config

@Suite struct HTTP2ConfigTests {
    @Test func defaults() throws {
        let h2 = try parse("").http2
        #expect(h2 == HTTP2Limits())
        #expect(h2.enabled && h2.maxConcurrentStreams == 128 && h2.initialWindowSize == 256 * 1024)
        #expect(h2.connectionWindowSize == 1 << 20 && h2.rapidResetLimit == 100 && h2.controlFramesPerSecond == 100)
    }

    @Test func everyKey() throws {
        let h2 = try parse("""
            http2:
              enabled: false
              max_concurrent_streams: 32
              initial_window_size: 64k
              connection_window_size: 4m
              rapid_reset_limit: 20
              control_frames_per_second: 10
            """).http2
        var expected = HTTP2Limits()
        expected.enabled = false
        expected.maxConcurrentStreams = 32
        expected.initialWindowSize = 64 * 1024
        expected.connectionWindowSize = 4 << 20
        expected.rapidResetLimit = 20
        expected.controlFramesPerSecond = 10
        #expect(h2 == expected)
    }

    @Test func windowPastTheProtocolMaximum() throws {
        do {
            _ = try parse("http2:\n  initial_window_size: 4g\n")
            Issue.record("4g parsed")
        } catch {
            #expect(error.line == 2)
            #expect(error.message.contains("at most 2147483647"))
        }
    }

    @Test func unknownKey() throws {
        do {
            _ = try parse("http2:\n  max_streams: 5\n")
            Issue.record("unknown key parsed")
        } catch {
            #expect(error.line == 2)
            #expect(error.message.contains("max_streams"))
        }
    }
}
