/// What one HTTP/2 session advertises and enforces. The defaults match `conf/edgeproxy.yaml`.
public struct HTTP2Settings: Sendable, Equatable {
    /// SETTINGS_MAX_CONCURRENT_STREAMS (RFC 9113 §6.5.2); nghttp2 refuses streams past it.
    public var maxConcurrentStreams = 128
    /// SETTINGS_INITIAL_WINDOW_SIZE: request body bytes one stream may send before we consume them.
    public var initialWindowSize = 256 * 1024
    /// Connection-level receive window (WINDOW_UPDATE on stream 0 right after the preface).
    public var connectionWindowSize = 1024 * 1024
    /// SETTINGS_MAX_HEADER_LIST_SIZE, counted as RFC 9113 §6.5.2 does (name + value + 32 per field).
    public var maxHeaderListSize = 16 * 1024
    /// Fields per header block; past it (or past the size) the stream is marked oversized (431).
    public var maxHeaders = 100
    /// CVE-2023-44487: once the client has reset this many streams, and more than it let complete,
    /// the connection is closed with ENHANCE_YOUR_CALM.
    public var rapidResetThreshold = 100
    /// PING / SETTINGS / PRIORITY / empty DATA frames: a burst of this many, refilled at
    /// `controlFramesPerSecond`; an empty bucket closes the connection (CVE-2019-9512/9515/9518).
    public var controlFrameBurst = 200
    public var controlFramesPerSecond = 100
    /// CONTINUATION frames after one HEADERS frame (CVE-2024-27316 family); nghttp2 enforces it.
    public var maxContinuations = 8
    /// Bytes per stream kept for the client before the producer is told to pause (see `drainMark`).
    public var streamHighWater = 64 * 1024

    public init() {}
}

/// HTTP/2 error codes we send (RFC 9113 §7).
public enum HTTP2Error: UInt32, Sendable {
    case noError = 0x0
    case protocolError = 0x1
    case internalError = 0x2
    case refusedStream = 0x7
    case cancel = 0x8
    case enhanceYourCalm = 0xb
}
