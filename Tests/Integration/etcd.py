"""A real etcd 3.4 cluster (Debian `etcd-server` + `etcd-client`) on free loopback ports.

    with EtcdCluster(tmp_path / "etcd", members=3) as etcd:     # healthy when the constructor returns
        etcd.put("/edgeproxy/certs/a.test", pem_bytes)
        etcd.get_prefix("/edgeproxy/")                            # {key: raw bytes}
        etcd.stop_member(0); ...; etcd.start_member(0)            # indices are 0-based: member i is "m{i+1}"

    EtcdCluster(dir, tls=True)                  # generated CA, one server cert for client + peer traffic,
                                                # client-cert auth required: .ca_file .client_cert .client_key
    EtcdCluster(dir, auth=True)                 # user root with a random password, `auth enable`d:
                                                # .username .password (etcdctl() passes them)

Each member logs (zap JSON) to `<workdir>/mK.log` (appended across restarts) and keeps its data in
`<workdir>/mK.data`. Three members are healthy 0.2-2.5 s after start (etcd 3.4 may wait up to 1 s for
remote peers before bootstrapping a new cluster, and up to 1 s more before the peer streams carry the first
vote). A member stops in ~20-60 ms over plain HTTP, ~1 s with TLS (its client listener's graceful close).
"""

from __future__ import annotations

import base64
import datetime
import json
import os
import shutil
import signal
import ssl
import subprocess
import time
import urllib.error
import urllib.request
import uuid
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID

from conftest import free_port
from pki import TestPKI, _key_pem, _name
from reload_support import wait_until

ETCD = "/usr/bin/etcd"
ETCDCTL = "/usr/bin/etcdctl"
START_TIMEOUT = 20.0          # whole-cluster start-up (typically ~2 s)
STOP_TIMEOUT = 5.0            # SIGTERM -> SIGKILL
LAST_MEMBER_GRACE = 1.0       # ... for the last member running (see _signal_and_wait)


def new_sealing_key(directory: Path) -> Path:
    """A fresh 32-byte sealing key file in `directory`."""
    path = directory / "sealing.key"
    path.write_bytes(os.urandom(32))
    return path


def node_config(etcd: "EtcdCluster", prefix: str, name: str, keys, admin_port: int, **cluster) -> dict:
    """A fleet node's configuration on `etcd`: admin API on `admin_port`, one fixed route naming the
    node, access log off; `cluster` overrides keys of the cluster section."""
    section = {"endpoints": etcd.endpoints, "prefix": prefix, "node": name,
               "sealing_keys": [str(k) for k in keys], "lease_ttl": "3s", "request_timeout": "2s"}
    section.update(cluster)
    return {"admin": {"listen": f"127.0.0.1:{admin_port}"},
            "routes": [{"respond": {"status": 200, "body": f"hello from {name}\n", "content_type": "text/plain"}}],
            "log": {"access": "off"},
            "cluster": section}


class EtcdError(RuntimeError):
    pass


def require_binaries() -> None:
    """Raise (never skip) with what to install when etcd or etcdctl is missing."""
    missing = [b for b in (ETCD, ETCDCTL) if not (os.path.isfile(b) and os.access(b, os.X_OK))]
    if missing:
        raise EtcdError(f"{' and '.join(missing)} not found: install the Debian packages etcd-server and "
                        f"etcd-client (apt-get install -y etcd-server etcd-client)")


@dataclass
class EtcdTLS:
    """PEM files: `cert_file`/`key_file` are presented by every member to clients and peers (so the
    certificate needs both serverAuth and clientAuth); `client_cert`/`client_key` are for etcdctl and tests."""
    ca_file: Path
    cert_file: Path
    key_file: Path
    client_cert: Path
    client_key: Path

    @classmethod
    def generate(cls, directory: Path, client_cn: str = "edgeproxy-test-client") -> "EtcdTLS":
        """A fresh CA (pki.TestPKI), a server certificate for 127.0.0.1/localhost/::1 and a client certificate."""
        d = Path(directory)
        ca = TestPKI(d)
        server_cert, server_key = _issue(ca, "etcd-member", ["127.0.0.1", "localhost", "::1"],
                                         [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH])
        client_cert, client_key = _issue(ca, client_cn, [], [ExtendedKeyUsageOID.CLIENT_AUTH])
        paths = {}
        for name, data in (("server.crt", server_cert), ("server.key", server_key),
                           ("client.crt", client_cert), ("client.key", client_key)):
            (d / name).write_bytes(data)
            paths[name] = d / name
        for key in ("server.key", "client.key"):
            os.chmod(paths[key], 0o600)
        return cls(ca_file=ca.ca_path, cert_file=paths["server.crt"], key_file=paths["server.key"],
                   client_cert=paths["client.crt"], client_key=paths["client.key"])


