import ArgumentParser
import Foundation

struct VersionCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "version",
        abstract: "Print the version, the git commit and the OpenSSL and nghttp2 versions.",
        discussion: "`edgeproxy status` tells the same of a running node.")

    @Flag(help: "Print JSON for scripts.")
    var json = false

    func run() throws {
        if json {
            let fields = ["version": BuildInfo.version, "commit": BuildInfo.commit, "openssl": BuildInfo.openssl, "nghttp2": BuildInfo.nghttp2]
            print(try JSONOutput.string(fields))
        } else {
            print(BuildInfo.summary)
        }
    }
}
