import CSystem
import EventLoop
import Glibc

/// One SOCK_SEQPACKET message with descriptors attached (SCM_RIGHTS), as HAProxy's `-x` and Envoy's
/// hot restart hand listening sockets to the process replacing them. The kernel duplicates the
/// descriptors into the receiver: both processes then hold the same sockets.
enum DescriptorPassing {
    /// At most this many descriptors per message (the kernel's SCM_MAX_FD is 253).
    static let maxPerMessage = 200
    static let maxText = 1024

    static func send(_ socket: Int32, _ text: String, fds: [Int32] = []) throws(SystemError) {
        precondition(fds.count <= maxPerMessage)
        let payload = Array(text.utf8)
        let data = UnsafeMutableRawBufferPointer.allocate(byteCount: max(payload.count, 1), alignment: 8)
        let space = fds.isEmpty ? 0 : CSystem_CMSG_SPACE(fds.count * MemoryLayout<Int32>.size)
        let control = UnsafeMutableRawBufferPointer.allocate(byteCount: max(space, 1), alignment: 8)
        let iov = UnsafeMutablePointer<iovec>.allocate(capacity: 1)
        defer { data.deallocate(); control.deallocate(); iov.deallocate() }
        data.copyBytes(from: payload)
        control.initializeMemory(as: UInt8.self, repeating: 0)
        iov.pointee = iovec(iov_base: data.baseAddress, iov_len: payload.count)
        var msg = msghdr()
        msg.msg_iov = iov
        msg.msg_iovlen = 1
        if !fds.isEmpty {
            msg.msg_control = control.baseAddress
            msg.msg_controllen = space
            let c = CSystem_CMSG_FIRSTHDR(&msg)!
            c.pointee.cmsg_level = SOL_SOCKET
            c.pointee.cmsg_type = Int32(SCM_RIGHTS)
            c.pointee.cmsg_len = CSystem_CMSG_LEN(fds.count * MemoryLayout<Int32>.size)
            let target = UnsafeMutableRawPointer(CSystem_CMSG_DATA(c)!)
            fds.withUnsafeBytes { target.copyMemory(from: $0.baseAddress!, byteCount: $0.count) }
        }
        let sent = try syscallValue("sendmsg(SCM_RIGHTS)") { sendmsg(socket, &msg, Int32(MSG_NOSIGNAL)) }
        guard sent == payload.count else { throw SystemError("sendmsg (short)", errno: EMSGSIZE) }
    }

    /// The next message and the descriptors attached (close-on-exec); nil at end of stream.
    static func receive(_ socket: Int32) throws(SystemError) -> (text: String, fds: [Int32])? {
        let data = UnsafeMutableRawBufferPointer.allocate(byteCount: maxText, alignment: 8)
        let space = CSystem_CMSG_SPACE(maxPerMessage * MemoryLayout<Int32>.size)
        let control = UnsafeMutableRawBufferPointer.allocate(byteCount: space, alignment: 8)
        let iov = UnsafeMutablePointer<iovec>.allocate(capacity: 1)
        defer { data.deallocate(); control.deallocate(); iov.deallocate() }
        control.initializeMemory(as: UInt8.self, repeating: 0)
        iov.pointee = iovec(iov_base: data.baseAddress, iov_len: maxText)
        var msg = msghdr()
        msg.msg_iov = iov
        msg.msg_iovlen = 1
        msg.msg_control = control.baseAddress
        msg.msg_controllen = space
        let count = try syscallValue("recvmsg(SCM_RIGHTS)") { recvmsg(socket, &msg, Int32(MSG_CMSG_CLOEXEC)) }
        var fds: [Int32] = []
        var c = CSystem_CMSG_FIRSTHDR(&msg)
        while let h = c {
            if h.pointee.cmsg_level == SOL_SOCKET && h.pointee.cmsg_type == Int32(SCM_RIGHTS) {
                let bytes = h.pointee.cmsg_len - CSystem_CMSG_LEN(0)
                let source = UnsafeRawPointer(CSystem_CMSG_DATA(h)!)
                for i in 0..<bytes / MemoryLayout<Int32>.size {
                    fds.append(source.loadUnaligned(fromByteOffset: i * MemoryLayout<Int32>.size, as: Int32.self))
                }
            }
            c = CSystem_CMSG_NXTHDR(&msg, h)
        }
        if msg.msg_flags & Int32(MSG_CTRUNC) != 0 {
            for fd in fds { close(fd) }
            throw SystemError("recvmsg: descriptors cut off", errno: EMSGSIZE)
        }
        if count == 0 && fds.isEmpty { return nil }
        return (String(decoding: UnsafeRawBufferPointer(rebasing: data[..<count]), as: UTF8.self), fds)
    }
}
