import Dispatch
@testable import EventLoop
import Glibc
import Locking
import Testing

@Suite struct EventLoopTests {
    /// Counts its readable events, and signals each one.
    final class Counter: Pollable, @unchecked Sendable {  // `events` behind its lock
        let events = Locked(0)
        let signal = DispatchSemaphore(value: 0)
        func ready(_ events: UInt32) {
            guard events & PollEvents.readable != 0 else { return }
            self.events.withLock { $0 += 1 }
            signal.signal()
        }
    }

    static func pair() -> (Int32, Int32) {
        var fds: [Int32] = [0, 0]
        #expect(socketpair(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_NONBLOCK.rawValue), 0, &fds) == 0)
        return (fds[0], fds[1])
    }

    /// Accepted connections get TCP_NODELAY from their listener, made here or adopted: no
    /// setsockopt per connection.
    @Test func acceptedConnectionsInheritNoDelay() throws {
        func noDelay(_ fd: Int32) -> Int32 {
            var v: Int32 = -1
            var len = socklen_t(4)
            #expect(getsockopt(fd, Int32(IPPROTO_TCP), TCP_NODELAY, &v, &len) == 0)
            return v
        }
        func acceptOne(_ listener: Int32) throws -> Int32? {
            let port = Socket.localAddress(listener)!.port
            let client = try Socket.connect(try SocketAddress.resolve(host: "127.0.0.1", port: port))
            defer { Socket.close(client) }
            for _ in 0..<200 {
                if let (fd, _) = try Socket.accept(listener) { return fd }
                usleep(5_000)
            }
            return nil
        }
        let listener = try Socket.listen(try SocketAddress.resolve(host: "127.0.0.1", port: 0))
        defer { Socket.close(listener) }
        let accepted = try #require(try acceptOne(listener))
        #expect(noDelay(accepted) == 1)
        Socket.close(accepted)

        // A listener another process made (systemd, or the process a binary upgrade replaces).
        let foreign = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { Socket.close(foreign) }
        #expect(try SocketAddress.resolve(host: "127.0.0.1", port: 0).withSockaddr { bind(foreign, $0, $1) } == 0)
        #expect(Glibc.listen(foreign, 8) == 0)
        #expect(noDelay(foreign) == 0)
        #expect(try Socket.adoptListener(foreign) != nil)
        let adopted = try #require(try acceptOne(foreign))
        #expect(noDelay(adopted) == 1)
        Socket.close(adopted)
    }

    /// A descriptor forgotten and closed without EPOLL_CTL_DEL, whose socket a second descriptor
    /// keeps open (as a child being spawned may for a moment), stays in the epoll set: its events
    /// must not reach the handler now registered under the same descriptor number.
    @Test func aClosedDescriptorsLeftoverEventsDoNotReachItsNumbersNextOwner() throws {
        let loop = try EventLoop(index: 0)
        loop.start(name: "test-loop")
        defer { loop.stop() }
        let old = Counter(), current = Counter()
        let (a, aPeer) = Self.pair()
        let copy = dup(a)
        defer { close(aPeer); close(copy) }
        let (b, bPeer) = Self.pair()
        defer { close(a); close(bPeer) }
        let registered = DispatchSemaphore(value: 0)
        let bound = Loop(loop)
        let moved = Locked(false)
        loop.execute {
            try? bound.loop.register(a, old)
            bound.loop.forget(closing: a)
            // Closes `a` and gives its number to the second socket in one step (a close, then a
            // new socket, could race another test's descriptors for the number).
            moved.withLock { $0 = dup2(b, a) == a }
            close(b)
            try? bound.loop.register(a, current)
            registered.signal()
        }
        registered.wait()
        #expect(moved.withLock { $0 })
        // The leftover registration is ready first; the current one's event comes in the same
        // batch or a later one, so when it arrives the leftover one has been handled or dropped.
        #expect(write(aPeer, "x", 1) == 1)
        #expect(write(bPeer, "y", 1) == 1)
        #expect(current.signal.wait(timeout: .now() + 5) == .success)
        #expect(current.events.withLock { $0 } == 1)
        #expect(old.events.withLock { $0 } == 0)
    }

    struct Loop: @unchecked Sendable {  // the closure runs on the loop's own thread
        let loop: EventLoop
        init(_ loop: EventLoop) { self.loop = loop }
    }
}
