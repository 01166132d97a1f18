import HTTP1
import Proxy

/// Port 80: ACME HTTP-01 answers (RFC 8555 §8.3), from this node's table or the cluster's, and a
/// redirect to https for everything else.
extension HTTP1Front {
    func answerPlainPort(_ head: RequestHead) {
        let prefix = "/.well-known/acme-challenge/"
        if head.target.hasPrefix(prefix) {
            let token = String(head.target.dropFirst(prefix.count))
            if let answer = worker.challenges.keyAuthorization(for: token) {
                respond(status: 200, body: answer, contentType: "application/octet-stream")
            } else if let lookup = worker.challenges.lookup {
                // The answer comes back on this loop; the request waits like a proxied one.
                let front = LoopBound(self), loop = worker.loop
                lookingUp = token
                lookup(token) { answer in loop.execute { front.value.lookedUp(token, answer) } }
            } else {
                respond(status: 404, body: "no such challenge\n")
            }
            return
        }
        let settings = worker.config.settings
        let port = settings.listen.redirectPort ?? settings.listen.https.first?.port ?? 443
        let host = Router.hostName(head.host ?? "localhost")
        let location = "https://\(host)\(port == 443 ? "" : ":\(port)")\(head.target)"
        respond(status: 301, body: "moved to \(location)\n", extra: [HTTPField(name: "Location", value: location)])
    }

    /// The cluster's answer for a token this node did not hold, unless the request is gone.
    private func lookedUp(_ token: String, _ answer: String?) {
        guard !closed, lookingUp == token else { return }
        lookingUp = nil
        if let answer {
            respond(status: 200, body: answer, contentType: "application/octet-stream")
        } else {
            respond(status: 404, body: "no such challenge\n")
        }
    }
}
