import Testing
@testable import Config

@Suite struct LifecycleConfigTests {
    func parse(_ yaml: String) throws -> Settings { try ConfigLoader.parse(yaml: yaml, file: "x.yaml", baseDirectory: "/srv/proxy/") }

    func error(_ yaml: String) -> ConfigError? {
        do { _ = try parse(yaml); return nil } catch { return error as? ConfigError }
    }

    @Test func logFormatErrorFileAndQueue() throws {
        let log = try parse("log: { format: combined, error: logs/error.log, access_queue: 1m }").log
        #expect(log.format == .combined && log.error == "/srv/proxy/logs/error.log" && log.accessQueueBytes == 1 << 20)
        let defaults = try parse("").log
        #expect(defaults.format == .json && defaults.error == "stderr" && defaults.accessQueueBytes == 8 << 20)
        #expect(error("log:\n  format: apache\n")?.description == #"x.yaml:2:11: expected one of "json" or "combined", got "apache""#)
        #expect(error("log:\n  access_queue: 1k\n")?.line == 2)
    }

    @Test func upgradeSocket() throws {
        #expect(try parse("").listen.upgradeSocket == .automatic)
        #expect(try parse("listen: { upgrade_socket: off }").listen.upgradeSocket == .off)
        #expect(try parse("listen: { upgrade_socket: run/up.sock }").listen.upgradeSocket == .path("/srv/proxy/run/up.sock"))
        let long = "/" + String(repeating: "d", count: 120)
        #expect(error("listen:\n  upgrade_socket: \(long)\n")?.description.hasPrefix("x.yaml:2:19: listen.upgrade_socket is 121 bytes") == true)
    }
}
