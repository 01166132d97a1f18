/// A field section kept in wire form: every field is one line "name: value\r\n" in a single byte
/// buffer, exactly as it is written out again. A parsed head's fields are copied once from the
/// received bytes, with no String per field and one allocation for the whole section; a forwarder
/// drops or adds lines in place and writes the buffer with one copy.
///
/// Lines are well formed by construction: names are tokens (no ':', but for the first byte of an
/// HTTP/2 pseudo-header), values hold no CR or LF (the parsers and nghttp2 prove it; `append` checks
/// it in debug builds), so a line's parts are found by scanning.
public struct HTTPFields: Sendable, Equatable, ExpressibleByArrayLiteral {
    public private(set) var bytes: [UInt8] = []
    public private(set) var count = 0

    public init() {}

    public init(_ fields: [HTTPField]) {
        for field in fields { append(field) }
    }

    public init(arrayLiteral fields: HTTPField...) { self.init(fields) }

    public var isEmpty: Bool { count == 0 }

    /// Bytes the section holds without growing.
    public var capacity: Int { bytes.capacity }

    /// Empties the section; `keepingCapacity`: its buffer is kept (if no one else holds it) for new lines.
    public mutating func removeAll(keepingCapacity: Bool) {
        bytes.removeAll(keepingCapacity: keepingCapacity)
        count = 0
    }

    /// Room for `byteCount` more bytes of lines, so that a head and the few fields a forwarder adds
    /// share one allocation.
    public mutating func reserveCapacity(bytes byteCount: Int) { bytes.reserveCapacity(bytes.count + byteCount) }

    public mutating func append(_ field: HTTPField) { append(name: field.name, value: field.value) }

    /// Appends a field from text the parsers did not check (configuration, certificates): a CR, LF
    /// or NUL in the value becomes a space, so no value can end its line early (header injection).
    public mutating func append(name: String, value: String) {
        assert(!name.isEmpty && !name.utf8.dropFirst().contains(ASCII.colon) && !name.utf8.contains(where: { $0 <= ASCII.sp }), "not a field name")
        let appended = name.withBytes { n in
            value.withBytes { v in
                guard !Self.breaksLine(v) else { return false }
                append(name: n, value: v)
                return true
            }
        }
        if !appended { Self.singleLine(value).withBytes { v in name.withBytes { n in append(name: n, value: v) } } }
    }

    static func singleLine(_ value: String) -> String {
        guard value.withBytes(breaksLine) else { return value }
        return String(decoding: value.utf8.map { $0 == ASCII.cr || $0 == ASCII.lf || $0 == 0 ? ASCII.sp : $0 }, as: UTF8.self)
    }

    /// Whether a value holds a byte that would end its line early (CR, LF) or cut it (NUL).
    private static func breaksLine(_ value: UnsafeRawBufferPointer) -> Bool {
        for byte in value where byte == ASCII.cr || byte == ASCII.lf || byte == 0 { return true }
        return false
    }

    /// Appends a line from bytes the caller has validated (a token name; a value without CR or LF).
    /// The line is put together on the stack and appended in one piece: six appends cost six
    /// uniqueness and capacity checks, and this runs for every field of every head.
    public mutating func append(name: UnsafeRawBufferPointer, value: UnsafeRawBufferPointer) {
        let length = name.count + value.count + 4
        guard length <= 512 else {
            bytes.append(contentsOf: name)
            bytes.append(ASCII.colon)
            bytes.append(ASCII.sp)
            bytes.append(contentsOf: value)
            bytes.append(ASCII.cr)
            bytes.append(ASCII.lf)
            count += 1
            return
        }
        withUnsafeTemporaryAllocation(byteCount: length, alignment: 1) { line in
            let start = line.baseAddress!
            if let n = name.baseAddress { start.copyMemory(from: n, byteCount: name.count) }
            line[name.count] = ASCII.colon
            line[name.count + 1] = ASCII.sp
            if let v = value.baseAddress { (start + name.count + 2).copyMemory(from: v, byteCount: value.count) }
            line[length - 2] = ASCII.cr
            line[length - 1] = ASCII.lf
            bytes.append(contentsOf: UnsafeRawBufferPointer(line))
        }
        count += 1
    }

    /// Where one line's parts are in `bytes`.
    public struct Line: Sendable {
        public var start: Int
        public var nameEnd: Int
        /// Just past the value: the line's CR.
        public var end: Int
        public var name: Range<Int> { start..<nameEnd }
        public var value: Range<Int> { nameEnd + 2..<end }
        /// The whole line with its CRLF.
        public var range: Range<Int> { start..<end + 2 }
    }

    /// Calls `body` with each line and the buffer, in order.
    @inline(__always)
    public func forEachLine(_ body: (Line, UnsafeRawBufferPointer) throws -> Void) rethrows {
        try bytes.withUnsafeBytes { buf in
            var i = 0
            while i < buf.count {
                let line = Self.line(in: buf, at: i)
                try body(line, buf)
                i = line.end + 2
            }
        }
    }

