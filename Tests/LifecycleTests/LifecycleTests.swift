import EventLoop
import Glibc
import Testing
@testable import Lifecycle

@Suite struct SocketActivationTests {
    @Test func descriptorsFromThreeWithTheirNames() throws {
        let passed = try SocketActivation.parse(environment: ["LISTEN_PID": "42", "LISTEN_FDS": "2", "LISTEN_FDNAMES": "https:http"], pid: 42)
        #expect(passed.map(\.fd) == [3, 4])
        #expect(passed.map(\.name) == ["systemd socket \"https\" (fd 3)", "systemd socket \"http\" (fd 4)"])
        let unnamed = try SocketActivation.parse(environment: ["LISTEN_PID": "42", "LISTEN_FDS": "1"], pid: 42)
        #expect(unnamed.map(\.name) == ["systemd socket fd 3"])
    }

    /// Variables left for another process (a parent that did not clear them), or none at all.
    @Test func notOurs() throws {
        #expect(try SocketActivation.parse(environment: ["LISTEN_PID": "41", "LISTEN_FDS": "2"], pid: 42).isEmpty)
        #expect(try SocketActivation.parse(environment: [:], pid: 42).isEmpty)
        #expect(try SocketActivation.parse(environment: ["LISTEN_FDS": "2"], pid: 42).isEmpty)
    }

    @Test func malformedVariablesAreErrors() {
        for env in [["LISTEN_PID": "x", "LISTEN_FDS": "1"], ["LISTEN_PID": "42", "LISTEN_FDS": "-1"],
                    ["LISTEN_PID": "42", "LISTEN_FDS": "two"], ["LISTEN_PID": "42", "LISTEN_FDS": "2", "LISTEN_FDNAMES": "one"]] {
            #expect(throws: LifecycleError.self, "\(env)") { try SocketActivation.parse(environment: env, pid: 42) }
        }
        do {
            _ = try SocketActivation.parse(environment: ["LISTEN_PID": "42", "LISTEN_FDS": "2", "LISTEN_FDNAMES": "one"], pid: 42)
        } catch {
            #expect(error.code == "socket-activation" && error.reason.contains("names 1 socket(s) but LISTEN_FDS says 2"))
        }
    }
}

@Suite struct ServiceNotifierTests {
    @Test func messageIsOneAssignmentPerLine() {
        #expect(String(decoding: ServiceNotifier.message(["READY=1", "STATUS=a\nb"]), as: UTF8.self) == "READY=1\nSTATUS=a b\n")
    }

    /// '@' names an abstract socket: a leading NUL and no terminator, counted in the length.
    @Test func abstractAndPathAddresses() throws {
        let abstract = try #require(UnixAddress("@sd"))
        #expect(abstract.bytes == [0, UInt8(ascii: "s"), UInt8(ascii: "d")])
        #expect(abstract.length == socklen_t(MemoryLayout<sa_family_t>.size + 3))
        let path = try #require(UnixAddress("/run/n"))
        #expect(path.bytes == Array("/run/n".utf8) + [0])
        #expect(UnixAddress("") == nil && UnixAddress("/" + String(repeating: "x", count: 200)) == nil)
    }

    /// A datagram on a real socket, as systemd reads it.
    @Test func sendsToTheNotifySocket() throws {
        let name = "edgeproxy-unit-\(getpid())"
        let fd = socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue), 0)
        defer { close(fd) }
        let address = try #require(UnixAddress("@" + name))
        let bound = try address.withSockaddr { sa, len throws(SystemError) in bind(fd, sa, len) }
        #expect(bound == 0)
        ServiceNotifier(environment: ["NOTIFY_SOCKET": "@" + name]).stopping()
        var buffer = [UInt8](repeating: 0, count: 256)
        let n = recv(fd, &buffer, buffer.count, Int32(MSG_DONTWAIT))
        #expect(String(decoding: buffer[..<max(n, 0)], as: UTF8.self) == "STOPPING=1\nSTATUS=draining connections\n")
    }

    @Test func watchdogInterval() {
        #expect(WatchdogSchedule.interval(environment: ["WATCHDOG_USEC": "2000000"], pid: 7) == 1.0)
        #expect(WatchdogSchedule.interval(environment: ["WATCHDOG_USEC": "2000000", "WATCHDOG_PID": "7"], pid: 7) == 1.0)
        #expect(WatchdogSchedule.interval(environment: ["WATCHDOG_USEC": "2000000", "WATCHDOG_PID": "8"], pid: 7) == nil)
        #expect(WatchdogSchedule.interval(environment: ["WATCHDOG_USEC": "0"], pid: 7) == nil)
        #expect(WatchdogSchedule.interval(environment: [:], pid: 7) == nil)
    }
}

@Suite struct DescriptorPassingTests {
    /// A descriptor sent over a SOCK_SEQPACKET pair arrives as another number for the same file.
    @Test func passesDescriptorsWithTheMessage() throws {
        var pair: [Int32] = [0, 0]
        #expect(socketpair(AF_UNIX, Int32(SOCK_SEQPACKET.rawValue), 0, &pair) == 0)
        var pipe: [Int32] = [0, 0]
        #expect(Glibc.pipe(&pipe) == 0)
        defer { for fd in pair + pipe { close(fd) } }
        try DescriptorPassing.send(pair[0], "fds", fds: [pipe[1]])
        let (text, fds) = try #require(try DescriptorPassing.receive(pair[1]))
        #expect(text == "fds" && fds.count == 1 && fds[0] != pipe[1])
        #expect(write(fds[0], "x", 1) == 1)
        var byte: UInt8 = 0
        #expect(read(pipe[0], &byte, 1) == 1 && byte == UInt8(ascii: "x"))
        #expect(fcntl(fds[0], F_GETFD) & FD_CLOEXEC != 0)
        close(fds[0])
        close(pair[0])
        #expect(try DescriptorPassing.receive(pair[1]) == nil)
        pair[0] = -1
    }
}
