"""A real Pebble CA (Debian `pebble`) and pebble-challtestsrv as its DNS, on free loopback ports.

Pebble's validation authority connects to `http_port` (HTTP-01) and `tls_port` (TLS-ALPN-01) on the
address challtestsrv gives for every name: 127.0.0.1. Point those ports at the proxy under test.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import ssl
import subprocess
import time
import urllib.request
from pathlib import Path

from conftest import free_port, wait_for_port
from tools import need_tool

PEBBLE = "/usr/bin/pebble"
CHALLTESTSRV = "/usr/bin/pebble-challtestsrv"
EAB_KEYS = {"kid-1": "zWNDZM6eQGHWpSRTPal5eIUYFTu7EajVIoguysqZ9wG44nMEtx3MUAsUDkMTQ12W"}


class Pebble:
    def __init__(self, workdir: Path, http_port: int, tls_port: int, eab_required: bool = False,
                 nonce_reject: int = 30, dns_server: str | None = None):
        """`dns_server` ("HOST:PORT"): where Pebble's VA resolves names (a real DNS server for
        DNS-01) instead of a challtestsrv started here."""
        self.dir = Path(workdir)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.acme_port, self.mgmt_port = free_port(), free_port()
        self.dns_port, self.dns_mgmt_port = free_port(), free_port()
        self.api_cert = self.dir / "api-cert.pem"
        subprocess.run([need_tool("openssl", "openssl"), "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                        "-subj", "/CN=localhost", "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1", "-days", "2",
                        "-keyout", str(self.dir / "api-key.pem"), "-out", str(self.api_cert)],
                       check=True, capture_output=True)
        config = {"listenAddress": f"127.0.0.1:{self.acme_port}",
                  "managementListenAddress": f"127.0.0.1:{self.mgmt_port}",
                  "certificate": str(self.api_cert), "privateKey": str(self.dir / "api-key.pem"),
                  "httpPort": http_port, "tlsPort": tls_port, "ocspResponderURL": "",
                  "externalAccountBindingRequired": eab_required}
        if eab_required:
            config["externalAccountMACKeys"] = EAB_KEYS
        (self.dir / "pebble.json").write_text(json.dumps({"pebble": config}))
        self.log_path = self.dir / "pebble.log"
        self.procs: list[subprocess.Popen] = []
        if dns_server is None:
            self._start([CHALLTESTSRV, "-dns01", f"127.0.0.1:{self.dns_port}", "-http01", "", "-https01", "",
                         "-tlsalpn01", "", "-defaultIPv4", "127.0.0.1", "-defaultIPv6", "",
                         "-management", f"127.0.0.1:{self.dns_mgmt_port}"], self.dir / "challtestsrv.log", {})
        self._start([PEBBLE, "-config", str(self.dir / "pebble.json"), "-dnsserver", dns_server or f"127.0.0.1:{self.dns_port}"],
                    self.log_path, {"PEBBLE_VA_NOSLEEP": "1", "PEBBLE_WFE_NONCEREJECT": str(nonce_reject),
                                    "PEBBLE_AUTHZREUSE": "0"})
        try:
            for port in (self.acme_port, self.mgmt_port) + ((self.dns_mgmt_port,) if dns_server is None else ()):
                wait_for_port(port, timeout=15)
        except BaseException:
            self.stop()              # the caller never gets this object: stop what was started
            raise

    def _start(self, argv: list[str], log: Path, env: dict) -> None:
        out = open(log, "ab")
        self.procs.append(subprocess.Popen(argv, stdout=out, stderr=out, stdin=subprocess.DEVNULL,
                                           env={**os.environ, **env}))
        out.close()

    @property
    def directory_url(self) -> str:
        return f"https://127.0.0.1:{self.acme_port}/dir"

    def log(self) -> str:
        return self.log_path.read_text("utf-8", "replace") if self.log_path.exists() else ""

    def requests(self, path: str) -> int:
        """How many requests Pebble logged for `path` (e.g. "/sign-me-up", newAccount)."""
        return sum(1 for line in self.log().splitlines() if f" {path}" in line and ("POST" in line or "GET" in line))

    def root_pem(self) -> bytes:
        """Pebble's issuing root (generated at start), from its management API."""
        ctx = ssl.create_default_context(cafile=str(self.api_cert))
        with urllib.request.urlopen(f"https://127.0.0.1:{self.mgmt_port}/roots/0", context=ctx, timeout=10) as r:
            return r.read()

    def acme_section(self, names, **extra) -> dict:
        """The proxy's `acme:` block for this CA."""
        section = {"directory": self.directory_url, "email": "ops@example.test", "ca_root": str(self.api_cert),
                   "certificates": names}
        section.update(extra)
        return section

    def stop(self) -> None:
        for p in self.procs:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + 5
        for p in self.procs:
            try:
                p.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait(5)


def available() -> bool:
    return shutil.which(PEBBLE) is not None and shutil.which(CHALLTESTSRV) is not None