    /// The line that begins at `start` of a section's bytes (for loops that cannot take a closure).
    @inline(__always)
    public static func line(in buf: UnsafeRawBufferPointer, at start: Int) -> Line {
        // Names are never empty; an HTTP/2 pseudo-header's name begins with the only ':' it holds.
        // The scans stop at the end too: a broken line must not make anyone read past the buffer.
        let colon = ASCII.firstIndex(of: ASCII.colon, in: buf, from: Swift.min(start + 1, buf.count))
        let cr = ASCII.firstIndex(of: ASCII.cr, in: buf, from: Swift.min(colon + 2, buf.count))
        return Line(start: start, nameEnd: colon, end: cr)
    }

    /// The first line whose name is `name` (case-insensitive, RFC 9110 §5.1).
    public func firstLine(named name: String) -> Line? {
        var found: Line?
        name.withBytes { wanted in
            bytes.withUnsafeBytes { buf in
                var i = 0
                while i < buf.count {
                    let line = Self.line(in: buf, at: i)
                    if line.nameEnd - line.start == wanted.count,
                       Self.equalsIgnoringCase(buf.slice(line.name), wanted) {
                        found = line
                        return
                    }
                    i = line.end + 2
                }
            }
        }
        return found
    }

    public func contains(named name: String) -> Bool { firstLine(named: name) != nil }

    /// The value of the first field called `name`, if any.
    public func firstValue(named name: String) -> String? {
        firstLine(named: name).map { string($0.value) }
    }

    public func string(_ range: Range<Int>) -> String {
        bytes.withUnsafeBytes { String(decoding: $0.slice(range), as: UTF8.self) }
    }

    /// Replaces the value of `line` (from `firstLine` or `forEachLine`, with no change in between).
    public mutating func replaceValue(of line: Line, with value: String) {
        bytes.replaceSubrange(line.value, with: Self.singleLine(value).utf8)
    }

    /// Removes every line for which `shouldRemove(name, value)` is true, moving the kept lines down
    /// in place. A section with nothing to remove is not written to (so not copied when shared).
    public mutating func removeAll(where shouldRemove: (UnsafeRawBufferPointer, UnsafeRawBufferPointer) throws -> Bool) rethrows {
        var first: Int?
        try forEachLine { line, buf in
            if first == nil, try shouldRemove(buf.slice(line.name), buf.slice(line.value)) { first = line.start }
        }
        guard let first else { return }
        var removed = 0
        let kept = try bytes.withUnsafeMutableBytes { buf -> Int in
            let view = UnsafeRawBufferPointer(buf)
            var read = first, write = first
            while read < view.count {
                let line = Self.line(in: view, at: read)
                let length = line.end + 2 - read
                if try shouldRemove(view.slice(line.name), view.slice(line.value)) {
                    removed += 1
                } else {
                    if write != read { buf.baseAddress!.advanced(by: write).copyMemory(from: view.baseAddress! + read, byteCount: length) }
                    write += length
                }
                read += length
            }
            return write
        }
        bytes.removeSubrange(kept...)
        count -= removed
    }

    /// A new section with the lines `isIncluded(name, value)` keeps, and `room` bytes to spare.
    public func filter(room: Int, _ isIncluded: (UnsafeRawBufferPointer, UnsafeRawBufferPointer) throws -> Bool) rethrows -> HTTPFields {
        var kept = HTTPFields()
        kept.bytes.reserveCapacity(bytes.count + room)
        try forEachLine { line, buf in
            guard try isIncluded(buf.slice(line.name), buf.slice(line.value)) else { return }
            kept.bytes.append(contentsOf: buf.slice(line.range))
            kept.count += 1
        }
        return kept
    }

    public mutating func removeAll(named name: String) {
        removeAll { n, _ in Self.nameEquals(n, name) }
    }

    /// Whether a name in a section is `name` (case-insensitive, RFC 9110 §5.1).
    public static func nameEquals(_ bytes: UnsafeRawBufferPointer, _ name: String) -> Bool {
        guard bytes.count == name.utf8.count else { return false }
        return name.withBytes { equalsIgnoringCase(bytes, $0) }
    }

    /// ASCII case-insensitive equality of two names of the same length.
    @inline(__always)
    public static func equalsIgnoringCase(_ a: UnsafeRawBufferPointer, _ b: UnsafeRawBufferPointer) -> Bool {
        guard a.count == b.count else { return false }
        for i in 0..<a.count where a[i] != b[i] && ASCII.lower(a[i]) != ASCII.lower(b[i]) { return false }
        return true
    }
}

extension HTTPFields: Sequence {
    /// Fields as Strings, for code off the forwarding path (clients, tests).
    public struct Iterator: IteratorProtocol {
        let fields: HTTPFields
        var position = 0

        public mutating func next() -> HTTPField? {
            guard position < fields.bytes.count else { return nil }
            let line = fields.bytes.withUnsafeBytes { HTTPFields.line(in: $0, at: position) }
            position = line.end + 2
            return HTTPField(name: fields.string(line.name), value: fields.string(line.value))
        }
    }

    public func makeIterator() -> Iterator { Iterator(fields: self) }

    public var underestimatedCount: Int { count }
}

extension HTTPFields: CustomStringConvertible {
    public var description: String { Array(self).description }
}
