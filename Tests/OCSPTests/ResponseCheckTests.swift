import Foundation
import TestSupport
import Testing
import TLS

/// `OCSPRequest` against responses made by the `openssl ocsp` responder (offline: `-reqin`),
/// for a test CA whose leaves name a responder in their AIA extension.
@Suite struct ResponseCheckTests {
    /// A CA, leaves and responder certificates made with the openssl CLI in a temporary directory.
    final class PKI {
        let dir: TempDir
        init() throws {
            dir = try TempDir()
            try openssl(["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout", f("ca.key"),
                         "-out", f("ca.pem"), "-days", "30", "-subj", "/CN=OCSP test CA",
                         "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign,digitalSignature"])
            try openssl(["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout", f("other.key"),
                         "-out", f("other.pem"), "-days", "30", "-subj", "/CN=Another CA"])
            try issue("leaf", serial: "1001", extensions: "subjectAltName=DNS:a.test\nauthorityInfoAccess=OCSP;URI:http://127.0.0.1:9/\n")
            try issue("leaf2", serial: "1002", extensions: "subjectAltName=DNS:b.test\nauthorityInfoAccess=OCSP;URI:http://127.0.0.1:9/\n")
            try issue("plain", serial: "1003", extensions: "subjectAltName=DNS:c.test\n")
            try issue("responder", serial: "2001", extensions: "extendedKeyUsage=OCSPSigning\n")
        }

        func openssl(_ arguments: [String]) throws {
            let result = try run("/usr/bin/openssl", arguments)
            guard result.status == 0 else { throw SupportError("openssl \(arguments.joined(separator: " ")): \(result.output)") }
        }

        /// A file in the directory.
        func f(_ name: String) -> String { dir.path(name) }

        func issue(_ name: String, serial: String, extensions: String) throws {
            try extensions.write(toFile: dir.path(name + ".cnf"), atomically: true, encoding: .utf8)
            try openssl(["req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout", f(name + ".key"),
                         "-out", f(name + ".csr"), "-subj", "/CN=\(name)"])
            try openssl(["x509", "-req", "-in", f(name + ".csr"), "-CA", f("ca.pem"), "-CAkey", f("ca.key"), "-set_serial", "0x" + serial,
                         "-days", "10", "-out", f(name + ".pem"), "-extfile", f(name + ".cnf")])
        }

        /// leaf + CA, as a certificate file carries them.
        func chain(_ name: String) throws -> [X509Certificate] {
            let pem = try String(contentsOfFile: dir.path(name + ".pem"), encoding: .utf8) + String(contentsOfFile: dir.path("ca.pem"), encoding: .utf8)
            return try X509Certificate.parseChain(pem: Array(pem.utf8))
        }

        func request(_ name: String) throws -> OCSPRequest {
            let chain = try chain(name)
            return try #require(try OCSPRequest(leaf: chain[0], chain: chain))
        }

        /// The responder's answer to `request`: `index` lines are "V 1001" (valid) or "R 1001" (revoked).
        func respond(to request: OCSPRequest, index: [String], signer: String = "ca", ndays: String = "1") throws -> [UInt8] {
            let lines = index.map { line -> String in
                let parts = line.split(separator: " ")
                return parts[0] == "R" ? "R\t301231235959Z\t240101000000Z,keyCompromise\t\(parts[1])\tunknown\t/CN=\(parts[1])"
                                       : "V\t301231235959Z\t\t\(parts[1])\tunknown\t/CN=\(parts[1])"
            }
            try (lines.joined(separator: "\n") + "\n").write(toFile: dir.path("index.txt"), atomically: true, encoding: .utf8)
            try Data(request.der).write(to: dir.url("req.der"))
            try openssl(["ocsp", "-index", f("index.txt"), "-CA", f("ca.pem"), "-rsigner", f(signer + ".pem"), "-rkey", f(signer + ".key"),
                         "-reqin", f("req.der"), "-respout", f("resp.der"), "-ndays", ndays])
            return [UInt8](try Data(contentsOf: dir.url("resp.der")))
        }
    }

    @Test func aGoodResponseSignedByTheIssuerIsAccepted() throws {
        let pki = try PKI()
        let request = try pki.request("leaf")
        #expect(request.url == "http://127.0.0.1:9/")
        guard case .good(let thisUpdate, let nextUpdate) = request.check(response: try pki.respond(to: request, index: ["V 1001"])) else {
            Issue.record("expected good"); return
        }
        #expect(abs(nextUpdate.timeIntervalSince(thisUpdate) - 86400) < 5)
    }

    @Test func aDelegatedResponderIsAccepted() throws {
        let pki = try PKI()
        let request = try pki.request("leaf")
        guard case .good = request.check(response: try pki.respond(to: request, index: ["V 1001"], signer: "responder")) else {
            Issue.record("expected good from a responder with id-kp-OCSPSigning issued by the CA"); return
        }
    }

    @Test func revokedIsReportedNotAccepted() throws {
        let pki = try PKI()
        let request = try pki.request("leaf")
        guard case .revoked = request.check(response: try pki.respond(to: request, index: ["R 1001"])) else {
            Issue.record("expected revoked"); return
        }
    }

    @Test func anotherIssuersSignatureIsRefused() throws {
        let pki = try PKI()
        let request = try pki.request("leaf")
        let verdict = request.check(response: try pki.respond(to: request, index: ["V 1001"], signer: "other"))
        guard case .refused(let reason) = verdict else { Issue.record("accepted \(verdict)"); return }
        #expect(reason.contains("not signed by the certificate's issuer"))
    }

    @Test func aResponseAboutAnotherCertificateIsRefused() throws {
        let pki = try PKI()
        let other = try pki.request("leaf2")
        let verdict = try pki.request("leaf").check(response: try pki.respond(to: other, index: ["V 1001", "V 1002"]))
        guard case .refused(let reason) = verdict else { Issue.record("accepted \(verdict)"); return }
        #expect(reason.contains("does not cover"))
    }

    @Test func unknownAndGarbageAreRefused() throws {
        let pki = try PKI()
        let request = try pki.request("leaf")
        guard case .refused(let reason) = request.check(response: try pki.respond(to: request, index: ["V 1002"])) else {
            Issue.record("accepted a response saying unknown"); return
        }
        #expect(reason.contains("unknown"))
        guard case .refused = request.check(response: Array("<html>not found</html>".utf8)) else { Issue.record("accepted HTML"); return }
        guard case .refused = request.check(response: []) else { Issue.record("accepted nothing"); return }
    }

    @Test func aResponsePastItsNextUpdateIsRefused() throws {
        let pki = try PKI()
        let request = try pki.request("leaf")
        let response = try pki.respond(to: request, index: ["V 1001"])
        guard case .refused(let reason) = request.check(response: response, now: Date().addingTimeInterval(86400 + 60)) else {
            Issue.record("accepted a stale response"); return
        }
        #expect(reason.contains("stale"))
    }

    @Test func aCertificateWithoutResponderAsksNothing() throws {
        let pki = try PKI()
        let chain = try pki.chain("plain")
        #expect(chain[0].ocspURLs.isEmpty)
        #expect(try OCSPRequest(leaf: chain[0], chain: chain) == nil)
    }

    @Test func aLeafWithoutItsIssuerCannotBeAsked() throws {
        let pki = try PKI()
        let leaf = try pki.chain("leaf")[0]
        #expect(throws: TLSError.self) { try OCSPRequest(leaf: leaf, chain: [leaf]) }
    }
}
