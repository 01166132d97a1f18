"""Strict request framing (request smuggling defences) and size limits, over raw TLS sockets.

Every malformed request must get 400, the connection must then be closed, and the origin must never
see it. "Never sees it": for header-level errors the origin never even parses the request head; for
a bad chunk (an error inside the body, which a streaming proxy may only find after forwarding the
head) the origin never receives a complete request.
"""

from __future__ import annotations

import uuid

import pytest

from conftest import standard_tls
from httpclient import HTTPConn, build_request


@pytest.fixture(scope="module")
def env(module_proxies, module_origins):
    o = module_origins("F")
    cfg = {
        "workers": 2,
        "tls": standard_tls(),
        "limits": {"max_header_bytes": "8k", "max_headers": 50},
        "upstreams": {"app": {"servers": [o.addr]}},
        "routes": [
            {"host": "a.test", "path": "/limited/", "upstream": "app", "max_body": "1k"},
            {"host": "a.test", "upstream": "app"},
        ],
    }
    p = module_proxies(cfg, name="proxy-framing")
    return type("Env", (), {"proxy": p, "origin": o})


def marker(case: str) -> str:
    return f"/echo?case={case}-{uuid.uuid4().hex[:8]}"


def send_raw(env, raw: bytes, check_close: bool = True) -> tuple[object, bool]:
    """Send raw bytes on a fresh TLS connection; return (first response, closed-afterwards)."""
    with env.proxy.conn("a.test") as c:
        c.send(raw)
        r = c.read_response()
        return r, (c.closed_by_peer(timeout=5) if check_close else False)


def origin_saw(env, target: str) -> dict:
    st = env.origin.stats()
    return {"head": any(target in h for h in st["heads"]), "complete": any(target in h for h in st["completed"])}


def test_well_formed_request_passes(env):
    """Control: a well-formed request on the same kind of raw socket is proxied normally (200)."""
    t = marker("ok")
    r, _ = send_raw(env, build_request("POST", t, "a.test", body=b"abc"), check_close=False)
    assert r.status == 200
    assert r.json()["body"] == "abc"
    assert origin_saw(env, t)["complete"]


BAD_HEAD = {
    # name: request bytes with {T} for the target
    "te-and-cl": b"POST {T} HTTP/1.1\r\nHost: a.test\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
    "cl-and-te": b"POST {T} HTTP/1.1\r\nHost: a.test\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n0\r\n\r\n",
    "two-cl-different": b"POST {T} HTTP/1.1\r\nHost: a.test\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!",
    "two-cl-same": b"POST {T} HTTP/1.1\r\nHost: a.test\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\nhello",
    "obs-fold": b"GET {T} HTTP/1.1\r\nHost: a.test\r\nX-Folded: first\r\n  second\r\n\r\n",
    "bare-lf": b"GET {T} HTTP/1.1\nHost: a.test\nX-A: b\n\n",
    "nul-in-value": b"GET {T} HTTP/1.1\r\nHost: a.test\r\nX-Nul: a\x00b\r\n\r\n",
    "space-before-colon": b"GET {T} HTTP/1.1\r\nHost: a.test\r\nX-Space : v\r\n\r\n",
    "absolute-form-other-host": b"GET https://b.test{T} HTTP/1.1\r\nHost: a.test\r\n\r\n",
    "missing-host": b"GET {T} HTTP/1.1\r\nX-No-Host: 1\r\n\r\n",
}


@pytest.mark.parametrize("case", list(BAD_HEAD))
def test_malformed_request_head_rejected(env, case):
    """Ambiguous or malformed framing gets 400, the connection is closed, the origin never sees the request."""
    t = marker(case)
    raw = BAD_HEAD[case].replace(b"{T}", t.encode())
    # a smuggling attempt would hide a second request behind the first; it must not be served either
    smuggled = marker(case + "-smuggled")
    raw += build_request("GET", smuggled, "a.test")
    r, closed = send_raw(env, raw)
    assert r.status == 400, r
    assert closed, "connection must be closed after a framing error"
    seen = origin_saw(env, t)
    assert not seen["head"], f"origin saw the request head for {case}"
    assert not origin_saw(env, smuggled)["head"], "request behind the bad one was served"


