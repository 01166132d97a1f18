import ControlClient
import Foundation
import HTTP1
import Synchronization
import Testing

@Suite struct HTTPClientTests {
    static func ok(_ body: String, close: Bool = false) -> String {
        "HTTP/1.1 200 OK\r\nContent-Length: \(body.utf8.count)\r\n\(close ? "Connection: close\r\n" : "")\r\n\(body)"
    }

    @Test func keepsTheConnectionAliveAcrossRequests() throws {
        let server = try ScriptedServer { c in
            while let request = c.readRequest() { c.send(Self.ok(request.hasPrefix("POST /b") ? "posted" : "got")) }
        }
        let client = HTTPClient()
        let first = try client.request(method: "GET", url: "http://127.0.0.1:\(server.port)/a")
        let second = try client.request(method: "POST", url: "http://127.0.0.1:\(server.port)/b", body: Array("x".utf8))
        #expect(first.status == 200 && String(decoding: first.body, as: UTF8.self) == "got")
        #expect(String(decoding: second.body, as: UTF8.self) == "posted")
        #expect(second.header("content-length") == "6")
        #expect(server.accepted == 1)
        #expect(client.requestCount == 2)
    }

    @Test func aHostHeaderReplacesTheURLsOnce() throws {
        // Answers each request with its own head, lower-cased.
        let server = try ScriptedServer { c in
            while let request = c.readRequest() { c.send(Self.ok(request.lowercased())) }
        }
        let client = HTTPClient()
        let named = try client.request(method: "GET", url: "http://127.0.0.1:\(server.port)/", headers: [HTTPField(name: "host", value: "app.example")])
        let plain = try client.request(method: "GET", url: "http://127.0.0.1:\(server.port)/")
        let namedHead = String(decoding: named.body, as: UTF8.self), plainHead = String(decoding: plain.body, as: UTF8.self)
        #expect(namedHead.components(separatedBy: "host:").count == 2 && namedHead.contains("\r\nhost: app.example\r\n"))
        #expect(plainHead.contains("\r\nhost: 127.0.0.1:\(server.port)\r\n"))
    }

    @Test func thePreambleOpensEveryNewConnection() throws {
        // Answers each request with everything the connection carried before its request line.
        let server = try ScriptedServer { c in
            while let request = c.readRequest() {
                let lead = request.components(separatedBy: "GET /").first ?? ""
                c.send(Self.ok(lead, close: true))
            }
        }
        var options = HTTPClient.Options()
        options.preamble = Array("PROXY UNKNOWN\r\n".utf8)
        let client = HTTPClient(options: options)
        for _ in 0..<2 {  // the server closes: the second request is on a new connection, with its own preamble
            let r = try client.request(method: "GET", url: "http://127.0.0.1:\(server.port)/")
            #expect(String(decoding: r.body, as: UTF8.self) == "PROXY UNKNOWN\r\n")
        }
    }

    @Test func reconnectsOnceWhenTheIdleConnectionWasClosed() throws {
        // Answers one request per connection and closes without saying so.
        let server = try ScriptedServer { c in
            if c.readRequest() != nil { c.send(Self.ok("one")) }
        }
        let client = HTTPClient()
        _ = try client.request(method: "GET", url: "http://127.0.0.1:\(server.port)/")
        usleep(50_000)
        let again = try client.request(method: "GET", url: "http://127.0.0.1:\(server.port)/")
        #expect(String(decoding: again.body, as: UTF8.self) == "one")
        #expect(server.accepted == 2)
    }

    @Test func doesNotResendAfterATimeoutOnAReusedConnection() throws {
        let requests = Mutex(0)
        let server = try ScriptedServer { c in
            while c.readRequest() != nil {
                let n = requests.withLock { $0 += 1; return $0 }
                if n == 1 { c.send(Self.ok("first")) } else { usleep(1_000_000) }
            }
        }
        var options = HTTPClient.Options()
        options.timeout = 0.3
        let client = HTTPClient(options: options)
        _ = try client.request(method: "GET", url: "http://127.0.0.1:\(server.port)/")
        let error = #expect(throws: HTTPClientError.self) { try client.request(method: "POST", url: "http://127.0.0.1:\(server.port)/") }
        #expect(error?.code == .timeout)
        #expect(error?.requestMaybeSent == true)
        #expect(requests.withLock { $0 } == 2)
        #expect(server.accepted == 1)
        let refused = #expect(throws: HTTPClientError.self) { try client.request(method: "GET", url: "http://127.0.0.1:\(try deadPort())/") }
        #expect(refused?.requestMaybeSent == false)
    }

    @Test func readsChunkedAndCloseDelimitedBodies() throws {
        let server = try ScriptedServer { c in
            guard let request = c.readRequest() else { return }
            if request.hasPrefix("GET /chunked") {
                c.send("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n")
            } else {
                c.send("HTTP/1.1 200 OK\r\n\r\nuntil close")
            }
        }
        let client = HTTPClient()
        #expect(try client.request(method: "GET", url: "http://127.0.0.1:\(server.port)/chunked").body == Array("abcde".utf8))
        #expect(try client.request(method: "GET", url: "http://127.0.0.1:\(server.port)/close").body == Array("until close".utf8))
    }

