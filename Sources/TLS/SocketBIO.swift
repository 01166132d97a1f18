internal import COpenSSL
import EventLoop

/// The BIO a front connection's SSL reads and writes its socket through. It does what OpenSSL's
/// socket BIO does (recv/send through the one syscall gate, retry flags on EAGAIN, end of stream
/// remembered for BIO_eof) and also notes whether each read drained the socket, which the socket
/// BIO could only tell through a callback that OpenSSL would invoke around every BIO operation
/// (a handshake makes a few hundred, nearly all of them controls).
enum SocketBIO {
    /// Made once, then only read (by BIO_new); its functions find their connection in the BIO's
    /// data (set by `attach`).
    nonisolated(unsafe) static let method: OpaquePointer = {
        guard let m = BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK | BIO_TYPE_DESCRIPTOR, "edgeproxy socket") else {
            fatalError("BIO_meth_new failed: out of memory at start-up")
        }
        BIO_meth_set_read(m, socketRead)
        BIO_meth_set_write(m, socketWrite)
        BIO_meth_set_ctrl(m, socketControl)
        return m
    }()

    /// A BIO on `connection`'s socket, given to its SSL (which owns it from then on). Unretained:
    /// the connection owns the SSL, so the BIO never outlives it.
    static func attach(_ connection: TLSConnection, ssl: OpaquePointer) -> Bool {
        guard let bio = BIO_new(method) else { return false }
        BIO_set_data(bio, Unmanaged.passUnretained(connection).toOpaque())
        BIO_set_init(bio, 1)
        SSL_set_bio(ssl, bio, bio)
        return true
    }

    fileprivate static func connection(_ bio: OpaquePointer) -> TLSConnection {
        Unmanaged<TLSConnection>.fromOpaque(BIO_get_data(bio)).takeUnretainedValue()
    }

    fileprivate static var retryFlags: Int32 { BIO_FLAGS_READ | BIO_FLAGS_WRITE | BIO_FLAGS_IO_SPECIAL | BIO_FLAGS_SHOULD_RETRY }
}

/// OpenSSL's contract (as its socket BIO): bytes read; 0 at end of stream (remembered for
/// BIO_CTRL_EOF); -1 with the read-retry flag when nothing is there yet, without it on an error.
private let socketRead: @convention(c) (OpaquePointer?, UnsafeMutablePointer<CChar>?, Int32) -> Int32 = { bio, out, length in
    guard let bio, let out, length > 0 else { return 0 }
    BIO_clear_flags(bio, SocketBIO.retryFlags)
    let connection = SocketBIO.connection(bio)
    do {
        switch try Socket.read(connection.fd, into: UnsafeMutableRawBufferPointer(start: out, count: Int(length))) {
        case .done(0):
            BIO_set_flags(bio, BIO_FLAGS_IN_EOF)
            connection.lastReadWasShort = false
            return 0
        case .done(let n):
            connection.lastReadWasShort = n < Int(length)
            return Int32(n)
        case .wouldBlock:
            BIO_set_flags(bio, BIO_FLAGS_READ | BIO_FLAGS_SHOULD_RETRY)
            connection.lastReadWasShort = false
            return -1
        }
    } catch {
        connection.lastReadWasShort = false
        return -1
    }
}

private let socketWrite: @convention(c) (OpaquePointer?, UnsafePointer<CChar>?, Int32) -> Int32 = { bio, bytes, length in
    guard let bio, let bytes, length > 0 else { return 0 }
    BIO_clear_flags(bio, SocketBIO.retryFlags)
    do {
        switch try Socket.write(SocketBIO.connection(bio).fd, UnsafeRawBufferPointer(start: bytes, count: Int(length))) {
        case .done(let n): return Int32(n)
        case .wouldBlock:
            BIO_set_flags(bio, BIO_FLAGS_WRITE | BIO_FLAGS_SHOULD_RETRY)
            return -1
        }
    } catch {
        return -1
    }
}

/// The controls OpenSSL sends a socket BIO: flush (nothing buffered here), end of stream, the
/// descriptor; anything else (kTLS queries, push/pop under a buffering BIO) is answered 0.
private let socketControl: @convention(c) (OpaquePointer?, Int32, Int, UnsafeMutableRawPointer?) -> Int = { bio, command, _, argument in
    guard let bio else { return 0 }
    switch command {
    case BIO_CTRL_FLUSH, BIO_CTRL_DUP: return 1
    case BIO_CTRL_EOF: return BIO_test_flags(bio, BIO_FLAGS_IN_EOF) != 0 ? 1 : 0
    case BIO_C_GET_FD:
        let fd = SocketBIO.connection(bio).fd
        argument?.assumingMemoryBound(to: Int32.self).pointee = fd
        return Int(fd)
    default: return 0
    }
}
