internal import COpenSSL
import Foundation
import Synchronization

/// A verified OCSP response ready to staple, and when it stops being true.
public struct OCSPStaple: Sendable {
    public let der: [UInt8]
    public let nextUpdate: Date
    public init(der: [UInt8], nextUpdate: Date) { self.der = der; self.nextUpdate = nextUpdate }
}

extension CertifiedKey {
    /// The staple handshakes send from now on (nil: none). Set by the OCSP stapler, off the loops.
    public func setStaple(_ staple: OCSPStaple?) {
        stapled.withLock { $0 = staple }
    }

    /// The staple, unless its nextUpdate has passed: a stale response is never sent, even when
    /// the stapler is late in dropping it.
    public func currentStaple(now: Date = Date()) -> OCSPStaple? {
        guard let staple = stapled.withLock({ $0 }), staple.nextUpdate > now else { return nil }
        return staple
    }

    /// From the ClientHello callback, after `install`: a client that asked for OCSP status
    /// (status_request, RFC 6066 §8) gets a copy of the current staple; one that did not costs an
    /// extension look-up. The lock is held for a reference copy only, never across OpenSSL calls.
    func staple(on ssl: OpaquePointer) {
        var data: UnsafePointer<UInt8>?
        var len = 0
        guard SSL_client_hello_get0_ext(ssl, statusRequestExtension, &data, &len) == 1, let data, len > 0,
              data[0] == statusTypeOCSP, let staple = currentStaple() else { return }
        // OpenSSL takes ownership of an OPENSSL_malloc'd copy and frees it with the connection.
        guard let copy = COpenSSL_malloc(staple.der.count) else { return }
        staple.der.withUnsafeBytes { copy.copyMemory(from: $0.baseAddress!, byteCount: $0.count) }
        if COpenSSL_SSL_set_tlsext_status_ocsp_resp(ssl, copy.assumingMemoryBound(to: UInt8.self), staple.der.count) != 1 {
            COpenSSL_free(copy)
            ERR_clear_error()
        }
    }
}

private let statusRequestExtension: UInt32 = 5  // RFC 6066 §8
private let statusTypeOCSP: UInt8 = 1

/// OpenSSL asks this, for clients that sent status_request, whether to answer; it sends the
/// response only when `staple(on:)` set one, so "yes" is always the answer.
let ocspStatusCallback: @convention(c) (OpaquePointer?, UnsafeMutableRawPointer?) -> Int32 = { _, _ in
    COpenSSL_TLSEXT_ERR_OK()
}
