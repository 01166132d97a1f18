"""No memory leaked per connection, per request or per reload (LeakSanitizer).

The proxy built with AddressSanitizer (`.build-asan`, which `make test` builds) reports at exit
what nothing points at any more. A few objects made once at start-up are reported too (the Swift
runtime keeps some references where LeakSanitizer cannot see them), so the test compares: a proxy
that served one request, and the same configuration after hundreds of connections of every kind
and a dozen reloads. What it leaks must not grow with the work."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import time
from pathlib import Path

import pytest

from conftest import CRASH_MARKS, REPO, standard_tls
from httpclient import HTTPConn, build_request, https_get
from tools import need_tool

ASAN_BIN = Path(os.environ.get("EDGEPROXY_ASAN_BIN") or REPO / ".build-asan" / "debug" / "edgeproxy")
SUPPRESSIONS = REPO / "Tests" / "Sanitizers"


def asan_env() -> dict:
    return {"SWIFT_BACKTRACE": "enable=no",
            "ASAN_OPTIONS": f"detect_leaks=1:suppressions={SUPPRESSIONS / 'asan.supp'}",
            "LSAN_OPTIONS": f"suppressions={SUPPRESSIONS / 'lsan.supp'}:print_suppressions=0"}


def leaked(p) -> tuple[int, int, str]:
    """(bytes, allocations, report) LeakSanitizer printed when the proxy exited. Its report is
    taken here; any other sanitizer or crash report still fails the test (conftest)."""
    p.stop(signal.SIGTERM, timeout=30)
    err = p.stderr()
    start = err.find("ERROR: LeakSanitizer")
    if start >= 0:
        end = err.find("SUMMARY: AddressSanitizer", start)
        end = err.find("\n", end) + 1 if end >= 0 else len(err)
        other = err[:start] + err[end:]
        for mark in CRASH_MARKS:
            assert mark not in other, other[other.find(mark):][:8000]
        p.stderr_checked = p.stderr_path.stat().st_size
    m = re.search(r"SUMMARY: AddressSanitizer: (\d+) byte\(s\) leaked in (\d+) allocation", err)
    return (int(m.group(1)), int(m.group(2)), err) if m else (0, 0, err)


def leak_proxy(proxies, origins, name: str):
    assert ASAN_BIN.exists(), f"{ASAN_BIN} is missing: build it with `make asan-build` (make test does)"
    o = origins("A")
    p = proxies({"workers": 2, "tls": standard_tls(),
                 "upstreams": {"app": {"servers": [o.addr]}}, "routes": [{"upstream": "app"}]},
                start=False, name=name)
    p.binary = ASAN_BIN
    p.start(env=asan_env())
    return p


def work(p, rounds: int) -> None:
    """Connections of every kind: keep-alive requests, POST bodies, HTTP/2 (curl), a client that
    resets mid-response, refused requests, and reloads."""
    curl = need_tool("curl", "curl")
    for i in range(rounds):
        with HTTPConn.tls(p.https_port) as c:
            for _ in range(3):
                assert c.request("GET", "/echo").status == 200
            assert c.request("POST", "/echo", body=b"x" * 5000).status == 200
        with HTTPConn.tls(p.https_port) as c:
            c.send(b"GET / HTTP/1.1\r\nHost: a.test\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n")
            assert c.read_response().status == 400
        with HTTPConn.tls(p.https_port) as c:
            c.send(build_request("GET", "/bytes?n=200000", "a.test"))
            c.read_head()
        subprocess.run([curl, "-sk", "--http2", "-o", "/dev/null", "--resolve", f"a.test:{p.https_port}:127.0.0.1",
                        f"https://a.test:{p.https_port}/echo", f"https://a.test:{p.https_port}/bytes?n=100000"],
                       check=True, timeout=30)
        if i % 20 == 19:  # 12 reloads in 240 rounds
            p.reload()
            time.sleep(0.3)
    assert https_get(p.https_port, "/echo").status == 200


def test_nothing_leaks_per_connection_request_or_reload(proxies, origins):
    once = leak_proxy(proxies, origins, "once")
    work(once, 1)
    base_bytes, base_count, base_report = leaked(once)

    busy = leak_proxy(proxies, origins, "busy")
    work(busy, 240)
    busy_bytes, busy_count, busy_report = leaked(busy)
    print(f"leak report: after one round {base_bytes} B in {base_count}; after 240 rounds and 12 reloads"
          f" {busy_bytes} B in {busy_count}")
    assert busy_count <= base_count + 8 and busy_bytes <= base_bytes + 4096, busy_report[-8000:]
