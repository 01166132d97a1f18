"""Heap allocations per proxied request, as a regression check (swift-nio's allocation-counter tests).

How it works: the release binary (what ships) runs with support/malloc_counter.so preloaded, which
counts every malloc/calloc/realloc/posix_memalign/aligned_alloc/memalign/valloc/pvalloc (and free,
and bytes asked for) of the whole process into a shared file the test reads at any moment. The
proxy has one worker, no access log and one plain-HTTP nginx origin answering GET / with 1 KiB.

h2load opens new connections on every run, so a run's count holds TLS handshakes and connection
set-up besides the requests. Two runs on the same number of connections, SHORT and LONG requests,
differ only in LONG - SHORT requests on already open connections, so

    allocations per request = (count(LONG run) - count(SHORT run)) / (LONG - SHORT)

with per-connection costs cancelled. A warm-up run first fills the upstream pool and the caches.
The figure is the median of a few such pairs.

The gate is the allocation count, compared with allocation_limits.json: more than the limit
fails; more than 20% below it passes with a notice to lower the limit (a ratchet). Frees and
bytes are printed for information only (`pytest -s`).
"""

from __future__ import annotations

import json
import math
import re
import statistics
import struct
import subprocess
import time
import warnings
from pathlib import Path

import pytest

import nginx
from conftest import ProxyFactory, free_port, standard_tls, wait_for_port
from tools import need_tool

HERE = Path(__file__).resolve().parent
LIMITS_PATH = HERE / "allocation_limits.json"
COUNTER_SOURCE = HERE / "support" / "malloc_counter.c"
NGINX = "/usr/sbin/nginx"

CONNECTIONS = 4
SHORT, LONG = 1000, 3000          # requests per run; LONG - SHORT are the ones measured
WARMUP = 500
PAIRS = 3
RATCHET = 0.20                    # below the limit by more than this: ask for a lower limit

# malloc_counter.c `enum slot`
SLOTS = ("malloc", "calloc", "realloc", "posix_memalign", "aligned_alloc", "memalign", "valloc",
         "pvalloc", "free", "bytes")
ALLOCATING = SLOTS[:8]


@pytest.fixture(scope="module")
def counter_lib(tmp_path_factory) -> Path:
    cc = need_tool("cc", "gcc")
    out = tmp_path_factory.mktemp("malloc-counter") / "malloc_counter.so"
    r = subprocess.run([cc, "-shared", "-fPIC", "-O2", "-Wall", "-o", str(out), str(COUNTER_SOURCE), "-ldl"],
                       capture_output=True, text=True)
    assert r.returncode == 0, f"compiling {COUNTER_SOURCE.name} failed:\n{r.stderr}"
    return out


