import Yams

extension SettingsReader {
    func http2(_ node: Node?) throws(ConfigError) -> HTTP2Limits {
        let map = try mapping(node, name: "http2", keys: ["enabled", "max_concurrent_streams", "initial_window_size",
                                                          "connection_window_size", "rapid_reset_limit",
                                                          "control_frames_per_second"])
        var h2 = HTTP2Limits()
        if let value = map["enabled"] { h2.enabled = try source.bool(value) }
        if let value = map["max_concurrent_streams"] { h2.maxConcurrentStreams = try source.int(value, in: 1...100_000) }
        // RFC 9113 §6.5.2: windows are at most 2^31-1; below 1k uploads crawl for nothing.
        if let value = map["initial_window_size"] {
            h2.initialWindowSize = Int(try source.size(value, minimum: 1024))
            if h2.initialWindowSize > Int(Int32.max) { throw source.error("http2.initial_window_size is at most 2147483647 bytes", at: value) }
        }
        if let value = map["connection_window_size"] {
            h2.connectionWindowSize = Int(try source.size(value, minimum: 65_535))
            if h2.connectionWindowSize > Int(Int32.max) { throw source.error("http2.connection_window_size is at most 2147483647 bytes", at: value) }
        }
        if let value = map["rapid_reset_limit"] { h2.rapidResetLimit = try source.int(value, in: 1...Int(Int32.max)) }
        if let value = map["control_frames_per_second"] { h2.controlFramesPerSecond = try source.int(value, in: 1...Int(Int32.max)) }
        return h2
    }
}
