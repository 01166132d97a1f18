import Config
import ControlClient
import Foundation
import HTTP1

/// `edgeproxy acme revoke NAME [--reason R]`: asks the running proxy, through its admin API
/// (`admin.listen` and token from the same configuration), to revoke the certificate it serves
/// for NAME and obtain a replacement. The running process does it, so its schedule, store and
/// the fleet's lock see the change at once.
enum ACMECommand {
    static func revoke(_ name: String, reason: String?, settings: Settings) -> Int32 {
        guard let admin = settings.admin else {
            fail("acme revoke talks to the running proxy's admin API: the configuration has no admin section")
            return 1
        }
        let host = admin.listen.host.isEmpty || admin.listen.host == "*" ? "127.0.0.1"
            : admin.listen.host.contains(":") ? "[\(admin.listen.host)]" : admin.listen.host
        var url = "http://\(host):\(admin.listen.port)/acme/revoke/\(name)"
        if let reason { url += "?reason=" + (reason.addingPercentEncoding(withAllowedCharacters: .urlQueryAllowed) ?? reason) }
        var options = HTTPClient.Options()
        options.timeout = 60  // the CA answers a revocation within seconds
        options.keepAlive = false
        let headers = admin.token.map { [HTTPField(name: "Authorization", value: "Bearer \($0)")] } ?? []
        do {
            let response = try HTTPClient(options: options).request(method: "POST", url: url, headers: headers)
            let body = String(decoding: response.body, as: UTF8.self)
            guard response.status == 200 else {
                fail("acme revoke \(name): \(response.status): \(body.trimmingCharacters(in: .whitespacesAndNewlines))")
                return 1
            }
            print(body, terminator: "")
            return 0
        } catch {
            fail("acme revoke \(name): cannot reach the admin API at \(admin.listen) (\(error)); is the proxy running?")
            return 1
        }
    }
}
