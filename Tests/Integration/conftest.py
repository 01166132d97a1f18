"""Fixtures for the edgeproxy end-to-end tests.

Everything runs on 127.0.0.1: the binary under test (env EDGEPROXY_BIN, default
<repo>/.build/debug/edgeproxy), origin servers (origin.py, one subprocess each), and real clients.

Main pieces:
  free_port()            an unused loopback TCP port
  pki (session)          test CA + the standard leaves (see STANDARD_LEAVES)
  Proxy                  one edgeproxy process: config, start/ready, url(), pid, rss_kb(), reload(),
                         stop() -> exit code, stdout/stderr capture, access_log()
  OriginProc             one origin.py subprocess: .addr, .stats(), .reset(), .stop()
  proxies / origins      factories (function scope) that clean up after each test
  module_proxies / module_origins   the same, shared by a module
On a failing test the stderr/stdout tails of the proxies involved are attached to the report.
"""

from __future__ import annotations

import json
import os
import select
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from httpclient import HTTPConn  # noqa: E402
from pki import TestPKI  # noqa: E402

REPO = HERE.parents[1]
READY_TIMEOUT = 20.0

_ALL_PROXIES: list["Proxy"] = []

# `make sanitize` names the sanitizer its binaries carry. AddressSanitizer holds freed memory in
# quarantine (quarantine_size_mb) and maps shadow memory: every bound on the proxy's RSS allows this
# much more on such a build (the same bounds hold exactly on the builds that ship).
SANITIZER = os.environ.get("EDGEPROXY_SANITIZER", "")
RSS_SLACK_KB = 48 * 1024 if SANITIZER == "address" else 0


# ----- ports ----------------------------------------------------------------------------------

_handed_out: set[int] = set()


def free_port(host: str = "127.0.0.1") -> int:
    """A loopback port nobody listens on right now (and not handed out before in this run)."""
    for _ in range(200):
        fam = socket.AF_INET6 if ":" in host else socket.AF_INET
        with socket.socket(fam, socket.SOCK_STREAM) as s:
            s.bind((host, 0))
            port = s.getsockname()[1]
        if port not in _handed_out:
            _handed_out.add(port)
            return port
    raise RuntimeError("no free port")


