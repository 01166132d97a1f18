import Certificates
import CSystem
import EventLoop
import Foundation
import Glibc
import Logs
import Metrics

extension Control {
    /// After start-up, OpenSSL builds every certificate that serves from its start-up index, with
    /// the checks every update gets (`CertificateLoader.bundle`), on one thread at low priority so
    /// that handshakes come first. A handshake that needs one first builds it itself (once).
    /// A certificate OpenSSL refuses leaves the store and its error is logged with its file; one
    /// whose names OpenSSL reads otherwise than the index is replaced by OpenSSL's version.
    func startWarmUp() {
        // Those a handshake built already too: their outcome is reported here all the same.
        let pending = transaction.read { catalog in
            catalog.items.compactMap { id, item in item.bundle.isDeferred ? (id: id, item: item) : nil }
        }
        guard !pending.isEmpty else { return }
        Log.info("serving \(pending.count) certificate(s) from their start-up index; OpenSSL now builds and checks them in the background")
        let handOver = WarmUpList(pending.reversed())
        let thread = Thread { [self] in warmUp(handOver) }
        thread.name = "edgeproxy.warmup"
        thread.start()
    }

    private func warmUp(_ handOver: WarmUpList) {
        setpriority(__priority_which_t(PRIO_PROCESS.rawValue), 0, 10)  // on Linux: this thread only
        let start = Date()
        var refused = 0
        var pending = handOver.take()
        let count = pending.count
        // Taken off the list one by one, so a bundle replaced meanwhile is freed once built.
        while let (id, item) = pending.popLast() {
            switch item.bundle.build() {
            case .success(let built)? where built.names != item.bundle.names || built.keyType != item.bundle.keyType:
                queue.async { [self] in replaceAfterWarmUp(id, item, with: built) }
            case .failure(let error)?:
                refused += 1
                queue.async { [self] in removeAfterWarmUp(id, item, error) }
            default:
                break
            }
        }
        var cpu = timespec()
        clock_gettime(CLOCK_THREAD_CPUTIME_ID, &cpu)
        let seconds = Date().timeIntervalSince(start), cpuSeconds = Double(cpu.tv_sec) + Double(cpu.tv_nsec) / 1e9
        queue.async { [refused] in
            malloc_trim(0)  // the PEM texts the deferred bundles held
            Log.info("certificate warm-up done: \(count - refused) built and checked by OpenSSL in \(String(format: "%.1f", seconds)) s "
                     + "(\(String(format: "%.1f", cpuSeconds)) s CPU), \(refused) refused")
        }
    }

    /// Unless a newer version of `id` arrived meanwhile (it was checked when it came).
    private func removeAfterWarmUp(_ id: String, _ item: CertificateCatalog.Item, _ error: CertificateError) {
        let (current, left) = transaction.read { ($0.items[id]?.sequence, $0.countAfter(upserts: [], removals: [id])) }
        guard current == item.sequence else { return }
        Log.error("certificate refused: \(error); it no longer serves (fix or replace the file: a change to it loads it again)")
        Metrics.shared.certificateUpdate(source: "startup", applied: 0, refused: 1)
        files.files.refusedAfterLoad(id)
        // The last certificate gone: the self-signed fallback answers rather than nothing.
        let upserts = left == 0 ? files.fallback().map { [$0] } ?? [] : []
        transaction.submit(CertificateChange(upserts: upserts, removals: [id], source: "startup"))
    }

    private func replaceAfterWarmUp(_ id: String, _ item: CertificateCatalog.Item, with built: CertificateBundle) {
        guard transaction.read({ $0.items[id]?.sequence }) == item.sequence else { return }
        Log.warning("certificate \(built.source): OpenSSL reads the names \(built.names.joined(separator: ",")) where the start-up "
                    + "index read \(item.bundle.names.joined(separator: ",")); serving OpenSSL's")
        transaction.submit(CertificateChange(upserts: [(id: id, bundle: built, origin: item.origin)], source: "startup"))
    }
}

/// The warm-up's list, handed to its thread so that the thread holds the only reference.
final class WarmUpList: @unchecked Sendable {  // taken once, by the warm-up thread, after the hand-over
    private var items: [(id: String, item: CertificateCatalog.Item)]
    init(_ items: [(id: String, item: CertificateCatalog.Item)]) { self.items = items }
    func take() -> [(id: String, item: CertificateCatalog.Item)] {
        defer { items = [] }
        return items
    }
}
