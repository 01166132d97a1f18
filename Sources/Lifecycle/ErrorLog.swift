import EventLoop
import Glibc

/// The error log in a file (`log.error`): the file becomes the process's stderr, so the lines
/// `Log` writes and anything the runtime prints on a crash land there, as nginx does.
public enum ErrorLog {
    /// Opens `path` for appending onto descriptor 2; again on SIGUSR1, after logrotate renamed it.
    public static func redirect(to path: String) throws(SystemError) {
        let fd = try syscallValue("open(\(path))") { open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0o644) }
        defer { close(fd) }
        _ = try syscallValue("dup2(\(path), stderr)") { dup2(fd, 2) }
    }
}
