"""The process around the proxy: systemd notifications and watchdog, socket activation, the binary
upgrade (listening sockets handed to a new process) under load, log reopening and formats."""

from __future__ import annotations

import os
import re
import signal
import socket
import ssl
import subprocess
import threading
import time
import uuid
from collections import Counter

from conftest import _ALL_PROXIES, free_port, standard_tls, wait_for_port
from httpclient import client_context, https_get
from reload_support import Admin, metric, wait_until


def respond(body: str) -> dict:
    return {"respond": {"status": 200, "body": body, "content_type": "text/plain"}}


def config(body: str = "v1\n", **extra) -> dict:
    cfg = {"workers": 2, "tls": standard_tls(), "routes": [respond(body)], "log": {"access": "off"}}
    cfg.update(extra)
    return cfg


# ----- sd_notify ---------------------------------------------------------------------------------

class NotifySocket:
    """The service manager's end: an abstract datagram socket; each message as a dict."""

    def __init__(self):
        self.name = f"edgeproxy-test-{uuid.uuid4().hex}"
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind("\0" + self.name)
        self.messages: list[dict] = []

    @property
    def env(self) -> str:
        return "@" + self.name

    def next(self, want, timeout: float) -> dict:
        """The next message for which `want(message)` holds; others are kept in `messages`."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.sock.settimeout(max(0.01, deadline - time.monotonic()))
            try:
                data = self.sock.recv(4096)
            except TimeoutError:
                break
            m = dict(line.split("=", 1) for line in data.decode().splitlines() if line)
            self.messages.append(m)
            if want(m):
                return m
        raise AssertionError(f"no such message within {timeout}s; got {self.messages}")

    def drain(self, seconds: float) -> list[dict]:
        got = []
        try:
            self.next(lambda m: got.append(m) and False, seconds)
        except AssertionError:
            pass
        return got

    def close(self):
        self.sock.close()


def test_sd_notify_ready_reloading_watchdog_stopping(proxies):
    """READY=1 (with MAINPID) once the port accepts; RELOADING=1 with MONOTONIC_USEC then READY=1
    around SIGHUP and an admin API reload; WATCHDOG=1 at half of WATCHDOG_USEC; STOPPING=1 on SIGTERM."""
    n = NotifySocket()
    try:
        admin = free_port()
        p = proxies(config(admin={"listen": f"127.0.0.1:{admin}"}), start=False)
        p.start(wait=False, env={"NOTIFY_SOCKET": n.env, "WATCHDOG_USEC": "400000"})
        ready = n.next(lambda m: m.get("READY") == "1", 20)
        with socket.create_connection(("127.0.0.1", p.https_port), timeout=1):
            pass  # READY came after the listeners opened: this connect cannot be refused
        assert ready["MAINPID"] == str(p.pid)
        pings = [m for m in n.drain(1.2) if m.get("WATCHDOG") == "1"]
        assert 4 <= len(pings) <= 12, pings  # every 0.2 s

        before = time.monotonic_ns() // 1000
        p.reload()
        reloading = n.next(lambda m: "RELOADING" in m, 10)
        assert reloading["RELOADING"] == "1"
        assert before <= int(reloading["MONOTONIC_USEC"]) <= time.monotonic_ns() // 1000
        n.next(lambda m: m.get("READY") == "1", 10)
        assert Admin(admin).request("POST", "/reload")[0] == 200
        n.next(lambda m: m.get("RELOADING") == "1", 10)
        n.next(lambda m: m.get("READY") == "1", 10)

        p.send_signal(signal.SIGTERM)
        n.next(lambda m: m.get("STOPPING") == "1", 10)
        assert p.wait(15) == 0
    finally:
        n.close()


def test_watchdog_meant_for_another_process_is_not_pinged(proxies):
    """WATCHDOG_PID naming another process: READY still comes, WATCHDOG=1 never does."""
    n = NotifySocket()
    try:
        p = proxies(config(), start=False)
        p.start(wait=False, env={"NOTIFY_SOCKET": n.env, "WATCHDOG_USEC": "200000", "WATCHDOG_PID": "1"})
        n.next(lambda m: m.get("READY") == "1", 20)
        assert not [m for m in n.drain(0.8) if "WATCHDOG" in m]
    finally:
        n.close()


# ----- socket activation -------------------------------------------------------------------------

def listening_socket() -> socket.socket:
    s = socket.socket()
    s.bind(("127.0.0.1", free_port()))
    s.listen(128)
    return s


def start_activated(p, sock: socket.socket, names: str) -> None:
    """As systemd starts a service: the socket as fd 3, LISTEN_PID the service's own pid."""
    p.out, p.err = open(p.stdout_path, "ab"), open(p.stderr_path, "ab")
    env = {**os.environ, "LISTEN_FDS": "1", "LISTEN_FDNAMES": names}
    # close_fds=False: Python's own descriptors are not inheritable anyway, and fd 3 must survive.
    p.proc = subprocess.Popen(["sh", "-c", 'LISTEN_PID=$$ exec "$0" "$@"', str(p.binary), "run", "--config", str(p.config_path)],
                              env=env, cwd=p.dir, stdin=subprocess.DEVNULL, stdout=p.out, stderr=p.err,
                              close_fds=False, preexec_fn=lambda: os.dup2(sock.fileno(), 3))
    _ALL_PROXIES.append(p)


