import Foundation
import Yams

extension SettingsReader {
    static let defaultAdminListen = SocketAddressSpec(host: "127.0.0.1", port: 9901)

    /// `admin:` absent → off; present (even empty) → on, loopback 127.0.0.1:9901 by default.
    /// Off unless asked for, because several instances on one host would fight over one port.
    func admin(_ node: Node?) throws(ConfigError) -> AdminSettings? {
        guard let node else { return nil }
        let map = try mapping(node, name: "admin", keys: ["listen", "token", "token_file"])
        var admin = AdminSettings(listen: Self.defaultAdminListen, token: nil)
        if let value = map["listen"] { admin.listen = try source.address(value) }
        if let token = map["token"], let file = map["token_file"] {
            throw source.error("give admin.token or admin.token_file, not both (token is at \(position(token.mark)))", at: file)
        }
        if let value = map["token"] {
            let token = try source.string(value, expected: "a token string")
            guard token.count >= 16 else { throw source.error("admin.token is too short: use at least 16 characters", at: value) }
            admin.token = token
        }
        if let value = map["token_file"] {
            let path = try source.path(value)
            guard let data = FileManager.default.contents(atPath: path),
                  let line = String(data: data, encoding: .utf8)?.split(whereSeparator: \.isNewline).first else {
                throw source.error("cannot read a token from \(quoted(path)) (expected the token on its first line)", at: value)
            }
            let token = line.trimmingCharacters(in: .whitespaces)
            guard token.count >= 16 else { throw source.error("the token in \(quoted(path)) is too short: use at least 16 characters", at: value) }
            admin.token = token
        }
        if admin.token == nil && !Self.isLoopback(admin.listen.host) {
            throw source.error("admin.listen \(quoted(admin.listen.description)) is reachable from other hosts: "
                               + "set admin.token (or token_file), or listen on 127.0.0.1 / [::1]",
                               at: map["listen"] ?? node)
        }
        return admin
    }

    static func isLoopback(_ host: String) -> Bool {
        host == "localhost" || host == "::1" || host.hasPrefix("127.")
    }
}
