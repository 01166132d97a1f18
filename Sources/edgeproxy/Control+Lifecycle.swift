import Admin
import EventLoop
import Foundation
import Glibc
import Lifecycle
import Logs

/// The process around the proxy: log files, the binary upgrade's socket, systemd's watchdog.
extension Control {
    /// SIGUSR1: logrotate renamed the log files; open them again by name.
    func reopenLogs() {
        server?.reopenLogs()
        if logTargets.error != "stderr" {
            do { try ErrorLog.redirect(to: logTargets.error) } catch {
                Log.error("cannot reopen the error log \(logTargets.error): \(error); still writing to the file open before")
            }
        }
        Log.info("SIGUSR1: log files reopened")
    }

    /// `listen.upgrade_socket`: the path, and whether the configuration named it (then a failure
    /// to bind stops the start; the default only costs the upgrade, with a warning).
    var upgradeSocket: (path: String, explicit: Bool)? {
        switch settings.listen.upgradeSocket {
        case .off: return nil
        case .path(let p): return (p, true)
        case .automatic:
            // systemd's RuntimeDirectory= (/run/edgeproxy), else beside the configuration.
            if let run = ProcessInfo.processInfo.environment["RUNTIME_DIRECTORY"]?.split(separator: ":").first {
                return (run + "/edgeproxy.sock", false)
            }
            return (URL(fileURLWithPath: configPath).deletingLastPathComponent().appendingPathComponent("edgeproxy.sock").path, false)
        }
    }

    /// Binds the upgrade socket (before the listeners: a live process on the same path is an error,
    /// found before this one binds next to it).
    func openUpgradeListener() throws(LifecycleError) {
        guard let (path, explicit) = upgradeSocket else { return }
        do {
            upgradeListener = try UpgradeListener(path: path, sockets: { [unowned self] in
                queue.sync { shuttingDown ? nil : server?.listeningSockets }
            }, drain: { [unowned self] pid in
                queue.async { self.shutdown("upgrade: pid \(pid) serves now", stopping: false) }
            })
        } catch {
            if explicit || error.code == LifecycleError.inUseCode { throw error }
            Log.warning("binary upgrade unavailable: \(error)")
        }
    }

    /// systemd's WatchdogSec=: pings while every loop answers.
    func startWatchdog() {
        guard let interval = WatchdogSchedule.interval(environment: ProcessInfo.processInfo.environment, pid: getpid()),
              let server else { return }
        watchdog = Watchdog(interval: interval, notifier: notifier) { server.loopsAnswered() }
        Log.info("watchdog: WATCHDOG=1 every \(interval) s while the loops answer")
    }

    /// After a binary upgrade the old process holds the admin address until it exits (after its
    /// drain): bind it as soon as it is free.
    func startAdminWhenFree(giveUpAfter seconds: Double) {
        queue.async { self.attemptAdmin(until: Date().addingTimeInterval(seconds)) }
    }

    private func attemptAdmin(until deadline: Date) {
        do { try startAdmin() } catch {
            if Date() < deadline {
                queue.asyncAfter(deadline: .now() + 0.2) { self.attemptAdmin(until: deadline) }
            } else {
                Log.error("admin API: \(error); it stays off until a restart")
            }
        }
    }
}
