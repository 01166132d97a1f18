"""A real HAProxy 2.6 (Debian `haproxy`) TCP load balancer on loopback, in front of several backends.

    lb = LoadBalancer(tmp_path / "lb", {"http": (http_port, ["127.0.0.1:8001", "127.0.0.1:8002"]),
                                        "tls":  (tls_port,  ["127.0.0.1:8443", "127.0.0.1:9443"])})
    ...
    lb.set_backends("tls", ["127.0.0.1:9443"])     # rewrite + reload (old connections finish on the old worker)
    lb.server_states("tls")                        # {"127.0.0.1:9443": "UP"} from the runtime API
    lb.stop()

The use it was written for: Pebble's validation authority connects to one HTTP port and one TLS port;
HAProxy on those ports forwards (plain TCP, TLS untouched) to several edgeproxy nodes' :80 and :443.

`mode tcp`, `balance roundrobin` by default; every server is TCP-checked every 200 ms and dropped after one
failed check (`fall 1 rise 1`); a refused connect is retried once on another server (`retries 1`,
`option redispatch 1`), so a dead node costs no failed connection even before its check fails.
HAProxy runs in the foreground in master-worker mode (`-W -db`); `set_backends` reloads with SIGUSR2.
Runtime API (`show stat`, ...) on a loopback TCP port: `.stats_port`, `.runtime(cmd)`. Log: workdir/haproxy.log.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from pathlib import Path

from conftest import free_port

HAPROXY = "/usr/sbin/haproxy"
START_TIMEOUT = 10.0


class LoadBalancerError(RuntimeError):
    pass


def require_binary() -> None:
    """Raise (never skip) naming the Debian package when haproxy is missing."""
    if not (os.path.isfile(HAPROXY) and os.access(HAPROXY, os.X_OK)):
        raise LoadBalancerError(f"{HAPROXY} not found: install the Debian package haproxy "
                                f"(apt-get install -y haproxy; tested with 2.6)")


def _listening(port: int) -> bool:
    """Whether some socket LISTENs on 127.0.0.1:port (read from /proc: no connection is made, so no
    backend ever sees a probe)."""
    want = f"0100007F:{port:04X}"
    try:
        with open("/proc/net/tcp") as f:
            next(f)
            for line in f:
                parts = line.split()
                if parts[1] == want and parts[3] == "0A":
                    return True
    except OSError:
        pass
    return False


class LoadBalancer:
    """frontends: {name: (listen_port, ["host:port", ...])}; listens on 127.0.0.1 only."""

    def __init__(self, workdir: Path, frontends: dict[str, tuple[int, list[str]]], balance: str = "roundrobin",
                 check_inter_ms: int | None = 200, maxconn: int = 2000, timeout: float = START_TIMEOUT,
                 send_proxy: str | None = None):
        """`send_proxy`: "v1" or "v2" prefixes every connection to a backend with a PROXY header."""
        require_binary()
        self.dir = Path(workdir)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.frontends = {name: (int(port), list(backends)) for name, (port, backends) in frontends.items()}
        self.balance, self.check_inter_ms, self.maxconn = balance, check_inter_ms, maxconn
        self.send_proxy = {None: "", "v1": " send-proxy", "v2": " send-proxy-v2"}[send_proxy]
        self.config_path = self.dir / "haproxy.cfg"
        self.log_path = self.dir / "haproxy.log"
        self.stats_port = free_port()
        self.proc: subprocess.Popen | None = None
        self.generation = 0
        try:
            self._write_config()
            self.start(timeout)
        except BaseException:
            self.stop()           # the caller never gets this object: stop what was started
            raise

    # ----- configuration -----------------------------------------------------------------------

    def config_text(self) -> str:
        lines = ["global",
                 f"    maxconn {self.maxconn}",
                 f"    stats socket ipv4@127.0.0.1:{self.stats_port} level admin",
                 "    log stderr format raw local0 info",
                 f"    # generation {self.generation}",
                 "",
                 "defaults",
                 "    mode tcp",
                 "    log global",
                 "    option tcplog",
                 "    timeout connect 5s",
                 "    timeout client 30s",
                 "    timeout server 30s",
                 "    retries 1",
                 "    option redispatch 1",
                 ""]
        for name, (port, backends) in self.frontends.items():
            lines += [f"frontend {name}",
                      f"    bind 127.0.0.1:{port}",
                      f"    default_backend be_{name}",
                      "",
                      f"backend be_{name}",
                      f"    balance {self.balance}"]
            for i, addr in enumerate(backends):
                # check_inter_ms=None: no health checks; a refused connect is redispatched instead.
                check = f" check inter {self.check_inter_ms} fall 1 rise 1" if self.check_inter_ms else ""
                lines.append(f"    server s{i}_{addr.replace(':', '_').replace('[', '').replace(']', '')} {addr}{check}{self.send_proxy}")
            lines.append("")
        return "\n".join(lines)

    def _write_config(self) -> None:
        text = self.config_text()
        tmp = self.config_path.with_name("haproxy.cfg.new")
        tmp.write_text(text)
        r = subprocess.run([HAPROXY, "-c", "-q", "-f", str(tmp)], capture_output=True, text=True, timeout=15)
        if r.returncode != 0:
            raise LoadBalancerError(f"haproxy rejected the configuration:\n{r.stdout}{r.stderr}\n--- config ---\n{text}")
        os.replace(tmp, self.config_path)

    # ----- process -----------------------------------------------------------------------------

    def start(self, timeout: float = START_TIMEOUT) -> None:
        """Start haproxy (foreground master + one worker) and wait until every frontend port listens
        and the worker answers the runtime API."""
        if self.alive():
            raise LoadBalancerError("haproxy is already running")
        with open(self.log_path, "ab") as log:
            # own session: stop() can reach the worker too (by this process group) if the master hangs
            self.proc = subprocess.Popen([HAPROXY, "-W", "-db", "-f", str(self.config_path)],
                                         stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True)
        self._wait_ready(timeout)

    def _wait_ready(self, timeout: float, expect: dict[str, list[str]] | None = None) -> None:
        deadline = time.monotonic() + timeout
        while True:
            if not self.alive():
                raise LoadBalancerError(f"haproxy exited with {self.proc.returncode}\n{self.describe()}")
            ports_ok = all(_listening(port) for port, _ in self.frontends.values())
            if ports_ok:
                try:
                    if expect is None:
                        if "Name: HAProxy" in self.runtime("show info", timeout=1):
                            return
                    elif all(set(self.server_states(f)) == set(b) for f, b in expect.items()):
                        return
                except OSError:
                    pass
            if time.monotonic() >= deadline:
                raise LoadBalancerError(f"haproxy not ready within {timeout}s "
                                        f"(frontend ports {[p for p, _ in self.frontends.values()]})\n{self.describe()}")
            time.sleep(0.05)

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def set_backends(self, frontend: str, backends: list[str], reload: bool = True,
                     timeout: float = START_TIMEOUT) -> None:
        """Replace `frontend`'s servers: rewrite the config, then reload (SIGUSR2 to the master: a new
        worker takes the listeners, the old one finishes its connections) or, with reload=False, restart.
        Returns once the runtime API lists exactly the new servers."""
        port, _ = self.frontends[frontend]
        self.frontends[frontend] = (port, list(backends))
        self.generation += 1
        self._write_config()
        if reload and self.alive():
            self.proc.send_signal(signal.SIGUSR2)
            self._wait_ready(timeout, expect={frontend: list(backends)})
        else:
            self.stop()
            self.start(timeout)

    def stop(self, timeout: float = 5.0) -> None:
        """SIGTERM the master (it stops its workers), wait; SIGKILL the process group after `timeout`."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            try:
                self.proc.send_signal(signal.SIGTERM)
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                pass
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)     # leftovers (a worker of an interrupted reload)
        except (ProcessLookupError, PermissionError):
            pass
        if self.proc.poll() is None:
            self.proc.wait(5)
        # A killed worker is not our child: wait until the whole group is gone (and its ports free).
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            try:
                os.killpg(self.proc.pid, 0)
            except (ProcessLookupError, PermissionError):
                break
            time.sleep(0.02)

    def __enter__(self) -> "LoadBalancer":
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    # ----- runtime API -------------------------------------------------------------------------

    def runtime(self, command: str, timeout: float = 3.0) -> str:
        """One runtime-API command (e.g. "show stat", "disable server be_tls/s0_...") -> its output."""
        with socket.create_connection(("127.0.0.1", self.stats_port), timeout=timeout) as s:
            s.sendall(command.encode() + b"\n")
            data = b""
            while chunk := s.recv(65536):
                data += chunk
        return data.decode("utf-8", "replace")

    def server_states(self, frontend: str) -> dict[str, str]:
        """{"host:port": "UP" | "DOWN" | "MAINT" | ...} for the servers behind `frontend`, per HAProxy's checks."""
        out = self.runtime("show stat")
        header = out.lstrip("# ").splitlines()[0].split(",")
        col = {n: i for i, n in enumerate(header)}
        states = {}
        for line in out.splitlines()[1:]:
            f = line.split(",")
            if len(f) < len(header) or f[col["pxname"]] != f"be_{frontend}" or f[col["svname"]] in ("BACKEND", "FRONTEND"):
                continue
            states[f[col["addr"]]] = f[col["status"]].split(" ")[0]
        return states

    def describe(self) -> str:
        try:
            log = self.log_path.read_text("utf-8", "replace")[-3000:]
        except OSError:
            log = "(no log)"
        cfg = self.config_path.read_text() if self.config_path.exists() else "(no config)"
        return f"--- {self.config_path} ---\n{cfg}\n--- {self.log_path} tail ---\n{log}"