@pytest.fixture(scope="module")
def origin(tmp_path_factory):
    """nginx answering every request with a 1 KiB body, head and body in one write."""
    need_tool(NGINX, "nginx-light")
    work = tmp_path_factory.mktemp("alloc-origin")
    port = free_port()
    body = "x" * 1023      # + nginx's "\n" below = 1024 bytes
    nginx.write_config(work, f"""    access_log off;
    keepalive_requests 100000000; keepalive_timeout 300s;
    default_type text/plain;
    server {{ listen 127.0.0.1:{port}; location / {{ return 200 "{body}\\n"; }} }}""")
    proc = subprocess.Popen([NGINX, "-e", str(work / "error.log"), "-c", str(work / "nginx.conf"), "-p", str(work)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for_port(port, proc=proc)
        yield f"127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(10)


class Counters:
    """The interposer's shared counters, read straight from its file."""

    def __init__(self, path: Path):
        self.path = path

    def read(self) -> dict[str, int]:
        raw = self.path.read_bytes()
        assert len(raw) == 8 * len(SLOTS), f"{self.path} holds {len(raw)} bytes; was the counter preloaded?"
        return dict(zip(SLOTS, struct.unpack(f"<{len(SLOTS)}Q", raw)))


@pytest.fixture(scope="module")
def proxy(release_bin, counter_lib, origin, pki, tmp_path_factory):
    work = tmp_path_factory.mktemp("alloc-proxy")
    counters = Counters(work / "malloc-counters.bin")
    cfg = {
        "workers": 1,
        "tls": standard_tls(session_tickets=0),
        "upstreams": {"origin": {"servers": [origin], "keepalive": 64}},
        "routes": [{"upstream": "origin"}],
        "log": {"access": "off"},
    }
    factory = ProxyFactory(release_bin, work, pki)
    # The proxy inherits these; nothing else started here does.
    with pytest.MonkeyPatch.context() as m:
        m.setenv("LD_PRELOAD", str(counter_lib))
        m.setenv("MALLOC_COUNTER_FILE", str(counters.path))
        p = factory(cfg, name="proxy-alloc")
    p.counters = counters
    assert counters.read()["malloc"] > 0, "the proxy started without the malloc counter preloaded"
    yield p
    factory.close()


def h2load(proxy, requests: int, http1: bool) -> None:
    args = [need_tool("h2load", "nghttp2-client"), "-n", str(requests), "-c", str(CONNECTIONS), "-t", "1"]
    args += ["--h1", "-m", "1"] if http1 else ["-m", "10"]
    r = subprocess.run(args + [f"https://127.0.0.1:{proxy.https_port}/"], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
    assert f"status codes: {requests} 2xx" in r.stdout, r.stdout
    # 1 KiB bodies: anything else means the request did not go through the proxy to the origin.
    m = re.search(r"\((\d+)\) data", r.stdout)
    assert m and int(m.group(1)) == requests * 1024, r.stdout


def counted(proxy, requests: int, http1: bool) -> dict[str, int]:
    before = proxy.counters.read()
    h2load(proxy, requests, http1)
    time.sleep(0.2)      # let the proxy finish closing the connections h2load dropped
    after = proxy.counters.read()
    return {k: after[k] - before[k] for k in SLOTS}


def per_request(proxy, http1: bool) -> dict[str, float]:
    h2load(proxy, WARMUP, http1)
    pairs = []
    for _ in range(PAIRS):
        short, long = counted(proxy, SHORT, http1), counted(proxy, LONG, http1)
        d = {k: (long[k] - short[k]) / (LONG - SHORT) for k in SLOTS}
        d["allocations"] = sum(d[k] for k in ALLOCATING)
        pairs.append(d)
    result = {k: statistics.median(p[k] for p in pairs) for k in pairs[0]}
    result["spread"] = max(p["allocations"] for p in pairs) - min(p["allocations"] for p in pairs)
    return result


def new_limit(measured: float) -> int:
    """Today's figure plus 5%, rounded up, and at least one more than it."""
    return max(math.ceil(measured * 1.05), math.floor(measured) + 1)


def check_against_limit(name: str, figure: dict[str, float]) -> None:
    limit = json.loads(LIMITS_PATH.read_text())[name]
    measured = figure["allocations"]
    print(f"\n{name}: {measured:.2f} allocations per request (limit {limit}, spread over {PAIRS} pairs "
          f"{figure['spread']:.2f}); malloc {figure['malloc']:.2f} calloc {figure['calloc']:.2f} "
          f"realloc {figure['realloc']:.2f} posix_memalign {figure['posix_memalign']:.2f}; "
          f"free {figure['free']:.2f}; {figure['bytes']:.0f} bytes asked for")
    assert measured <= limit, (f"{name}: {measured:.2f} allocations per request, limit {limit} "
                               f"(Tests/Integration/allocation_limits.json)")
    if measured < limit * (1 - RATCHET):
        warnings.warn(f"{name} allocates {measured:.2f} per request, more than {RATCHET:.0%} below its "
                      f"limit {limit}: lower it in Tests/Integration/allocation_limits.json to {new_limit(round(measured, 2))}")


def test_http1_keepalive_request_allocations(proxy):
    check_against_limit("http1_keepalive_request", per_request(proxy, http1=True))


def test_http2_request_allocations(proxy):
    check_against_limit("http2_request", per_request(proxy, http1=False))
