internal import COpenSSL

/// OpenSSL's process-wide state.
public enum OpenSSLLibrary {
    /// Call first, before anything else uses OpenSSL. Its state then lives as long as the process:
    /// OpenSSL's clean-up at exit would free it while an event loop still calls into it (the
    /// process exits from the control thread once the last connection is closed, and a loop may
    /// still be freeing that connection's SSL), which crashed a draining process.
    public static func initialize() {
        _ = OPENSSL_init_ssl(UInt64(OPENSSL_INIT_NO_ATEXIT), nil)
    }
}
