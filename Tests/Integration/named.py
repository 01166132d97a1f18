"""A real BIND (`/usr/sbin/named -g`) on a free loopback port, authoritative for `dns.test` and
accepting UPDATEs signed with TSIG key `acme` (modelled on Tests/DNSTests/Named.swift).

`extra_records` go into the zone file as written (e.g. a CNAME delegating a challenge name).
"""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

from conftest import free_port

NAMED = os.environ.get("EDGEPROXY_NAMED", "/usr/sbin/named")
DIG = "/usr/bin/dig"
KEY_NAME = "acme"
SECRET = "c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0LTMyYg=="
ZONE = "dns.test"


class Named:
    def __init__(self, workdir: Path, extra_records: str = ""):
        for program in (NAMED, DIG):
            if not os.access(program, os.X_OK):
                raise RuntimeError(f"{program} is missing: apt-get install bind9 bind9-dnsutils")
        self.dir = Path(workdir)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        zone_file = self.dir / f"{ZONE}.zone"
        zone_file.write_text(f"""$TTL 300
@   IN SOA ns.{ZONE}. hostmaster.{ZONE}. 1 3600 600 86400 60
@   IN NS  ns.{ZONE}.
ns  IN A   127.0.0.1
{extra_records}
""")
        (self.dir / "named.conf").write_text(f"""options {{
    directory "{self.dir}";
    pid-file "{self.dir / 'named.pid'}";
    session-keyfile "{self.dir / 'session.key'}";
    managed-keys-directory "{self.dir}";
    listen-on port {self.port} {{ 127.0.0.1; }};
    listen-on-v6 {{ none; }};
    recursion no;
    dnssec-validation no;
    notify no;
}};
controls {{ }};
key "{KEY_NAME}" {{ algorithm hmac-sha256; secret "{SECRET}"; }};
zone "{ZONE}" {{
    type master;
    file "{zone_file}";
    allow-update {{ key {KEY_NAME}; }};
}};
""")
        self.log_path = self.dir / "named.log"
        out = open(self.log_path, "ab")
        self.proc = subprocess.Popen([NAMED, "-g", "-c", str(self.dir / "named.conf"), "-p", str(self.port), "-n", "1"],
                                     stdout=out, stderr=out, stdin=subprocess.DEVNULL)
        out.close()
        try:
            self._wait_until_answering()
        except BaseException:
            self.stop()
            raise

    def _wait_until_answering(self, timeout: float = 10) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"named exited ({self.proc.returncode}): {self.log()}")
            if self.dig(ZONE, "SOA", timeout=1):
                return
            time.sleep(0.05)
        raise RuntimeError(f"named did not answer on 127.0.0.1:{self.port} within {timeout} s: {self.log()}")

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def dig(self, name: str, rrtype: str, timeout: float = 2) -> list[str]:
        """`dig +short` lines for name/type, asked of this server directly."""
        r = subprocess.run([DIG, "@127.0.0.1", "-p", str(self.port), rrtype, name, "+short", "+norecurse",
                            f"+time={max(1, int(timeout))}", "+tries=1"], capture_output=True, text=True)
        return [line for line in r.stdout.splitlines() if line and not line.startswith(";")] if r.returncode == 0 else []

    def dns_section(self, **extra) -> dict:
        """The proxy's `acme.dns` block for this server."""
        section = {"provider": "rfc2136", "server": self.address, "key_name": KEY_NAME, "key_secret": SECRET,
                   "zone": ZONE, "check_servers": [self.address]}
        section.update(extra)
        return section

    def log(self) -> str:
        return self.log_path.read_text("utf-8", "replace") if self.log_path.exists() else ""

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