def wait_for_port(port: int, host: str = "127.0.0.1", timeout: float = READY_TIMEOUT, proc=None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"process exited with {proc.returncode} before listening on {port}")
        try:
            with socket.create_connection((host, port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(f"nothing accepted on {host}:{port} within {timeout}s")


def port_refuses(port: int, host: str = "127.0.0.1") -> bool:
    """True when a TCP connect to host:port is refused (nobody listening)."""
    try:
        with socket.create_connection((host, port), timeout=1.0):
            return False
    except ConnectionRefusedError:
        return True
    except OSError:
        return False


# ----- YAML -----------------------------------------------------------------------------------

def _scalar(v) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if v is None:
        return "null"
    if isinstance(v, (int, float)):
        return str(v)
    if isinstance(v, list):            # flow sequence, nested lists included
        return "[" + ", ".join(_scalar(x) for x in v) + "]"
    return json.dumps(str(v))          # double-quoted YAML scalar


def to_yaml(obj, indent: int = 0) -> str:
    """Block-style YAML for dicts; flow style for lists of scalars. Enough for our configs."""
    pad = "  " * indent
    out = []
    if isinstance(obj, dict):
        for k, v in obj.items():
            if isinstance(v, dict):
                out.append(f"{pad}{k}:" + (" {}" if not v else ""))
                if v:
                    out.append(to_yaml(v, indent + 1))
            elif isinstance(v, list) and any(isinstance(x, dict) for x in v):
                out.append(f"{pad}{k}:")
                out.append(to_yaml(v, indent + 1))
            elif isinstance(v, list):
                out.append(f"{pad}{k}: [" + ", ".join(_scalar(x) for x in v) + "]")
            else:
                out.append(f"{pad}{k}: {_scalar(v)}")
    elif isinstance(obj, list):
        for item in obj:
            if isinstance(item, dict):
                body = to_yaml(item, indent + 1).splitlines()
                first = body[0].lstrip()
                out.append(f"{pad}- {first}")
                out += body[1:]
            else:
                out.append(f"{pad}- {_scalar(item)}")
    else:
        out.append(pad + _scalar(obj))
    return "\n".join(out)


# ----- PKI ------------------------------------------------------------------------------------

# name -> (SANs, key type, how it is written into the proxy's directory)
STANDARD_LEAVES = {
    "a_ec": (["a.test"], "ec"),
    "a_rsa": (["a.test"], "rsa"),
    "b": (["b.test"], "ec"),
    "c": (["c.test"], "ec"),
    "wild": (["*.wild.test"], "ec"),
    "default": (["default.test"], "ec"),
}


class PKI(TestPKI):
    __test__ = False

    def __init__(self, directory: Path):
        super().__init__(directory)
        self.leaves = {k: self.issue(names, kt) for k, (names, kt) in STANDARD_LEAVES.items()}

    def write_standard(self, workdir: Path) -> None:
        """certs/  a.test.crt+key (ECDSA), a.test-rsa.crt+key (RSA), b.test.pem (chain+key in one),
        wild.crt+key (*.wild.test), default.crt+key;  extra/c.test.crt+key (for tls.certificates)."""
        certs = workdir / "certs"
        self.leaves["a_ec"].write(certs, "a.test")
        self.leaves["a_rsa"].write(certs, "a.test-rsa")
        self.leaves["b"].write(certs, "b.test", combined=True)
        self.leaves["wild"].write(certs, "wild")
        self.leaves["default"].write(certs, "default")
        self.leaves["c"].write(workdir / "extra", "c.test")


@pytest.fixture(scope="session")
def pki(tmp_path_factory) -> PKI:
    return PKI(tmp_path_factory.mktemp("pki"))


def standard_tls(**overrides) -> dict:
    """The `tls:` block matching PKI.write_standard()."""
    t = {"certificate_dir": "certs",
         "certificates": [{"cert": "extra/c.test.crt", "key": "extra/c.test.key"}],
         "default": "default.test"}
    t.update(overrides)
    return t


# ----- the binary -----------------------------------------------------------------------------

def edgeproxy_path() -> Path:
    return Path(os.environ.get("EDGEPROXY_BIN") or REPO / ".build" / "debug" / "edgeproxy")


@pytest.fixture(scope="session")
def edgeproxy_bin() -> Path:
    p = edgeproxy_path()
    if not p.is_file() or not os.access(p, os.X_OK):
        pytest.fail(f"edgeproxy binary not found or not executable at {p} "
                    f"(build it with `swift build`, or point EDGEPROXY_BIN at it)", pytrace=False)
    return p


@pytest.fixture(scope="session")
def release_bin() -> Path:
    """The release binary, as it ships (`make release`)."""
    p = Path(os.environ.get("EDGEPROXY_RELEASE_BIN") or REPO / ".build" / "release" / "edgeproxy")
    if not p.is_file() or not os.access(p, os.X_OK):
        pytest.fail(f"release binary not found at {p} (build it with `make release`, or set EDGEPROXY_RELEASE_BIN)",
                    pytrace=False)
    return p


def run_check(binary: Path, config: Path, timeout: float = 30) -> subprocess.CompletedProcess:
    return subprocess.run([str(binary), "check", "--config", str(config)], capture_output=True,
                          text=True, timeout=timeout)


class Proxy:
    """One `edgeproxy run` process in its own directory (config.yaml, certs/, logs)."""

    def __init__(self, binary: Path, workdir: Path, config: dict | str, pki: PKI | None = None,
                 standard_certs: bool = True):
        self.binary = Path(binary)
        self.dir = Path(workdir)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.config_path = self.dir / "config.yaml"
        self.stdout_path = self.dir / "stdout.log"
        self.stderr_path = self.dir / "stderr.log"
        self.proc: subprocess.Popen | None = None
        self.stderr_checked = 0            # bytes of stderr already looked at for crash reports
        self.crash_checked_final = False
        self.started_at = 0.0
        self.stopped_at: float | None = None
        if pki is not None and standard_certs:
            pki.write_standard(self.dir)
        self.https_port = self.http_port = self.admin_port = None
        self.https_host = "127.0.0.1"
        self.write_config(config)

    # -- configuration --
    def write_config(self, config: dict | str) -> None:
        """Write config.yaml. A dict gets a free https port when `listen.https` is not given, and
        `listen.http: []` (off) when `listen.http` is not given."""
        if isinstance(config, dict):
            config = json.loads(json.dumps(config))        # deep copy
            listen = config.setdefault("listen", {})
            if "https" not in listen:
                port = self.https_port or free_port()
                listen["https"] = [f"127.0.0.1:{port}"]
            # never fall back to a default plain listener (it could bind a wildcard address / a fixed port)
            listen.setdefault("http", [])
            host, _, port = listen["https"][0].rpartition(":")
            self.https_port = int(port)
            self.https_host = host.strip("[]") if host not in ("", "*") else "127.0.0.1"
            if listen.get("http"):
                self.http_port = int(listen["http"][0].rsplit(":", 1)[1])
            # The admin API binds after the listeners: start() waits for it too.
            admin_listen = (config.get("admin") or {}).get("listen")
            self.admin_port = int(admin_listen.rsplit(":", 1)[1]) if admin_listen else None
            config.setdefault("log", {}).setdefault("level", "info")
            text = to_yaml(config) + "\n"
        else:
            text = config
        self.config_text = text
        self.config_path.write_text(text)

    # -- process --
    def start(self, wait: bool = True, timeout: float = READY_TIMEOUT, args: list[str] = (),
              env: dict | None = None) -> "Proxy":
        """`args` follow `run --config FILE`; `env` is added to this process's environment."""
        self.out = open(self.stdout_path, "ab")
        self.err = open(self.stderr_path, "ab")
        self.proc = subprocess.Popen([str(self.binary), "run", "--config", str(self.config_path), *args],
                                     stdin=subprocess.DEVNULL, stdout=self.out, stderr=self.err,
                                     cwd=self.dir, env={**os.environ, **env} if env else None)
        self.started_at = time.time()
        _ALL_PROXIES.append(self)
        if wait:
            try:
                wait_for_port(self.https_port, host=self.https_host, timeout=timeout, proc=self.proc)
                if self.admin_port:
                    wait_for_port(self.admin_port, timeout=timeout, proc=self.proc)
            except (RuntimeError, TimeoutError) as e:
                self.kill()
                pytest.fail(f"edgeproxy did not become ready: {e}\n--- config ---\n{self.config_text}"
                            f"\n--- stderr ---\n{self.stderr()[-4000:]}", pytrace=False)
        return self

    @property
    def pid(self) -> int:
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def url(self, path: str = "/", host: str = "a.test") -> str:
        return f"https://{host}:{self.https_port}{path}"

    def resolve(self, *hosts: str) -> list[tuple[str, int]]:
        """curl --resolve pairs pinning these names to this proxy's https port."""
        return [(h, self.https_port) for h in (hosts or ("a.test",))]

    def rss_kb(self) -> int:
        """Resident set size (VmRSS) of the proxy process, in kB."""
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
        status = Path(f"/proc/{self.pid}/status").read_text()
        state = next((l for l in status.splitlines() if l.startswith("State:")), "State: ?")
        raise RuntimeError(f"no VmRSS for the proxy (pid {self.pid}, {state.strip()}, exit code {self.proc.poll()}):"
                           f" it has exited; stderr tail:\n{self.stderr()[-3000:]}")

    def send_signal(self, sig: int) -> None:
        self.proc.send_signal(sig)

    def reload(self) -> None:
        """SIGHUP: reload configuration and certificates."""
        self.send_signal(signal.SIGHUP)

    def wait(self, timeout: float) -> int | None:
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            return None

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 40.0) -> int:
        """Send `sig` (graceful by default), wait, and return the exit code (SIGKILL after timeout)."""
        if self.proc is None:
            return 0
        if self.proc.poll() is None:
            try:
                self.proc.send_signal(sig)
            except ProcessLookupError:
                pass
            if self.wait(timeout) is None:
                self.kill()
        self._closed()
        return self.proc.returncode

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
        self._closed()

    def _closed(self) -> None:
        if self.stopped_at is None:
            self.stopped_at = time.time()
        for f in (getattr(self, "out", None), getattr(self, "err", None)):
            if f and not f.closed:
                f.close()

    # -- output --
    def stdout(self) -> str:
        return self.stdout_path.read_text("utf-8", "replace") if self.stdout_path.exists() else ""

    def stderr(self) -> str:
        return self.stderr_path.read_text("utf-8", "replace") if self.stderr_path.exists() else ""

    def access_log(self, path: Path | None = None) -> list[dict]:
        """Access-log records (stdout unless `path`); every non-empty line must be a JSON object."""
        text = path.read_text() if path else self.stdout()
        recs = []
        for line in text.splitlines():
            if line.strip():
                try:
                    recs.append(json.loads(line))
                except json.JSONDecodeError:
                    raise AssertionError(f"access log line is not JSON: {line!r}")
        return recs

    # -- convenience --
    def conn(self, sni: str | None = "a.test", **kw) -> HTTPConn:
        kw.setdefault("host", self.https_host)
        return HTTPConn.tls(self.https_port, sni, **kw)


class ProxyFactory:
    def __init__(self, binary: Path, base: Path, pki: PKI):
        self.binary, self.base, self.pki = binary, base, pki
        self.items: list[Proxy] = []

    def __call__(self, config: dict | str, start: bool = True, standard_certs: bool = True,
                 name: str | None = None) -> Proxy:
        d = self.base / (name or f"proxy{len(self.items)}")
        p = Proxy(self.binary, d, config, self.pki, standard_certs)
        self.items.append(p)
        if start:
            p.start()
        return p

    def close(self) -> None:
        for p in self.items:
            try:
                p.stop(signal.SIGTERM, timeout=10)
            except Exception:
                p.kill()


@pytest.fixture
def proxies(edgeproxy_bin, pki, tmp_path):
    f = ProxyFactory(edgeproxy_bin, tmp_path, pki)
    yield f
    f.close()


@pytest.fixture(scope="module")
def module_proxies(edgeproxy_bin, pki, tmp_path_factory):
    f = ProxyFactory(edgeproxy_bin, tmp_path_factory.mktemp("proxies"), pki)
    yield f
    f.close()


# ----- origins --------------------------------------------------------------------------------

class OriginProc:
    """origin.py in a subprocess. `.addr` is "127.0.0.1:PORT" for upstream server lists; `port`
    starts it on a given port (e.g. again where a stopped one was)."""

    def __init__(self, name: str = "origin", host: str = "127.0.0.1", port: int = 0):
        self.name = name
        self.host = host
        self.proc = subprocess.Popen([sys.executable, str(HERE / "origin.py"), "--name", name, "--host", host,
                                      "--port", str(port), "--exit-on-stdin-eof"],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        ready, _, _ = select.select([self.proc.stdout], [], [], 15)
        line = self.proc.stdout.readline().decode() if ready else ""
        if not line.startswith("READY"):
            self.stop()
            raise RuntimeError(f"origin {name} did not start: {line!r} {self.proc.stderr.read()!r}")
        _, port, ctl = line.split()
        self.port, self.control_port = int(port), int(ctl)

    @property
    def addr(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"

    def _control(self, path: str) -> bytes:
        with HTTPConn.plain(self.control_port, self.host) as c:
            r = c.request("GET", path, host="control", headers=[("Connection", "close")])
            return r.body

    def stats(self) -> dict:
        """connections (accepted), active, requests (complete), heads, completed, ws_sessions."""
        return json.loads(self._control("/stats"))

    def reset(self) -> None:
        self._control("/reset")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        for f in (self.proc.stdin, self.proc.stdout, self.proc.stderr):
            try:
                f.close()
            except OSError:
                pass


class OriginFactory:
    def __init__(self):
        self.items: list[OriginProc] = []

    def __call__(self, name: str = "origin", host: str = "127.0.0.1", port: int = 0) -> OriginProc:
        o = OriginProc(name, host, port)
        self.items.append(o)
        return o

    def close(self) -> None:
        for o in self.items:
            o.stop()


@pytest.fixture
def origins():
    f = OriginFactory()
    yield f
    f.close()


@pytest.fixture(scope="module")
def module_origins():
    f = OriginFactory()
    yield f
    f.close()


# ----- crashes and sanitizer reports -------------------------------------------------------------

# What the Swift runtime prints on a trap or crash, and what the sanitizers print (`make sanitize`
# runs this suite on instrumented builds): any of them in a proxy's stderr fails the test that ran it.
CRASH_MARKS = ("Fatal error:", "Program crashed", "ERROR: AddressSanitizer", "ERROR: LeakSanitizer",
               "WARNING: ThreadSanitizer", "runtime error:")


def new_crash_reports(p: "Proxy") -> str | None:
    """Crash or sanitizer output `p` wrote since the last look, with what follows it."""
    if not p.stderr_path.exists():
        return None
    with open(p.stderr_path, "rb") as f:
        f.seek(p.stderr_checked)
        raw = f.read()
    p.stderr_checked += len(raw)
    text = raw.decode("utf-8", "replace")
    hits = [text.index(m) for m in CRASH_MARKS if m in text]
    return text[min(hits):][:8000] if hits else None


@pytest.fixture(autouse=True)
def no_crashed_proxies():
    """After each test (its proxies stopped by then), every proxy's new stderr is free of crashes
    and sanitizer reports; proxies that are gone and checked are not read again."""
    yield
    found = []
    for p in _ALL_PROXIES:
        if p.crash_checked_final:
            continue
        report = new_crash_reports(p)
        if not p.alive():
            p.crash_checked_final = True
        if report:
            found.append(f"edgeproxy {p.dir.name} (pid {p.proc.pid if p.proc else '?'}):\n{report}")
    if found:
        pytest.fail("a proxy crashed or a sanitizer reported:\n" + "\n".join(found), pytrace=False)


# ----- reporting ------------------------------------------------------------------------------

@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    if rep.failed and call.when in ("call", "setup"):
        started = getattr(item, "_edgeproxy_t0", 0)
        for p in _ALL_PROXIES:
            if p.alive() or (p.stopped_at or 0) >= started:
                err, out = p.stderr(), p.stdout()
                rep.sections.append((f"edgeproxy {p.dir.name} (pid {p.proc.pid}) stderr tail", err[-6000:] or "(empty)"))
                rep.sections.append((f"edgeproxy {p.dir.name} stdout tail", out[-3000:] or "(empty)"))
                rep.sections.append((f"edgeproxy {p.dir.name} config", p.config_text))


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item):
    item._edgeproxy_t0 = time.time()