def _issue(ca: TestPKI, cn: str, names: list[str], ekus) -> tuple[bytes, bytes]:
    import ipaddress
    key = ec.generate_private_key(ec.SECP256R1())
    sans: list[x509.GeneralName] = []
    for n in names:
        try:
            sans.append(x509.IPAddress(ipaddress.ip_address(n)))
        except ValueError:
            sans.append(x509.DNSName(n))
    now = datetime.datetime.now(datetime.timezone.utc)
    b = (x509.CertificateBuilder().subject_name(_name(cn)).issuer_name(ca.ca_cert.subject)
         .public_key(key.public_key()).serial_number(x509.random_serial_number())
         .not_valid_before(now - datetime.timedelta(hours=1)).not_valid_after(now + datetime.timedelta(days=7))
         .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
         .add_extension(x509.ExtendedKeyUsage(ekus), critical=False)
         .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca.ca_key.public_key()), critical=False))
    if sans:
        b = b.add_extension(x509.SubjectAlternativeName(sans), critical=False)
    cert = b.sign(ca.ca_key, hashes.SHA256())
    return cert.public_bytes(serialization.Encoding.PEM), _key_pem(key)


def _tail(path: Path, n: int = 3000) -> str:
    try:
        return path.read_text("utf-8", "replace")[-n:]
    except OSError:
        return "(no log)"


class _Member:
    def __init__(self, index: int, workdir: Path, scheme: str):
        self.index = index
        self.name = f"m{index + 1}"
        self.client_port, self.peer_port = free_port(), free_port()
        self.client_url = f"{scheme}://127.0.0.1:{self.client_port}"
        self.peer_url = f"{scheme}://127.0.0.1:{self.peer_port}"
        self.data_dir = workdir / f"{self.name}.data"
        self.log_path = workdir / f"{self.name}.log"
        self.proc: subprocess.Popen | None = None

    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None


