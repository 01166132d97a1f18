import CSystem
import Foundation
import Glibc
import Locking

/// Something registered with a loop: told which epoll events fired for its descriptor.
public protocol Pollable: AnyObject {
    func ready(_ events: UInt32)
}

/// Work that waits until the loop has handled the whole batch of events it woke up for.
public protocol BatchEndHandler: AnyObject {
    func batchEnded()
}

public enum PollEvents {
    public static let readable = UInt32(EPOLLIN.rawValue)
    public static let writable = UInt32(EPOLLOUT.rawValue)
    public static let hangup = UInt32(EPOLLRDHUP.rawValue) | UInt32(EPOLLHUP.rawValue)
    public static let error = UInt32(EPOLLERR.rawValue)
}

/// One epoll loop on its own thread. Every descriptor is registered once, edge-triggered for
/// both directions, and never re-armed: handlers read and write until EAGAIN. Everything a
/// handler does runs on this thread, so connection state needs no locks.
public final class EventLoop: @unchecked Sendable {  // state below is touched only on the loop thread, except `tasks` (Locked) and `wakeFD`.
    public let index: Int
    private let epollFD: Int32
    private let wakeFD: Int32
    private var handlers: [(handler: Pollable?, generation: UInt32)] = []
    private var nextGeneration: UInt32 = 1
    private var timers = TimerHeap()
    /// Handlers to call once the current batch is handled; two lists swapped, so none is allocated per batch.
    private var batchEnd: [BatchEndHandler] = []
    private var batchEndRunning: [BatchEndHandler] = []
    /// Objects closed during this batch, let go once it is over (`keepUntilBatchEnd`).
    private var closedThisBatch: [AnyObject] = []
    private var releasing: [AnyObject] = []
    private let tasks = Locked<[() -> Void]>([])
    private var running = true
    /// Cached monotonic time, refreshed once per wake-up.
    public private(set) var now: UInt64 = monotonicNanos()
    private var thread: Thread?

    public init(index: Int) throws(SystemError) {
        self.index = index
        epollFD = try syscallValue("epoll_create1") { epoll_create1(Int32(EPOLL_CLOEXEC)) }
        wakeFD = try syscallValue("eventfd") { eventfd(0, Int32(EFD_NONBLOCK | EFD_CLOEXEC)) }
        var ev = epoll_event(events: PollEvents.readable, data: epoll_data_t(u64: UInt64(UInt32.max)))
        _ = try syscallValue("epoll_ctl(ADD eventfd)") { epoll_ctl(epollFD, EPOLL_CTL_ADD, wakeFD, &ev) }
    }

    deinit {
        close(epollFD)
        close(wakeFD)
    }

    // MARK: Descriptors

    /// Registers `fd` edge-triggered for reads, writes and hang-ups.
    public func register(_ fd: Int32, _ handler: Pollable) throws(SystemError) {
        let mask = PollEvents.readable | PollEvents.writable | UInt32(EPOLLRDHUP.rawValue) | UInt32(EPOLLET.rawValue)
        try add(fd, handler, mask, "epoll_ctl(ADD)")
    }

    /// Registers a listening socket level-triggered for reads only, so a full accept queue is never lost.
    /// `shared`: every loop registers the same socket (inherited from systemd or a previous process);
    /// EPOLLEXCLUSIVE wakes one of them per connection instead of all.
    public func registerListener(_ fd: Int32, _ handler: Pollable, shared: Bool = false) throws(SystemError) {
        try add(fd, handler, PollEvents.readable | (shared ? UInt32(EPOLLEXCLUSIVE.rawValue) : 0), "epoll_ctl(ADD listener)")
    }

    /// The generation in the event data tells a stale event for a reused descriptor from a current one.
    private func add(_ fd: Int32, _ handler: Pollable, _ mask: UInt32, _ call: String) throws(SystemError) {
        let slot = Int(fd)
        if slot >= handlers.count {
            let empty: (handler: Pollable?, generation: UInt32) = (nil, 0)
            handlers.append(contentsOf: repeatElement(empty, count: max(slot + 1 - handlers.count, handlers.count)))
        }
        nextGeneration &+= 1
        if nextGeneration == 0 { nextGeneration = 1 }
        handlers[slot] = (handler, nextGeneration)
        var ev = epoll_event(events: mask, data: epoll_data_t(u64: UInt64(nextGeneration) << 32 | UInt64(UInt32(fd))))
        _ = try syscallValue(call) { epoll_ctl(epollFD, EPOLL_CTL_ADD, fd, &ev) }
    }

    /// Forgets `fd` and takes it out of the epoll set; it stays open (a listener handed on).
    /// Pending events for it in this batch are dropped.
    public func unregister(_ fd: Int32) {
        var ev = epoll_event()
        _ = epoll_ctl(epollFD, EPOLL_CTL_DEL, fd, &ev)
        forget(fd)
    }

    /// Forgets `fd`, which the caller closes next. Closing the last descriptor of a socket takes it
    /// out of the epoll set, so no EPOLL_CTL_DEL (one syscall per connection, as nginx skips it too).
    /// A copy a child being spawned holds for a moment keeps it registered until the child's exec;
    /// its events carry this registration's generation and are dropped.
    public func forget(closing fd: Int32) { forget(fd) }

