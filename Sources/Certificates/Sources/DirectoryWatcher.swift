import CSystem
import Dispatch
import Foundation
import Glibc

/// Watches the certificate directory with inotify and reports the base names of certificates
/// whose files were written, moved in or out, or deleted, debounced. Everything runs on `queue`.
public final class DirectoryWatcher: @unchecked Sendable {  // state is touched on `queue` only
    public let directory: String
    private let queue: DispatchQueue
    private let onChange: (_ bases: Set<String>?) -> Void
    private var fd: Int32 = -1
    private var source: DispatchSourceRead?
    private var debouncer = Debouncer()
    private var timerArmed = false

    /// `onChange(nil)` means "rescan everything" (the kernel's event queue overflowed).
    public init(directory: String, queue: DispatchQueue, onChange: @escaping (_ bases: Set<String>?) -> Void) {
        self.directory = directory; self.queue = queue; self.onChange = onChange
    }

    /// Starts watching; throws a message saying what to fix when inotify cannot watch the directory.
    public func start() throws(WatchError) {
        fd = inotify_init1(Int32(IN_NONBLOCK | IN_CLOEXEC))
        guard fd >= 0 else { throw WatchError("inotify_init1: \(String(cString: strerror(errno))) (raise fs.inotify.max_user_instances)") }
        // Writes complete at close; renames (atomic replace) arrive as MOVED_TO.
        let mask = UInt32(IN_CLOSE_WRITE | IN_MOVED_TO | IN_MOVED_FROM | IN_DELETE | IN_DELETE_SELF | IN_MOVE_SELF)
        guard inotify_add_watch(fd, directory, mask) >= 0 else {
            let reason = String(cString: strerror(errno))
            close(fd); fd = -1
            throw WatchError("cannot watch \(directory): \(reason) (check that it exists, or set tls.watch: false)")
        }
        let source = DispatchSource.makeReadSource(fileDescriptor: fd, queue: queue)
        source.setEventHandler { [weak self] in self?.drain() }
        source.setCancelHandler { [fd] in close(fd) }
        source.resume()
        self.source = source
    }

    public func stop() {
        source?.cancel()
        source = nil
    }

    private func drain() {
        var buffer = [UInt8](repeating: 0, count: 64 * 1024)
        var overflow = false
        while true {
            let n = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            if n <= 0 { break }
            var offset = 0
            buffer.withUnsafeBytes { raw in
                while offset + MemoryLayout<inotify_event>.size <= n {
                    let mask = raw.loadUnaligned(fromByteOffset: offset + 4, as: UInt32.self)
                    let len = Int(raw.loadUnaligned(fromByteOffset: offset + 12, as: UInt32.self))
                    let nameStart = offset + MemoryLayout<inotify_event>.size
                    if mask & UInt32(IN_Q_OVERFLOW) != 0 { overflow = true }
                    if len > 0 {
                        let bytes = UnsafeRawBufferPointer(rebasing: raw[nameStart..<(nameStart + len)])
                        let name = String(decoding: bytes.prefix { $0 != 0 }, as: UTF8.self)
                        if let base = CertificateFileSet.baseName(ofEvent: name) {
                            _ = debouncer.event(base, at: Self.now())
                        }
                    }
                    offset = nameStart + len
                }
            }
        }
        if overflow { onChange(nil) }
        arm()
    }

    private func arm() {
        guard !timerArmed, let due = debouncer.deadline else { return }
        timerArmed = true
        queue.asyncAfter(deadline: .now() + max(0, due - Self.now())) { [weak self] in
            guard let self else { return }
            self.timerArmed = false
            if let batch = self.debouncer.fire(at: Self.now()) { self.onChange(batch) }
            self.arm()
        }
    }

    static func now() -> Double {
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        return Double(ts.tv_sec) + Double(ts.tv_nsec) / 1e9
    }
}

public struct WatchError: Error, CustomStringConvertible {
    public let description: String
    public init(_ description: String) { self.description = description }
}
