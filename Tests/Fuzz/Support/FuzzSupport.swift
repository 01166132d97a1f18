#if canImport(Glibc)
import Glibc
#endif

/// Reads a fuzzer's input front to back: a few parameter bytes first (split points, limits, modes),
/// the payload after them. Missing parameter bytes read as 0, so every input is usable.
public struct FuzzInput {
    public let bytes: [UInt8]
    private var position = 0

    public init(_ data: UnsafePointer<UInt8>?, _ size: Int) {
        bytes = data.map { Array(UnsafeBufferPointer(start: $0, count: size)) } ?? []
    }

    public init(_ bytes: [UInt8]) { self.bytes = bytes }

    public mutating func byte() -> UInt8 {
        guard position < bytes.count else { return 0 }
        defer { position += 1 }
        return bytes[position]
    }

    /// What is left after the parameters.
    public var rest: ArraySlice<UInt8> { bytes[Swift.min(position, bytes.count)...] }
}

/// An invariant of the code under test. A failure traps, which libFuzzer records as a crash with
/// its input; the message says which invariant broke.
@inline(__always)
public func require(_ condition: @autoclosure () -> Bool, _ message: @autoclosure () -> String,
                    file: StaticString = #fileID, line: UInt = #line) {
    if !condition() { fatalError("invariant broken: \(message())", file: file, line: line) }
}

/// `bytes` cut at up to two points chosen by the fuzzer (each a fraction of the length in 1/256ths),
/// so a reader sees the same stream whole and in pieces.
public func split(_ bytes: ArraySlice<UInt8>, at a: UInt8, _ b: UInt8) -> [ArraySlice<UInt8>] {
    let cuts = [a, b].map { bytes.startIndex + bytes.count * Int($0) / 256 }.sorted()
    return [bytes[bytes.startIndex..<cuts[0]], bytes[cuts[0]..<cuts[1]], bytes[cuts[1]...]]
}

/// A fuzz target's entry point, called with its `LLVMFuzzerTestOneInput`. SwiftPM renames an
/// executable's `main` (so tests can link it), which hides libFuzzer's own; so the sanitizer build
/// (`-DFUZZING`) starts libFuzzer through its driver API instead. Built without libFuzzer (the normal
/// `swift build`), the target runs `entry` over each file named, or each file in each directory
/// named: a crash the fuzzer found reproduces in a debugger without the sanitizer build.
public func fuzzMain(_ entry: @convention(c) (UnsafePointer<UInt8>?, Int) -> Int32) -> Never {
#if FUZZING
    var argc = CommandLine.argc
    var argv = CommandLine.unsafeArgv
    exit(LLVMFuzzerRunDriver(&argc, &argv, entry))
#else
    let paths = CommandLine.arguments.dropFirst()
    guard !paths.isEmpty else {
        complain("usage: \(CommandLine.arguments[0]) FILE|DIR...")
        exit(2)
    }
    var count = 0
    for path in paths {
        for file in filesIn(path) {
            guard let data = readFile(file) else {
                complain("cannot read \(file)")
                exit(1)
            }
            _ = data.withUnsafeBufferPointer { entry($0.baseAddress, $0.count) }
            count += 1
        }
    }
    print("ran \(count) inputs")
    exit(0)
#endif
}

#if FUZZING
@_silgen_name("LLVMFuzzerRunDriver")
private func LLVMFuzzerRunDriver(
    _ argc: UnsafeMutablePointer<Int32>,
    _ argv: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>>,
    _ entry: @convention(c) (UnsafePointer<UInt8>?, Int) -> Int32) -> Int32
#endif

private func complain(_ message: String) {
    let line = Array((message + "\n").utf8)
    _ = line.withUnsafeBytes { write(2, $0.baseAddress, $0.count) }
}

private func filesIn(_ path: String) -> [String] {
    guard let dir = opendir(path) else { return [path] }
    defer { closedir(dir) }
    var names: [String] = []
    while let entry = readdir(dir) {
        let name = withUnsafeBytes(of: entry.pointee.d_name) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
        if !name.hasPrefix(".") { names.append(path + "/" + name) }
    }
    return names.sorted()
}

private func readFile(_ path: String) -> [UInt8]? {
    guard let f = fopen(path, "rb") else { return nil }
    defer { fclose(f) }
    var data: [UInt8] = []
    var chunk = [UInt8](repeating: 0, count: 65536)
    while true {
        let n = fread(&chunk, 1, chunk.count, f)
        if n > 0 { data += chunk[0..<n] }
        if n < chunk.count { return ferror(f) == 0 ? data : nil }
    }
}