    @Test func refusesABodyOverTheLimit() throws {
        let server = try ScriptedServer { c in
            if c.readRequest() != nil { c.send(Self.ok(String(repeating: "x", count: 5000))) }
        }
        var options = HTTPClient.Options()
        options.maxResponseBody = 1000
        let client = HTTPClient(options: options)
        let error = #expect(throws: HTTPClientError.self) { try client.request(method: "GET", url: "http://127.0.0.1:\(server.port)/") }
        #expect(error?.code == .tooLarge)
    }

    @Test func timesOutWhenTheServerNeverAnswers() throws {
        let server = try ScriptedServer { c in _ = c.readRequest(); usleep(2_000_000) }
        var options = HTTPClient.Options()
        options.timeout = 0.3
        let client = HTTPClient(options: options)
        let started = Date()
        let error = #expect(throws: HTTPClientError.self) { try client.request(method: "GET", url: "http://127.0.0.1:\(server.port)/") }
        #expect(error?.code == .timeout)
        #expect(error?.receivedResponseBytes == false)
        #expect(Date().timeIntervalSince(started) < 1.5)
    }

    @Test func reportsARefusedConnection() throws {
        let port = try deadPort()
        let error = #expect(throws: HTTPClientError.self) { try HTTPClient().request(method: "GET", url: "http://127.0.0.1:\(port)/") }
        #expect(error?.code == .connect)
        #expect(error?.isTransport == true)
    }

    @Test func rejectsOtherSchemes() {
        let error = #expect(throws: HTTPClientError.self) { try HTTPClient().request(method: "GET", url: "ftp://example.test/") }
        #expect(error?.code == .badURL)
    }

    @Test func reportsGarbageAsABadResponse() throws {
        let server = try ScriptedServer { c in if c.readRequest() != nil { c.send("SSH-2.0-OpenSSH\r\n\r\n") } }
        let error = #expect(throws: HTTPClientError.self) { try HTTPClient().request(method: "GET", url: "http://127.0.0.1:\(server.port)/") }
        #expect(error?.code == .badResponse)
        #expect(error?.receivedResponseBytes == true)
    }

    @Test func streamsBodyPiecesAsTheyArriveUntilCancelled() throws {
        let server = try ScriptedServer { c in
            guard c.readRequest() != nil else { return }
            c.send("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nfirst\r\n")
            usleep(100_000)
            c.send("6\r\nsecond\r\n")
            usleep(3_000_000)  // then silence: only cancel() ends the stream
        }
        let cancellation = HTTPCancellation()
        let pieces = Mutex<[String]>([])
        let started = Date()
        Thread {
            while pieces.withLock({ $0.count }) < 2 { usleep(10_000) }
            cancellation.cancel()
        }.start()
        var status = 0
        let error = #expect(throws: HTTPClientError.self) {
            try HTTPClient().stream(method: "POST", url: "http://127.0.0.1:\(server.port)/watch", body: Array("{}".utf8),
                                    idleTimeout: nil, cancellation: cancellation,
                                    onHead: { status = $0.status; return true },
                                    onData: { piece in pieces.withLock { $0.append(String(decoding: piece, as: UTF8.self)) }; return true })
        }
        #expect(error?.code == .cancelled)
        #expect(status == 200)
        #expect(pieces.withLock { $0 } == ["first", "second"])
        #expect(Date().timeIntervalSince(started) < 1.5)
    }

    @Test func streamStopsWhenTheCallbackSaysSoAndEndsAtTheBodyEnd() throws {
        let server = try ScriptedServer { c in
            guard c.readRequest() != nil else { return }
            c.send("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1\r\na\r\n1\r\nb\r\n0\r\n\r\n")
        }
        var seen: [UInt8] = []
        try HTTPClient().stream(method: "GET", url: "http://127.0.0.1:\(server.port)/", idleTimeout: 2,
                                onHead: { _ in true }, onData: { seen += $0; return true })
        #expect(seen == Array("ab".utf8))
        var first: [UInt8] = []
        try HTTPClient().stream(method: "GET", url: "http://127.0.0.1:\(server.port)/", idleTimeout: 2,
                                onHead: { _ in true }, onData: { first += $0; return false })
        #expect(first == Array("a".utf8))
    }

    @Test func streamIdleTimeoutEndsASilentStream() throws {
        let server = try ScriptedServer { c in
            guard c.readRequest() != nil else { return }
            c.send("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
            usleep(2_000_000)
        }
        let error = #expect(throws: HTTPClientError.self) {
            try HTTPClient().stream(method: "GET", url: "http://127.0.0.1:\(server.port)/", idleTimeout: 0.2,
                                    onHead: { _ in true }, onData: { _ in true })
        }
        #expect(error?.code == .timeout)
    }

    @Test func cancelBeforeTheStreamStartsEndsItAtOnce() throws {
        let cancellation = HTTPCancellation()
        cancellation.cancel()
        let error = #expect(throws: HTTPClientError.self) {
            try HTTPClient().stream(method: "GET", url: "http://127.0.0.1:1/", idleTimeout: nil, cancellation: cancellation,
                                    onHead: { _ in true }, onData: { _ in true })
        }
        #expect(error?.code == .cancelled)
    }
}