class EtcdCluster:
    """`members` etcd processes forming one cluster; healthy (every member's /health true) on return.
    If start-up fails, everything started is stopped and EtcdError carries every member's log tail."""

    def __init__(self, workdir: Path, members: int = 3, tls: EtcdTLS | bool | None = None,
                 auth: bool | str = False, heartbeat_ms: int = 50, election_ms: int = 500,
                 extra_args: list[str] | None = None, timeout: float = START_TIMEOUT):
        require_binaries()
        self.dir = Path(workdir)
        self.dir.mkdir(parents=True, exist_ok=True)
        if tls is True:
            tls = EtcdTLS.generate(self.dir / "tls")
        self.tls: EtcdTLS | None = tls or None
        self.scheme = "https" if self.tls else "http"
        self.token = f"edgeproxy-test-{uuid.uuid4().hex[:12]}"
        self.heartbeat_ms, self.election_ms = heartbeat_ms, election_ms
        self.extra_args = list(extra_args or [])
        self.members = [_Member(i, self.dir, self.scheme) for i in range(members)]
        self.initial_cluster = ",".join(f"{m.name}={m.peer_url}" for m in self.members)
        self.username: str | None = None
        self.password: str | None = None
        self._auth_enabled = False
        try:
            for m in self.members:
                self._spawn(m, "new")
            self.wait_healthy(timeout=timeout)
            if auth:
                self.enable_auth(auth if isinstance(auth, str) else uuid.uuid4().hex)
        except BaseException:
            self.stop()             # the caller never gets this object: stop what was started
            raise

    # ----- addresses ---------------------------------------------------------------------------

    @property
    def endpoints(self) -> list[str]:
        """Client URLs of every member (running or not), in member order."""
        return [m.client_url for m in self.members]

    def member_endpoint(self, i: int) -> str:
        return self.members[i].client_url

    @property
    def ca_file(self) -> Path | None:
        return self.tls.ca_file if self.tls else None

    @property
    def client_cert(self) -> Path | None:
        return self.tls.client_cert if self.tls else None

    @property
    def client_key(self) -> Path | None:
        return self.tls.client_key if self.tls else None

    def running(self) -> list[int]:
        """Indices of members whose process is alive."""
        return [m.index for m in self.members if m.running()]

    # ----- processes ---------------------------------------------------------------------------

    def _argv(self, m: _Member, state: str) -> list[str]:
        argv = [ETCD, "--name", m.name, "--data-dir", str(m.data_dir),
                "--listen-client-urls", m.client_url, "--advertise-client-urls", m.client_url,
                "--listen-peer-urls", m.peer_url, "--initial-advertise-peer-urls", m.peer_url,
                "--initial-cluster", self.initial_cluster, "--initial-cluster-state", state,
                "--initial-cluster-token", self.token,
                "--heartbeat-interval", str(self.heartbeat_ms), "--election-timeout", str(self.election_ms),
                "--auto-compaction-retention", "0", "--logger", "zap", "--log-outputs", "stderr"]
        if self.tls:
            t = self.tls
            argv += ["--cert-file", str(t.cert_file), "--key-file", str(t.key_file),
                     "--trusted-ca-file", str(t.ca_file), "--client-cert-auth",
                     "--peer-cert-file", str(t.cert_file), "--peer-key-file", str(t.key_file),
                     "--peer-trusted-ca-file", str(t.ca_file), "--peer-client-cert-auth"]
        return argv + self.extra_args

    def _spawn(self, m: _Member, state: str) -> None:
        if m.running():
            raise EtcdError(f"member {m.name} is already running (pid {m.proc.pid})")
        with open(m.log_path, "ab") as log:
            log.write(f"\n----- {time.strftime('%H:%M:%S')} starting {m.name} ({state}) -----\n".encode())
            log.flush()
            env = {k: v for k, v in os.environ.items() if not k.startswith("ETCD")}
            m.proc = subprocess.Popen(self._argv(m, state), stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                                      env=env)

    def _signal_and_wait(self, ms: list[_Member], sig: int, timeout: float = STOP_TIMEOUT) -> None:
        """One member at a time: signal, wait up to `timeout`, SIGKILL.

        etcd 3.4 quirks this works around: SIGTERM to every member at once leaves members lingering for
        5-10 s after "closed etcd server"; and a leader SIGTERMed just after its peers went away tries to hand
        leadership to one of the dead peers and waits the whole request timeout (~6 s). So members stop one
        after another (each exits in ~20-60 ms while a live peer can take over), and the last member still
        running gets LAST_MEMBER_GRACE before SIGKILL (safe: etcd fsyncs its WAL before acknowledging a write).
        """
        for m in ms:
            if not m.running():
                continue
            last = sig == signal.SIGTERM and self.running() == [m.index]
            try:
                m.proc.send_signal(sig)
                m.proc.wait(min(timeout, LAST_MEMBER_GRACE) if last else timeout)
            except ProcessLookupError:
                pass
            except subprocess.TimeoutExpired:
                m.proc.kill()
                m.proc.wait(5)

    def stop_member(self, i: int, timeout: float = STOP_TIMEOUT) -> None:
        """SIGTERM member i and wait (SIGKILL after `timeout`)."""
        self._signal_and_wait([self.members[i]], signal.SIGTERM, timeout)

    def kill_member(self, i: int) -> None:
        """SIGKILL member i (no leadership transfer, no clean shutdown) and reap it."""
        self._signal_and_wait([self.members[i]], signal.SIGKILL, 5)

    def start_member(self, i: int, wait: bool = True, timeout: float = 15.0) -> None:
        """Restart member i on its old ports and data dir (`--initial-cluster-state existing`);
        with `wait`, return once it answers /health true."""
        self._spawn(self.members[i], "existing")
        if wait:
            self.wait_healthy([i], timeout=timeout)

    def stop_all(self, timeout: float = STOP_TIMEOUT) -> None:
        """SIGTERM every running member, one after another (SIGKILL after `timeout` each). Data dirs stay."""
        self._signal_and_wait(self.members, signal.SIGTERM, timeout)

    def start_all(self, timeout: float = START_TIMEOUT) -> None:
        """Start every stopped member (existing data) and wait until all are healthy."""
        for m in self.members:
            if not m.running():
                self._spawn(m, "existing")
        self.wait_healthy(timeout=timeout)

    def stop(self) -> None:
        """Stop everything this object started (bounded: SIGKILL after STOP_TIMEOUT each). Idempotent."""
        self._signal_and_wait(self.members, signal.SIGTERM, STOP_TIMEOUT)

    def __enter__(self) -> "EtcdCluster":
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    # ----- health ------------------------------------------------------------------------------

    def _ssl_context(self, client_cert: bool = True) -> ssl.SSLContext | None:
        if not self.tls:
            return None
        ctx = ssl.create_default_context(cafile=str(self.tls.ca_file))
        if client_cert:
            ctx.load_cert_chain(str(self.tls.client_cert), str(self.tls.client_key))
        return ctx

    def health(self, i: int, timeout: float = 1.0) -> dict | None:
        """Member i's GET /health JSON ({"health": "true"} when it has a leader and no alarm), or None."""
        try:
            with urllib.request.urlopen(f"{self.members[i].client_url}/health", timeout=timeout,
                                        context=self._ssl_context()) as r:
                return json.loads(r.read())
        except urllib.error.HTTPError as e:       # 503 carries the same JSON with "false"
            try:
                return json.loads(e.read())
            except ValueError:
                return None
        except (OSError, ValueError):
            return None

    def healthy(self, i: int) -> bool:
        h = self.health(i)
        return bool(h) and h.get("health") == "true"

    def wait_healthy(self, members: list[int] | None = None, timeout: float = START_TIMEOUT) -> None:
        """Wait until every listed member (default: all) reports healthy; fail early if one exits."""
        idx = list(range(len(self.members))) if members is None else list(members)
        deadline = time.monotonic() + timeout
        pending = set(idx)
        while pending:
            for i in sorted(pending):
                m = self.members[i]
                if not m.running():
                    code = m.proc.returncode if m.proc else None
                    raise EtcdError(f"etcd member {m.name} is not running (exit code {code})\n" + self.describe(idx))
                if self.healthy(i):
                    pending.discard(i)
            if not pending:
                return
            if time.monotonic() >= deadline:
                raise EtcdError(f"etcd members {[self.members[i].name for i in sorted(pending)]} not healthy "
                                f"within {timeout}s\n" + self.describe(idx))
            time.sleep(0.05)

    def describe(self, members: list[int] | None = None) -> str:
        """Ports, process state and log tail of each member (for failure messages)."""
        out = []
        for m in self.members if members is None else [self.members[i] for i in members]:
            state = "running" if m.running() else f"exited {m.proc.returncode}" if m.proc else "never started"
            out.append(f"--- {m.name} {m.client_url} peer {m.peer_url} ({state}), {m.log_path} tail ---\n"
                       f"{_tail(m.log_path)}")
        return "\n".join(out)

    def leader(self) -> int | None:
        """Index of the current leader among running members, per `etcdctl endpoint status`."""
        live = [self.members[i].client_url for i in self.running()]
        if not live:
            return None
        r = self.etcdctl("endpoint", "status", "-w", "json", endpoints=live, check=False)
        try:
            statuses = json.loads(r.stdout)
        except ValueError:
            return None
        by_url = {s["Endpoint"]: s["Status"] for s in statuses}
        for url, st in by_url.items():
            if st["header"]["member_id"] == st["leader"]:
                return self.endpoints.index(url)
        return None

    # ----- etcdctl -----------------------------------------------------------------------------

    def etcdctl_env(self) -> dict:
        env = {k: v for k, v in os.environ.items() if not k.startswith("ETCDCTL")}
        env["ETCDCTL_API"] = "3"
        return env

    def etcdctl_flags(self, endpoints: list[str] | None = None, auth: bool = True) -> list[str]:
        """Global etcdctl flags for this cluster (endpoints, TLS files, user)."""
        flags = ["--endpoints", ",".join(endpoints or self.endpoints), "--dial-timeout", "2s",
                 "--command-timeout", "5s"]
        if self.tls:
            flags += ["--cacert", str(self.tls.ca_file), "--cert", str(self.tls.client_cert),
                      "--key", str(self.tls.client_key)]
        if auth and self._auth_enabled:
            flags += ["--user", f"{self.username}:{self.password}"]
        return flags

    def etcdctl(self, *args: str, input: bytes | str | None = None, endpoints: list[str] | None = None,
                check: bool = True, timeout: float = 20.0, auth: bool = True) -> subprocess.CompletedProcess:
        """Run `etcdctl <args>` (API 3) against all endpoints (or `endpoints`). stdout/stderr are str
        (undecodable bytes kept as surrogates). With `check`, a non-zero exit raises EtcdError with stderr."""
        argv = [ETCDCTL, *self.etcdctl_flags(endpoints, auth), *args]
        data = input.encode() if isinstance(input, str) else input
        try:
            r = subprocess.run(argv, input=data, capture_output=True, timeout=timeout, env=self.etcdctl_env(),
                               stdin=None if data is not None else subprocess.DEVNULL)
        except subprocess.TimeoutExpired as e:
            raise EtcdError(f"etcdctl {' '.join(args)} timed out after {timeout}s") from e
        r.stdout = r.stdout.decode("utf-8", "surrogateescape")
        r.stderr = r.stderr.decode("utf-8", "surrogateescape")
        if check and r.returncode != 0:
            raise EtcdError(f"etcdctl {' '.join(args)} exited {r.returncode}: {r.stderr.strip()}")
        return r

    def put(self, key: str, value: bytes | str) -> None:
        """Put `value` (raw bytes, passed on stdin so NULs and newlines survive; empty allowed)."""
        value = value.encode() if isinstance(value, str) else value
        if value:
            self.etcdctl("put", "--", key, input=value)
        else:                                   # etcdctl refuses an empty stdin
            self.etcdctl("put", "--", key, "")

    def get(self, key: str) -> bytes | None:
        kvs = self._get_json("--", key).get("kvs") or []
        return base64.b64decode(kvs[0].get("value", "")) if kvs else None

    def get_prefix(self, prefix: str) -> dict[str, bytes]:
        """Every key under `prefix` -> its raw value."""
        data = self._get_json("--prefix", "--", prefix)
        return {base64.b64decode(kv["key"]).decode("utf-8", "surrogateescape"): base64.b64decode(kv.get("value", ""))
                for kv in data.get("kvs") or []}

    def _get_json(self, *args: str) -> dict:
        return json.loads(self.etcdctl("get", "-w", "json", *args).stdout)

    def delete(self, key: str, prefix: bool = False) -> int:
        """Delete `key` (or every key under it with `prefix`); returns how many were deleted."""
        out = self.etcdctl("del", *(["--prefix"] if prefix else []), "--", key).stdout.strip()
        return int(out or 0)

    def compact(self, revision: int, physical: bool = True) -> None:
        self.etcdctl("compact", *(["--physical"] if physical else []), str(revision))

    def revision(self) -> int:
        """The cluster's current revision (header of a linearizable read)."""
        return int(self._get_json("--keys-only", "--limit", "1", "--from-key", "")["header"]["revision"])

    def enable_auth(self, password: str, username: str = "root") -> None:
        """Create `username` (root) with `password`, grant it the root role, `auth enable`."""
        self.etcdctl("user", "add", f"{username}:{password}", "--interactive=false")
        if username == "root":
            self.etcdctl("user", "grant-role", "root", "root")
        self.etcdctl("auth", "enable")
        self.username, self.password, self._auth_enabled = username, password, True

