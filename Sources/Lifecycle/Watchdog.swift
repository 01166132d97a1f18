import Dispatch
import EventLoop
import Logs

/// systemd's watchdog (WatchdogSec= in the unit): WATCHDOG=1 every `interval` seconds from a thread
/// of its own, but only while `alive` says the event loops answer. A stuck loop stops the pings, and
/// systemd restarts the service.
public final class Watchdog: @unchecked Sendable {  // the timer is only kept alive here
    private let timer: DispatchSourceTimer

    public init(interval: Double, notifier: ServiceNotifier, alive: @escaping @Sendable () -> Bool) {
        let queue = DispatchQueue(label: "edgeproxy.watchdog")
        timer = DispatchSource.makeTimerSource(queue: queue)
        nonisolated(unsafe) var silent = false  // the watchdog queue's own
        timer.schedule(deadline: .now(), repeating: interval)
        timer.setEventHandler {
            if alive() {
                notifier.watchdog()
                if silent { Log.info("watchdog: every event loop answers again") }
                silent = false
            } else if !silent {
                silent = true
                Log.error("watchdog: an event loop did not answer within \(interval) s; not telling systemd we are alive")
            }
        }
        timer.resume()
    }
}