def test_invalid_chunk_size_rejected(env):
    """An invalid chunk-size line gets 400 and a closed connection; the origin never gets a complete request."""
    t = marker("bad-chunk")
    raw = (f"POST {t} HTTP/1.1\r\nHost: a.test\r\nTransfer-Encoding: chunked\r\n\r\n".encode()
           + b"zz\r\nhello\r\n0\r\n\r\n")
    r, closed = send_raw(env, raw)
    assert r.status == 400, r
    assert closed
    assert not origin_saw(env, t)["complete"]


@pytest.mark.parametrize("chunk", [b"5 x\r\nhello\r\n0\r\n\r\n", b"-5\r\nhello\r\n0\r\n\r\n",
                                   b"fffffffffffffffffffff\r\nhello\r\n0\r\n\r\n"],
                         ids=["garbage-after-size", "negative", "overflow"])
def test_other_invalid_chunk_sizes_rejected(env, chunk):
    """Garbage after a chunk size, a negative size and an overflowing size are all rejected with 400."""
    t = marker("bad-chunk2")
    raw = f"POST {t} HTTP/1.1\r\nHost: a.test\r\nTransfer-Encoding: chunked\r\n\r\n".encode() + chunk
    r, closed = send_raw(env, raw)
    assert r.status == 400, r
    assert closed
    assert not origin_saw(env, t)["complete"]


# ----- limits ---------------------------------------------------------------------------------

def test_header_block_over_limit_gets_431(env):
    """A header block over limits.max_header_bytes (8k) gets 431 and never reaches the origin."""
    t = marker("big-header")
    r, _ = send_raw(env, build_request("GET", t, "a.test", headers=[("X-Big", "a" * 12000)]))
    assert r.status == 431, r
    assert not origin_saw(env, t)["head"]


def test_header_block_under_limit_passes(env):
    """Control: a 6000-byte header (under 8k) is proxied."""
    r, _ = send_raw(env, build_request("GET", marker("ok-header"), "a.test", headers=[("X-Big", "a" * 6000)]),
                    check_close=False)
    assert r.status == 200


def test_too_many_headers_gets_431(env):
    """More header fields than limits.max_headers (50) gets 431."""
    t = marker("many-headers")
    r, _ = send_raw(env, build_request("GET", t, "a.test", headers=[(f"X-H{i}", "v") for i in range(80)]))
    assert r.status == 431, r
    assert not origin_saw(env, t)["head"]


def test_body_over_route_max_body_gets_413(env):
    """A Content-Length body over the route's max_body (1k) gets 413 and the origin never gets the request."""
    t = "/limited/" + marker("big-body")[1:]
    r, _ = send_raw(env, build_request("POST", t, "a.test", body=b"b" * 1100))
    assert r.status == 413, r
    assert not origin_saw(env, t)["complete"]


def test_body_under_route_max_body_passes(env):
    """Control: a 1000-byte body on the limited route is proxied (200 from the origin's 404 handler
    counts: it only has to reach the origin)."""
    t = "/limited/" + marker("ok-body")[1:]
    r, _ = send_raw(env, build_request("POST", t, "a.test", body=b"b" * 1000), check_close=False)
    assert r.header("x-origin") == "F", r
    assert origin_saw(env, t)["complete"]


def test_chunked_body_over_max_body_gets_413(env):
    """A chunked body that grows past max_body gets 413 (the limit applies to chunked bodies too)."""
    t = "/limited/" + marker("big-chunked")[1:]
    r, _ = send_raw(env, build_request("POST", t, "a.test", body=b"c" * 4096, chunked=True, chunk_size=512))
    assert r.status == 413, r
    assert not origin_saw(env, t)["complete"]


def test_expect_continue_over_max_body_gets_413_without_100(env):
    """`Expect: 100-continue` with a Content-Length over max_body: 413 straight away, no 100 Continue."""
    t = "/limited/" + marker("expect-big")[1:]
    with env.proxy.conn("a.test") as c:
        c.send(f"POST {t} HTTP/1.1\r\nHost: a.test\r\nExpect: 100-continue\r\nContent-Length: 5000\r\n\r\n".encode())
        head = c.read_head()
    assert head.status == 413, head
    assert not origin_saw(env, t)["head"]


def test_global_max_body_unlimited_by_default(env):
    """Routes without max_body inherit limits.max_body (0 = unlimited): a 2 MB body passes."""
    t = marker("unlimited")
    with HTTPConn.tls(env.proxy.https_port, "a.test", timeout=30) as c:
        r = c.request("POST", t.replace("/echo", "/sha256"), host="a.test", body=b"u" * (2 * 1024 * 1024))
    assert r.status == 200
    assert r.json()["length"] == 2 * 1024 * 1024
