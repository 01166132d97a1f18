import ArgumentParser
import Config
import ControlClient
import Foundation
import HTTP1

/// How a command finds the running node's admin API: `--admin` and `--token` when given, else
/// the configuration file's `admin.listen` and `admin.token` (as haproxyctl and caddy read theirs).
struct AdminOptions: ParsableArguments {
    @Option(name: [.short, .long], help: ArgumentHelp("The node's configuration file: where admin.listen and admin.token are read.",
                                                      valueName: "file"))
    var config: String?

    @Option(help: ArgumentHelp("The admin API's URL (http://HOST:PORT), instead of admin.listen.", valueName: "url"))
    var admin: String?

    @Option(help: ArgumentHelp("The admin API's bearer token, instead of admin.token (or set EDGEPROXY_ADMIN_TOKEN).",
                               valueName: "token"))
    var token: String?

    @Flag(help: "Print the admin API's JSON, for scripts.")
    var json = false

    /// Asks the node; with `--json` prints its answer as it came and returns nil (the command is
    /// done), else returns the answer for a table (an object, or empty).
    func answer(_ method: String, _ path: String, body: [UInt8] = [], timeout: Double = 15) throws(CommandError) -> [String: Any]? {
        let (raw, value) = try client().json(method, path, body: body, timeout: timeout)
        if json { JSONOutput.print(raw); return nil }
        return value as? [String: Any] ?? [:]
    }

    /// The client for these options; reads the configuration only when it is needed or named.
    func client() throws(CommandError) -> AdminClient {
        let environmentToken = ProcessInfo.processInfo.environment["EDGEPROXY_ADMIN_TOKEN"].flatMap { $0.isEmpty ? nil : $0 }
        if let admin {
            guard let base = Self.baseURL(admin) else {
                throw CommandError(.badInput, "--admin \(admin) is not an http://HOST:PORT URL")
            }
            // The token may still come from a configuration file named on purpose.
            var configured: String?
            if let config { configured = try Self.loadForClient(config).admin?.token }
            return AdminClient(base: base, token: token ?? environmentToken ?? configured, origin: "--admin")
        }
        let path = config ?? defaultConfigPath
        guard let settings = try Self.loadForClient(path).admin else {
            throw CommandError(.adminOff, "the admin API is off in \(path) (no admin section): add `admin: {listen: \"127.0.0.1:9901\"}` "
                               + "and restart the node, or pass --admin URL")
        }
        let listen = settings.listen
        let host = ["", "*", "0.0.0.0"].contains(listen.host) ? "127.0.0.1" : listen.host == "::" ? "::1" : listen.host
        let base = "http://\(host.contains(":") ? "[\(host)]" : host):\(listen.port)"
        return AdminClient(base: base, token: token ?? environmentToken ?? settings.token, origin: "admin.listen in \(path)")
    }

    static func load(_ path: String) throws(CommandError) -> Settings {
        do { return try ConfigLoader.load(path: path) } catch { throw CommandError(.config, "\(error)") }
    }

    private static func loadForClient(_ path: String) throws(CommandError) -> Settings {
        do { return try load(path) } catch {
            throw CommandError(.config, "\(error.reason) (pass --config FILE for the node's configuration, or --admin URL)")
        }
    }

    /// `http://host:port` without a trailing slash; a bare `host:port` means http.
    static func baseURL(_ text: String) -> String? {
        var url = text.contains("://") ? text : "http://" + text
        while url.hasSuffix("/") { url.removeLast() }
        guard let parts = URLComponents(string: url), ["http", "https"].contains(parts.scheme?.lowercased() ?? ""),
              parts.host?.isEmpty == false, parts.path.isEmpty, parts.query == nil else { return nil }
        return url
    }
}

/// Blocking requests to one node's admin API, with its failures turned into errors that say
/// what to do next.
struct AdminClient {
    let base: String
    let token: String?
    /// Where `base` came from, for the error when nothing answers there.
    let origin: String

    /// The response body of a 2xx answer; any other answer throws with the API's own reason.
    func call(_ method: String, _ path: String, body: [UInt8] = [], timeout: Double = 15) throws(CommandError) -> [UInt8] {
        var options = HTTPClient.Options()
        options.timeout = timeout
        options.keepAlive = false
        let headers = token.map { [HTTPField(name: "Authorization", value: "Bearer \($0)")] } ?? []
        let response: HTTPResponse
        do {
            response = try HTTPClient(options: options).request(method: method, url: base + path, headers: headers, body: body)
        } catch {
            throw CommandError(.unreachable, "cannot reach the admin API at \(base) (from \(origin)): \(error.reason)")
        }
        guard !(200..<300).contains(response.status) else { return response.body }
        let reason = Self.reason(response.body)
        switch response.status {
        case 401:
            throw CommandError(.unauthorized, "the admin API at \(base) refused the request: \(reason); "
                               + (token == nil ? "pass the node's admin.token with --token or EDGEPROXY_ADMIN_TOKEN"
                                               : "the token given does not match the node's admin.token"))
        case 403:
            throw CommandError(.unauthorized, "the admin API at \(base) refused the request: \(reason)")
        default:
            throw CommandError(.refused, "\(reason) (\(method) \(path): \(response.status))", body: response.body)
        }
    }

    /// The decoded JSON of a 2xx answer.
    func json(_ method: String, _ path: String, body: [UInt8] = [], timeout: Double = 15) throws(CommandError) -> (raw: [UInt8], value: Any) {
        let raw = try call(method, path, body: body, timeout: timeout)
        guard let value = try? JSONSerialization.jsonObject(with: Data(raw), options: [.fragmentsAllowed]) else {
            throw CommandError(.badAnswer, "the admin API at \(base) answered \(method) \(path) with something other than JSON; "
                               + "is that address really an edgeproxy admin API?")
        }
        return (raw, value)
    }

    /// The API's `{"error": reason}`, else the body as text.
    static func reason(_ body: [UInt8]) -> String {
        if let object = try? JSONSerialization.jsonObject(with: Data(body)) as? [String: Any], let error = object["error"] as? String {
            return error
        }
        let text = String(decoding: body, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
        return text.isEmpty ? "no reason given" : text
    }
}

/// Why a command failed: a stable code, and a reason that says what to do next. Printed by the
/// argument parser as `Error: reason`, exit status 1.
struct CommandError: Error, CustomStringConvertible {
    struct Code: Hashable, CustomStringConvertible {
        let raw: String
        var description: String { raw }
        /// The configuration file cannot be read or is not valid.
        static let config = Code(raw: "config")
        /// The configuration has no admin section.
        static let adminOff = Code(raw: "adminOff")
        /// Nothing answered at the admin API's address.
        static let unreachable = Code(raw: "unreachable")
        /// A missing or wrong token (401), or a non-loopback client without one (403).
        static let unauthorized = Code(raw: "unauthorized")
        /// The node answered, and refused (404 unknown name, 422 bad certificate, ...).
        static let refused = Code(raw: "refused")
        /// The answer was not what an edgeproxy admin API sends.
        static let badAnswer = Code(raw: "badAnswer")
        /// A file or value given on the command line cannot be used.
        static let badInput = Code(raw: "badInput")
        /// The command did its work only in part (a reload with refused certificates).
        static let partial = Code(raw: "partial")
    }

    let code: Code
    let reason: String
    /// The answer's body, when the node answered.
    var body: [UInt8] = []

    init(_ code: Code, _ reason: String, body: [UInt8] = []) {
        self.code = code; self.reason = reason; self.body = body
    }

    var description: String { reason }
}