def listeners_on(port: int) -> int:
    """Listening TCP sockets on 127.0.0.1:port, from /proc/net/tcp."""
    want = f"0100007F:{port:04X}"
    lines = open("/proc/net/tcp").read().splitlines()[1:]
    return sum(1 for l in lines if l.split()[1] == want and l.split()[3] == "0A")


def test_socket_activation_serves_on_the_passed_socket(proxies):
    """A socket passed as fd 3 is used instead of binding its address; an address configured but not
    passed is bound as usual. The process holds the very socket the test made; every loop accepts
    from it; SIGTERM drains and exits 0."""
    sock = listening_socket()
    passed = sock.getsockname()[1]
    other = free_port()
    p = proxies(config(listen={"https": [f"127.0.0.1:{passed}", f"127.0.0.1:{other}"], "http": []}), start=False)
    start_activated(p, sock, "https")
    wait_for_port(other, proc=p.proc)
    assert os.stat(f"/proc/{p.pid}/fd/3").st_ino == os.fstat(sock.fileno()).st_ino
    assert listeners_on(passed) == 1, "a second socket was bound next to the passed one"
    sock.close()  # the proxy's copy alone now
    for _ in range(20):
        assert https_get(passed, "/").body == b"v1\n"
    assert https_get(other, "/").body == b"v1\n"
    assert "accepting on 1 inherited socket(s) from systemd" in p.stderr()
    assert p.stop() == 0


def test_socket_activation_refuses_a_socket_not_configured(proxies):
    """A passed socket whose address is in no listen list stops the start, naming it."""
    sock = listening_socket()
    p = proxies(config(), start=False)
    start_activated(p, sock, "extra")
    assert p.wait(20) == 1
    err = p.stderr()
    assert 'systemd socket "extra" (fd 3)' in err and "not in listen.https or listen.http" in err, err
    sock.close()


# ----- binary upgrade ----------------------------------------------------------------------------

class Load(threading.Thread):
    """Requests in a loop until stopped: on one keep-alive connection, or each on a new connection
    (a new TLS handshake). A keep-alive connection that the server closed before any byte of the
    next response is reconnected and the request sent again, as HTTP clients do (RFC 9112 §9.3.1);
    anything else is a failure."""

    def __init__(self, port: int, keepalive: bool):
        super().__init__(daemon=True)
        self.port, self.keepalive = port, keepalive
        self.ctx = client_context()
        self.stopping = threading.Event()
        self.bodies: Counter = Counter()
        self.failures: list[str] = []
        self.retries = 0

    def connect(self) -> ssl.SSLSocket:
        raw = socket.create_connection(("127.0.0.1", self.port), timeout=10)
        return self.ctx.wrap_socket(raw, server_hostname="a.test")

    def exchange(self, s: ssl.SSLSocket) -> tuple[bytes, bool]:
        """One GET; (body, whether the server keeps the connection). b"" when closed before any byte."""
        s.sendall(b"GET / HTTP/1.1\r\nHost: a.test\r\n\r\n")
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = s.recv(65536)
            if not chunk:
                if data:
                    raise AssertionError(f"closed inside a response head: {data!r}")
                return b"", False
            data += chunk
        head, _, body = data.partition(b"\r\n\r\n")
        length = int(re.search(rb"(?i)content-length: *(\d+)", head).group(1))
        while len(body) < length:
            chunk = s.recv(65536)
            if not chunk:
                raise AssertionError("closed inside a response body")
            body += chunk
        assert head.startswith(b"HTTP/1.1 200"), head
        return body, b"connection: close" not in head.lower()

    def run(self):
        s, reused = None, False
        while not self.stopping.is_set():
            try:
                if s is None:
                    s, reused = self.connect(), False
                try:
                    body, keep = self.exchange(s)
                except (ConnectionResetError, BrokenPipeError, ssl.SSLEOFError, ssl.SSLZeroReturnError):
                    body, keep = b"", False
                if not body:
                    if not reused:
                        raise AssertionError("a new connection was closed before its response")
                    self.retries += 1
                    s.close(); s = None
                    continue
                self.bodies[body] += 1
                if not (self.keepalive and keep):
                    s.close(); s = None
                else:
                    reused = True
            except Exception as e:  # noqa: BLE001 - reported by the test
                self.failures.append(f"{type(e).__name__}: {e}")
                if s is not None:
                    s.close()
                s = None
        if s is not None:
            s.close()


