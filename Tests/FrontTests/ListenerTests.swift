import Glibc
import Testing
@testable import Front

@Suite struct ListenerTests {
    /// Errors about the connection being accepted let the next one through at once; running out of
    /// descriptors or memory must pause the level-triggered listener instead, or the loop spins.
    @Test func acceptErrorsThatConcernOneConnection() {
        for e in [ECONNABORTED, EPROTO, EPERM, ENETUNREACH, EHOSTUNREACH] { #expect(Listener.failsOnlyThisConnection(e), "\(e)") }
        for e in [EMFILE, ENFILE, ENOBUFS, ENOMEM] { #expect(!Listener.failsOnlyThisConnection(e), "\(e)") }
    }
}
