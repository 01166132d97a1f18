"""No memory leaked per connection, per request or per reload (LeakSanitizer).

The proxy built with AddressSanitizer (`.build-asan`, which `make test` builds) reports at exit
what nothing points at any more. A few objects made once at start-up are reported too (the Swift
runtime keeps some references where LeakSanitizer cannot see them), so the test compares: a proxy
that served one request, and the same configuration after hundreds of connections of every kind
and a dozen reloads. No allocation stack may leak more with the work."""

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


def leaked(p) -> tuple[dict[str, int], str]:
    """What LeakSanitizer reported when the proxy exited: allocations left per allocation stack
    (its frames, without addresses), and the report. Taken here; any other sanitizer or crash
    report still fails the test (conftest)."""
    p.stop(signal.SIGTERM, timeout=30)
    err = p.stderr()
    start = err.find("ERROR: LeakSanitizer")
    if start < 0:
        return {}, ""
    end = err.find("SUMMARY: AddressSanitizer", start)
    end = err.find("\n", end) + 1 if end >= 0 else len(err)
    other = err[:start] + err[end:]
    for mark in CRASH_MARKS:
        assert mark not in other, other[other.find(mark):][:8000]
    p.stderr_checked = p.stderr_path.stat().st_size
    report = err[start:end]
    stacks: dict[str, int] = {}
    for block in re.split(r"\n(?=(?:Direct|Indirect) leak of)", report)[1:]:
        m = re.match(r"(?:Direct|Indirect) leak of \d+ byte\(s\) in (\d+) object", block)
        # A frame's function, or its library and offset where the library has no symbols.
        frames = [f or lib for f, lib in re.findall(r"#\d+ 0x[0-9a-f]+ (?:in (\S+)|\((\S+)\))", block)]
        key = " < ".join(frames[1:9])
        stacks[key] = stacks.get(key, 0) + int(m.group(1))
    return stacks, report


def leak_proxy(proxies, origins, name: str):
    assert ASAN_BIN.exists(), f"{ASAN_BIN} is missing: build it with `make asan-build` (make test does)"
    o = origins("A")
    p = proxies({"workers": 2, "tls": standard_tls(),
                 "upstreams": {"app": {"servers": [o.addr]}}, "routes": [{"upstream": "app"}]},
                start=False, name=name)
    p.binary = ASAN_BIN
    p.start(env=asan_env())
    # Start-up builds the certificates in the background; what it leaves behind must be all there
    # in both runs, or a slow machine makes the one-round run look smaller.
    deadline = time.monotonic() + 60
    while "certificate warm-up done" not in p.stderr():
        assert time.monotonic() < deadline, "the certificate warm-up did not finish:\n" + p.stderr()[-3000:]
        time.sleep(0.1)
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
    base, _ = leaked(once)

    busy = leak_proxy(proxies, origins, "busy")
    work(busy, 240)
    after, report = leaked(busy)
    print(f"leak report: after one round {sum(base.values())} allocations from {len(base)} stacks; after 240"
          f" rounds and 12 reloads {sum(after.values())} from {len(after)} stacks")
    # Some of what start-up makes is reported (once per certificate, say), and not always alike:
    # what counts is an allocation stack that leaks more with the work, once per reload at least.
    grown = {k: (base.get(k, 0), n) for k, n in after.items() if n - base.get(k, 0) >= 12}
    assert not grown, "leaks that grow with the work (allocations after one round, after 240):\n" + \
        "\n".join(f"{a} -> {b}: {k}" for k, (a, b) in grown.items()) + "\n" + report[-6000:]