def upgrade_socket(p) -> str:
    return str(p.dir / "edgeproxy.sock")


def test_binary_upgrade_under_load_fails_no_request(proxies):
    """Keep-alive requests and new TLS handshakes run in a loop while a new process takes the
    listening sockets over (`run --upgrade-from`) and the old one drains: not one fails, responses
    switch from the old configuration to the new, the old process exits 0. A new process with a
    broken configuration before that exits 1 and leaves the old one serving, untouched."""
    old = proxies(config("v1\n"), name="old")
    assert os.path.exists(upgrade_socket(old))

    broken = proxies(config("v2\n"), start=False, name="broken")
    broken.config_path.write_text(broken.config_text + "workers: [\n")
    broken.start(wait=False, args=["--upgrade-from", upgrade_socket(old)])
    assert broken.wait(20) == 1
    assert "config.yaml" in broken.stderr()
    assert old.alive() and https_get(old.https_port, "/").body == b"v1\n"
    assert "handed" not in old.stderr(), "the broken process got as far as asking for the sockets"

    loads = [Load(old.https_port, keepalive=True), Load(old.https_port, keepalive=True),
             Load(old.https_port, keepalive=False), Load(old.https_port, keepalive=False)]
    for l in loads:
        l.start()
    time.sleep(1.0)
    new = proxies(config("v2\n", listen={"https": [f"127.0.0.1:{old.https_port}"], "http": []}), start=False, name="new")
    new.start(wait=False, args=["--upgrade-from", upgrade_socket(old)])
    assert old.wait(30) == 0, "the old process did not drain and exit"
    time.sleep(1.0)
    for l in loads:
        l.stopping.set()
    for l in loads:
        l.join(15)
    assert new.alive()
    failures = [f for l in loads for f in l.failures]
    assert not failures, failures
    seen = sum((l.bodies for l in loads), Counter())
    assert seen[b"v1\n"] > 20 and seen[b"v2\n"] > 20, seen
    assert sum(l.bodies[b"v2\n"] for l in loads if not l.keepalive) > 5, "no new handshake reached the new process"
    assert "took over from the process" in new.stderr()
    # The new process answers upgrades itself now, on its own socket.
    wait_until(lambda: os.path.exists(upgrade_socket(new)), 10, what="the new process's upgrade socket")
    assert new.stop() == 0


def test_second_process_on_the_same_upgrade_socket_is_refused(proxies):
    """Starting another node with the same upgrade socket (the same configuration, by mistake) fails
    before it binds anything, and says how to take over instead."""
    a = proxies(config(), name="a")
    b = proxies(config(listen={"https": [f"127.0.0.1:{free_port()}"], "http": [], "upgrade_socket": upgrade_socket(a)}),
                start=False, name="b")
    b.start(wait=False)
    assert b.wait(20) == 1
    assert "--upgrade-from" in b.stderr() and "upgrade-socket-in-use" in b.stderr()
    assert a.alive()


# ----- logs --------------------------------------------------------------------------------------

def test_sigusr1_reopens_access_and_error_logs(proxies):
    """logrotate renames both files, then SIGUSR1: later lines go to new files of the same names,
    earlier ones stay in the renamed files."""
    p = proxies(config(log={"access": "access.log", "error": "error.log"}))
    for i in range(3):
        assert https_get(p.https_port, f"/before?{i}").status == 200
    access, error = p.dir / "access.log", p.dir / "error.log"
    wait_until(lambda: access.read_text().count("\n") == 3, 5, what="three access lines")
    assert "serving https" in error.read_text() and p.stderr() == ""
    access.rename(p.dir / "access.log.1")
    error.rename(p.dir / "error.log.1")
    p.send_signal(signal.SIGUSR1)
    wait_until(lambda: access.exists() and error.exists(), 5, what="the log files to be opened again")
    for i in range(2):
        assert https_get(p.https_port, f"/after?{i}").status == 200
    wait_until(lambda: access.read_text().count("\n") == 2, 5, what="two access lines in the new file")
    assert all("/after" in line for line in access.read_text().splitlines())
    assert all("/before" in line for line in (p.dir / "access.log.1").read_text().splitlines())
    assert "reopened" in error.read_text()
    assert p.stop() == 0
    assert "drained" in error.read_text()