    private func forget(_ fd: Int32) {
        if Int(fd) < handlers.count { handlers[Int(fd)] = (nil, 0) }
    }

    // MARK: Timers

    /// Arms (or re-arms) `timer` to fire `seconds` from now.
    public func arm(_ timer: Timer, seconds: Double) {
        let deadline = now &+ UInt64(max(seconds, 0.001) * 1e9)
        timer.deadline = deadline
        // A later deadline leaves the entry where it is: when it comes due, it moves on.
        if let queued = timers.queued(timer), queued <= deadline { return }
        timers.set(timer, deadline)
    }

    /// Stops `timer` from firing until it is armed again; its entry stays for a re-arm to reuse.
    public func disarm(_ timer: Timer) { timer.deadline = 0 }

    /// Stops `timer` for good (its owner is closing): its entry leaves the heap now, so the heap
    /// holds live timers only, not one per connection closed within the last timeout.
    public func cancel(_ timer: Timer) {
        timer.deadline = 0
        timers.remove(timer)
    }

    /// Timers with an entry in the heap (tests).
    var queuedTimers: Int { timers.count }

    private func fireDueTimers() {
        while let next = timers.nextDeadline, next <= now {
            let timer = timers.popFirst()!
            if timer.deadline == 0 { continue }
            if timer.deadline > now {
                timers.set(timer, timer.deadline)
                continue
            }
            timer.deadline = 0
            timer.fire()
        }
    }

    // MARK: End of a batch

    /// Calls `handler` after every event of this wake-up (and due timer) was handled, before the
    /// loop waits again: e.g. one write for what several upstream responses queued for one client.
    /// The caller asks once per batch (it keeps a flag); what handlers schedule runs in the same round.
    public func atBatchEnd(_ handler: BatchEndHandler) { batchEnd.append(handler) }

    /// Keeps `object` alive until the current batch is over. A connection closed in the middle of
    /// an event (an origin's response ending, an `ActionTimer` firing) may still be on the stack
    /// below that call, reached through references that do not own it: it must outlive the event,
    /// as nginx frees a closed connection's memory only once the event handler returned.
    public func keepUntilBatchEnd(_ object: AnyObject) { closedThisBatch.append(object) }

    private func runBatchEnd() {
        while !batchEnd.isEmpty {
            swap(&batchEnd, &batchEndRunning)
            for handler in batchEndRunning { handler.batchEnded() }
            batchEndRunning.removeAll(keepingCapacity: true)
        }
        if !closedThisBatch.isEmpty {
            swap(&closedThisBatch, &releasing)   // a deinit may close more: they wait for the next batch
            releasing.removeAll(keepingCapacity: true)
        }
    }

    // MARK: Tasks from other threads

    /// Runs `task` on this loop's thread, soon. Callable from any thread.
    public func execute(_ task: @escaping @Sendable () -> Void) {
        tasks.withLock { $0.append(task) }
        var one: UInt64 = 1
        _ = write(wakeFD, &one, 8)
    }

    private func runTasks() {
        var counter: UInt64 = 0
        _ = read(wakeFD, &counter, 8)
        let batch = tasks.withLock { t -> [() -> Void] in
            let b = t
            t.removeAll()
            return b
        }
        for task in batch { task() }
    }

    // MARK: Running

    /// `prepare` runs first on the loop's own thread (per-thread state such as a metrics shard).
    public func start(name: String, prepare: @escaping @Sendable () -> Void = {}) {
        let thread = Thread { [self] in
            prepare()
            self.run()
        }
        thread.name = name
        thread.stackSize = 1 << 20
        self.thread = thread
        thread.start()
    }

    /// Ends the loop after the current iteration. Callable from any thread.
    public func stop() { execute { [self] in self.running = false } }

    private func run() {
        let capacity = 256
        let events = UnsafeMutablePointer<epoll_event>.allocate(capacity: capacity)
        defer { events.deallocate() }
        while running {
            var timeoutMS: Int32 = -1
            if let next = timers.nextDeadline {
                let current = monotonicNanos()
                timeoutMS = next <= current ? 0 : Int32(min((next - current + 999_999) / 1_000_000, 60_000))
            }
            let n = epoll_wait(epollFD, events, Int32(capacity), timeoutMS)
            now = monotonicNanos()
            if n < 0 {
                if errno == EINTR { continue }
                fatalError("epoll_wait failed: \(SystemError("epoll_wait", errno: errno))")
            }
            for i in 0..<Int(n) {
                let ev = events[i]
                let data = ev.data.u64
                if data == UInt64(UInt32.max) { runTasks(); continue }
                let fd = Int(UInt32(truncatingIfNeeded: data))
                let generation = UInt32(truncatingIfNeeded: data >> 32)
                guard fd < handlers.count, handlers[fd].generation == generation, let h = handlers[fd].handler else { continue }
                h.ready(ev.events)
            }
            fireDueTimers()
            runBatchEnd()
        }
    }
}