def test_access_log_to_a_fifo_nobody_reads_does_not_stall_requests(proxies):
    """The access log is a FIFO whose reader never reads: the writer thread blocks once the pipe is
    full, requests keep being answered quickly, and the lines that do not fit are counted."""
    admin = free_port()
    p = proxies(config(log={"access": "access.fifo", "access_queue": "64k"}, admin={"listen": f"127.0.0.1:{admin}"}),
                start=False)
    fifo = p.dir / "access.fifo"
    os.mkfifo(fifo)
    reader = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)  # held open, never read
    try:
        p.start()
        slowest, errors = [0.0], []

        def client():
            try:
                with p.conn("a.test") as c:
                    for i in range(300):
                        t0 = time.monotonic()
                        assert c.request("GET", f"/{'x' * 200}?{i}").status == 200
                        slowest[0] = max(slowest[0], time.monotonic() - t0)
            except Exception as e:  # noqa: BLE001
                errors.append(e)

        threads = [threading.Thread(target=client) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        assert not errors, errors
        assert slowest[0] < 2.0, f"a request took {slowest[0]:.2f}s"
        dropped = wait_until(lambda: metric(Admin(admin).metrics(), "edgeproxy_access_log_dropped_total") or None, 5,
                             what="dropped lines to be counted")
        assert 0 < dropped < 1200
    finally:
        os.close(reader)


COMBINED = re.compile(r'^(?P<addr>\S+) - (?P<user>\S+) \[(?P<time>\d{2}/\w{3}/\d{4}:\d{2}:\d{2}:\d{2} [+-]\d{4})\] '
                      r'"(?P<request>[^"]*)" (?P<status>\d{3}) (?P<bytes>\d+) "(?P<referer>[^"]*)" "(?P<agent>[^"]*)"$')


def test_combined_log_format_parses_as_nginx_combined(proxies):
    """log.format: combined writes nginx's combined lines (HTTP/1.1 and HTTP/2), quotes escaped."""
    p = proxies(config(log={"access": "access.log", "format": "combined"}))
    with p.conn("a.test") as c:
        r = c.request("GET", "/page?q=1", headers=[("Referer", "https://ref.test/x"), ("User-Agent", 'agent "quoted" 1.0')])
        assert r.status == 200
    r = subprocess.run(["curl", "-sk", "--http2", "-A", "h2-agent", "--resolve", f"a.test:{p.https_port}:127.0.0.1",
                        f"https://a.test:{p.https_port}/two"], capture_output=True, timeout=30)
    assert r.returncode == 0 and r.stdout == b"v1\n"
    assert p.stop() == 0
    lines = (p.dir / "access.log").read_text().splitlines()
    assert len(lines) == 2, lines
    fields = [COMBINED.match(line) for line in lines]
    assert all(fields), lines
    one, two = sorted(fields, key=lambda m: m["request"])
    assert one["addr"] == "127.0.0.1" and one["user"] == "-"
    assert one["request"] == "GET /page?q=1 HTTP/1.1" and one["status"] == "200" and int(one["bytes"]) > 0
    assert one["referer"] == "https://ref.test/x" and one["agent"] == r"agent \x22quoted\x22 1.0"
    assert two["request"] == "GET /two HTTP/2.0" and two["referer"] == "-" and two["agent"] == "h2-agent"


def test_log_configuration_errors_name_the_position(edgeproxy_bin, tmp_path):
    """log.format takes json or combined; the error says where and what is allowed."""
    cfg = tmp_path / "config.yaml"
    cfg.write_text('tls:\n  self_signed: [localhost]\nlog:\n  format: apache\n')
    r = subprocess.run([str(edgeproxy_bin), "check", "--config", str(cfg)], capture_output=True, text=True, timeout=30)
    assert r.returncode == 1
    assert re.search(r'config\.yaml:4:11: expected one of "json" or "combined", got "apache"', r.stderr), r.stderr
