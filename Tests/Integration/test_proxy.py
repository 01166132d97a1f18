"""HTTP/1.1 reverse proxying: routing, keep-alive (client side and pooled upstream side), pipelining,
bodies in both framings, Expect, HEAD/204/304, hop-by-hop and X-Forwarded headers, 502/504,
passive health, balancing, websocket tunnelling, bounded memory on big downloads, uploads."""

from __future__ import annotations

import base64
import hashlib
import os
import threading
import time

import pytest

from conftest import free_port, standard_tls, RSS_SLACK_KB
from httpclient import HTTPConn, build_request, curl, https_get
from origin import pattern_bytes, pattern_sha256, ws_frame, ws_read_frame

HELLO = {"status": 200, "body": "hello\n", "content_type": "text/plain"}
ROUTE_HEADERS = {"X-Frame-Options": "DENY", "X-Content-Type-Options": "nosniff"}


@pytest.fixture(scope="module")
def env(module_proxies, module_origins):
    """One proxy (2 workers) in front of origins A, B (round robin), C (pool counting only),
    plus a dead address; routes chosen by Host (all names are covered by *.wild.test or a.test)."""
    a, b, c = module_origins("A"), module_origins("B"), module_origins("C")
    dead = f"127.0.0.1:{free_port()}"
    cfg = {
        "workers": 2,
        "tls": standard_tls(),
        "upstreams": {
            "main": {"servers": [a.addr]},
            "rr": {"servers": [a.addr, b.addr], "balance": "round_robin"},
            "health": {"servers": [dead, a.addr], "balance": "round_robin", "fail_timeout": "30s"},
            "down": {"servers": [dead]},
            "pool": {"servers": [c.addr], "keepalive": 32},
        },
        "routes": [
            {"host": "fwd.wild.test", "path": "/", "upstream": "main", "forwarded_headers": True},
            {"host": "rr.wild.test", "upstream": "rr"},
            {"host": "health.wild.test", "upstream": "health"},
            {"host": "down.wild.test", "upstream": "down"},
            {"host": "pool.wild.test", "upstream": "pool"},
            {"host": "hdr.wild.test", "upstream": "main", "response_headers": ROUTE_HEADERS},
            {"host": "hdrfixed.wild.test", "respond": HELLO, "response_headers": ROUTE_HEADERS},
            {"host": "*.wild.test", "path": "/api/", "upstream": "main"},
            {"host": "*.wild.test", "path": "/static/",
             "respond": {"status": 200, "body": "static\n", "content_type": "text/plain"}},
            {"host": "a.test", "upstream": "main", "forwarded_headers": False},
            {"respond": HELLO},
        ],
    }
    p = module_proxies(cfg, name="proxy-main")
    return type("Env", (), {"proxy": p, "a": a, "b": b, "c": c, "port": p.https_port})


def headers_of(echo: dict) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for k, v in echo["headers"]:
        out.setdefault(k.lower(), []).append(v)
    return out


# ----- basics and routing ----------------------------------------------------------------------

def test_get_is_proxied_with_host_and_path_preserved(env, pki):
    """A GET through the proxy reaches the origin with method, path+query and Host unchanged (curl, verified TLS)."""
    r = curl(env.proxy.url("/echo?x=1&y=two", "a.test"), resolve=env.proxy.resolve("a.test"), cafile=pki.ca_path)
    assert r.rc == 0, r.stderr
    assert r.status == 200
    import json
    echo = json.loads(r.body)
    assert echo["origin"] == "A"
    assert echo["method"] == "GET"
    assert echo["target"] == "/echo?x=1&y=two"
    assert headers_of(echo)["host"] == [f"a.test:{env.port}"]      # curl puts the port in Host


def test_routes_host_wildcard_and_path_prefix_first_match_wins(env):
    """Routes: host `*.wild.test` + path prefix /api/ proxies (path unchanged); /static/ answers the fixed
    response; a host matching no route-specific rule falls through to the catch-all respond."""
    with env.proxy.conn("x.wild.test") as c:
        r = c.request("GET", "/api/echo?k=v", host="x.wild.test")
        assert r.header("x-origin") == "A", r          # proxied ...
        assert r.status == 404                          # ... with the path unchanged (origin has no /api/echo)
        r = c.request("GET", "/static/file", host="x.wild.test")
        assert (r.status, r.body) == (200, b"static\n")
        assert r.header("x-origin") is None
        r = c.request("GET", "/other", host="x.wild.test")
        assert (r.status, r.body) == (200, b"hello\n")
    assert "GET /api/echo?k=v" in env.a.stats()["heads"]
    # a.b.wild.test is two labels deep: the *.wild.test routes must not match it
    r = https_get(env.port, "/api/echo", sni="a.b.wild.test")
    assert (r.status, r.body) == (200, b"hello\n")
    assert r.header("x-origin") is None


def test_fixed_response_route(env):
    """A `respond` route answers status, body and content type itself."""
    r = https_get(env.port, "/anything", sni="b.test")
    assert r.status == 200
    assert r.body == b"hello\n"
    assert (r.header("content-type") or "").startswith("text/plain")
    assert r.header("content-length") == "6" or "chunked" in (r.header("transfer-encoding") or "")


# ----- keep-alive ------------------------------------------------------------------------------

def test_client_keepalive_many_requests_one_connection(env, pki):
    """20 requests from curl on one command line reuse a single client TLS connection."""
    urls = [env.proxy.url(f"/echo?i={i}", "a.test") for i in range(20)]
    r = curl(urls, resolve=env.proxy.resolve("a.test"), cafile=pki.ca_path)
    assert r.rc == 0, r.stderr
    assert [int(t["http_code"]) for t in r.transfers] == [200] * 20
    assert sum(int(t["num_connects"]) for t in r.transfers) == 1


def test_upstream_connections_are_pooled(env):
    """30 sequential requests, each on a new client connection, reuse pooled upstream connections:
    origin C accepts only a handful of TCP connections (at most 2 per worker)."""
    env.c.reset()
    for i in range(30):
        r = https_get(env.port, f"/echo?n={i}", sni="pool.wild.test")
        assert r.status == 200 and r.json()["origin"] == "C"
    st = env.c.stats()
    print("origin C after 30 requests:", {k: st[k] for k in ("connections", "requests")})
    assert st["requests"] == 30
    assert st["connections"] <= 4, st


def test_upstream_keepalive_on_one_client_connection(env):
    """On one client connection, 25 sequential requests reach the origin over at most 2 upstream connections."""
    env.c.reset()
    with env.proxy.conn("pool.wild.test") as c:
        for i in range(25):
            r = c.request("GET", f"/echo?k={i}", host="pool.wild.test")
            assert r.status == 200
    st = env.c.stats()
    assert st["requests"] == 25
    assert st["connections"] <= 2, st          # new upstream connections opened during these 25 requests


def test_pipelined_requests_answered_in_order(env):
    """Three requests written in one burst get three responses, in request order."""
    with env.proxy.conn("a.test") as c:
        burst = b"".join(build_request("GET", f"/echo?seq={i}", "a.test") for i in range(3))
        burst += build_request("POST", "/echo?seq=3", "a.test", body=b"pipelined-body")
        c.send(burst)
        got = [c.read_response() for _ in range(4)]
    assert [r.status for r in got] == [200] * 4
    assert [r.json()["target"] for r in got] == [f"/echo?seq={i}" for i in range(4)]
    assert got[3].json()["body"] == "pipelined-body"


# ----- bodies ----------------------------------------------------------------------------------

@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
def test_request_body_reaches_origin(env, chunked):
    """A request body (Content-Length or chunked) arrives at the origin byte for byte."""
    body = os.urandom(100_000)
    with env.proxy.conn("a.test") as c:
        r = c.request("POST", "/sha256", host="a.test", body=body, chunked=chunked)
        assert r.status == 200
        assert r.json() == {"sha256": hashlib.sha256(body).hexdigest(), "length": len(body), "origin": "A"}
        r = c.request("GET", "/echo", host="a.test")          # the connection is still usable
        assert r.status == 200


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
def test_response_body_reaches_client(env, chunked):
    """A response body (Content-Length or chunked from the origin) arrives at the client intact."""
    n = 300_000
    with env.proxy.conn("a.test") as c:
        r = c.request("GET", f"/bytes?n={n}&chunked={int(chunked)}", host="a.test")
        assert r.status == 200
        assert len(r.body) == n
        assert r.body == pattern_bytes(0, n)
        r2 = c.request("GET", "/echo", host="a.test")
        assert r2.status == 200


def test_expect_100_continue(env):
    """`Expect: 100-continue`: the client gets `100 Continue` before sending the body, then the final 200."""
    body = b"x" * 5000
    with env.proxy.conn("a.test") as c:
        c.send(b"POST /sha256 HTTP/1.1\r\nHost: a.test\r\nExpect: 100-continue\r\n"
               b"Content-Length: %d\r\n\r\n" % len(body))
        head = c.read_head()                      # nothing of the body has been sent yet
        assert head.status == 100, head
        c.send(body)
        r = c.read_response()
    assert r.status == 200
    assert r.json()["sha256"] == hashlib.sha256(body).hexdigest()


def test_head_has_no_body_and_connection_stays_usable(env):
    """HEAD gets the headers (Content-Length of the GET) but no body; the next response parses cleanly."""
    with env.proxy.conn("a.test") as c:
        c.send(build_request("HEAD", "/bytes?n=12345", "a.test") + build_request("GET", "/echo?after=head", "a.test"))
        h = c.read_response(method="HEAD")
        assert h.status == 200
        assert h.body == b""
        if h.header("content-length") is not None:
            assert h.header("content-length") == "12345"
        nxt = c.read_response()
        assert nxt.status == 200, nxt
        assert nxt.json()["target"] == "/echo?after=head"


@pytest.mark.parametrize("code", [204, 304])
def test_204_and_304_have_no_body(env, code):
    """204 and 304 responses carry no body; a request pipelined after them is answered correctly."""
    with env.proxy.conn("a.test") as c:
        c.send(build_request("GET", f"/status?code={code}", "a.test") + build_request("GET", "/echo?after=1", "a.test"))
        r = c.read_response()
        assert r.status == code
        assert r.body == b""
        assert r.header("transfer-encoding") is None
        nxt = c.read_response()
        assert nxt.status == 200
        assert nxt.json()["target"] == "/echo?after=1"


# ----- headers ---------------------------------------------------------------------------------

def test_hop_by_hop_request_headers_not_forwarded(env):
    """Connection, Keep-Alive, TE, Trailer, Upgrade, Proxy-Connection and headers named in Connection
    are not forwarded to the origin; end-to-end headers are."""
    with env.proxy.conn("a.test") as c:
        r = c.request("GET", "/echo", host="a.test", headers=[
            ("Connection", "keep-alive, X-Hop-Private"),
            ("Keep-Alive", "timeout=5"),
            ("TE", "trailers"),
            ("Trailer", "X-Checksum"),
            ("Upgrade", "fancy/1"),
            ("Proxy-Connection", "keep-alive"),
            ("X-Hop-Private", "secret"),
            ("X-End-To-End", "kept"),
        ])
    assert r.status == 200
    h = headers_of(r.json())
    for name in ("keep-alive", "te", "trailer", "upgrade", "proxy-connection", "x-hop-private"):
        assert name not in h, f"{name} was forwarded: {h}"
    assert "x-hop-private" not in " ".join(h.get("connection", [])).lower()
    assert h["x-end-to-end"] == ["kept"]


def test_hop_by_hop_response_headers_not_forwarded(env):
    """Hop-by-hop headers in the origin's response (and those its Connection names) do not reach the client."""
    q = "&".join(f"h={v}" for v in ["Connection:X-Resp-Private", "X-Resp-Private:1", "Keep-Alive:timeout=99",
                                      "Proxy-Connection:keep-alive", "Upgrade:fancy/1", "Trailer:X-Sum",
                                      "X-Resp-Public:yes"])
    with env.proxy.conn("a.test") as c:
        r = c.request("GET", f"/status?code=200&{q}", host="a.test")
        assert r.status == 200
        assert r.header("x-resp-public") == "yes"
        for name in ("x-resp-private", "proxy-connection", "upgrade", "trailer"):
            assert not r.has_header(name), r.headers
        assert "timeout=99" not in (r.header("keep-alive") or "")
        assert "x-resp-private" not in " ".join(r.header_all("connection")).lower()
        assert c.request("GET", "/echo", host="a.test").status == 200   # still keep-alive


def test_forwarded_headers_added(env):
    """forwarded_headers: true adds X-Forwarded-For (client address appended), -Proto https, -Host."""
    with env.proxy.conn("fwd.wild.test") as c:
        r = c.request("GET", "/echo", host="fwd.wild.test")
        h = headers_of(r.json())
        assert h["x-forwarded-for"] == ["127.0.0.1"], h
        assert h["x-forwarded-proto"] == ["https"]
        assert h["x-forwarded-host"] == ["fwd.wild.test"]
        r = c.request("GET", "/echo", host="fwd.wild.test", headers=[("X-Forwarded-For", "203.0.113.9")])
        xff = ", ".join(headers_of(r.json())["x-forwarded-for"])
        assert [p.strip() for p in xff.split(",")][-1] == "127.0.0.1", xff
        # A client cannot claim a scheme or host it did not use: its copies are replaced, in any case.
        r = c.request("GET", "/echo", host="fwd.wild.test",
                      headers=[("X-FORWARDED-PROTO", "http"), ("x-forwarded-host", "evil.test")])
        h = headers_of(r.json())
        assert h["x-forwarded-proto"] == ["https"], h
        assert h["x-forwarded-host"] == ["fwd.wild.test"], h
        assert h["x-forwarded-for"] == ["127.0.0.1"], h


def test_forwarded_headers_absent_when_disabled(env):
    """Without forwarded_headers the proxy adds no X-Forwarded-* headers."""
    r = https_get(env.port, "/echo", sni="a.test")
    h = headers_of(r.json())
    assert not {"x-forwarded-for", "x-forwarded-proto", "x-forwarded-host"} & set(h), h


# ----- errors and health -----------------------------------------------------------------------

def test_502_when_no_upstream_accepts(env):
    """When no server of the upstream accepts, the client gets 502 with a short body, and keep-alive holds."""
    with env.proxy.conn("down.wild.test") as c:
        r = c.request("GET", "/echo", host="down.wild.test")
        assert r.status == 502
        assert 0 < len(r.body) <= 1024, r
        r = c.request("GET", "/echo?again", host="down.wild.test")   # same connection still usable
        assert r.status == 502


def test_504_when_upstream_does_not_answer(proxies, origins):
    """An origin that does not answer within timeouts.upstream_response gives 504 (well before it would answer)."""
    o = origins("S")
    p = proxies({"workers": 1, "tls": standard_tls(), "timeouts": {"upstream_response": "1s"},
                 "upstreams": {"s": {"servers": [o.addr]}}, "routes": [{"upstream": "s"}]})
    t0 = time.monotonic()
    r = https_get(p.https_port, "/slow?ms=8000", sni="a.test")
    assert r.status == 504
    assert time.monotonic() - t0 < 7, "the 504 must come from the proxy's timeout, not the origin's answer"
    assert https_get(p.https_port, "/slow?ms=10", sni="a.test").status == 200


def test_passive_health_skips_dead_server(env):
    """With servers [dead, live], every request succeeds: a refused connect fails over to the live server
    and the dead one is skipped afterwards."""
    for i in range(12):
        r = https_get(env.port, f"/echo?h={i}", sni="health.wild.test")
        assert r.status == 200, (i, r)
        assert r.json()["origin"] == "A"


def test_round_robin_spreads_requests(env):
    """round_robin over two live servers: 20 requests on one connection are spread across both (about half each)."""
    seen = {"A": 0, "B": 0}
    with env.proxy.conn("rr.wild.test") as c:
        for i in range(20):
            r = c.request("GET", f"/echo?rr={i}", host="rr.wild.test")
            assert r.status == 200
            seen[r.json()["origin"]] += 1
    assert seen["A"] >= 8 and seen["B"] >= 8, seen


def test_least_conn_prefers_idle_server(proxies, origins):
    """least_conn: while one server is busy with a slow request, new requests go to the other server."""
    a, b = origins("A"), origins("B")
    p = proxies({"workers": 1, "tls": standard_tls(),
                 "upstreams": {"lc": {"servers": [a.addr, b.addr], "balance": "least_conn"}},
                 "routes": [{"upstream": "lc"}]})
    result = {}

    def slow():
        result["r"] = https_get(p.https_port, "/slow?ms=3000", sni="a.test")
    t = threading.Thread(target=slow)
    t.start()
    try:
        deadline = time.monotonic() + 10
        busy = None
        while busy is None and time.monotonic() < deadline:
            for o in (a, b):
                if any(h.startswith("GET /slow") for h in o.stats()["heads"]):
                    busy = o
            time.sleep(0.05)
        assert busy is not None, "slow request never reached an origin"
        other = b if busy is a else a
        with p.conn("a.test") as c:
            for i in range(4):
                r = c.request("GET", f"/echo?lc={i}", host="a.test")
                assert r.json()["origin"] == other.name
    finally:
        t.join(15)
    assert result["r"].status == 200


# ----- websocket -------------------------------------------------------------------------------

def test_websocket_upgrade_tunnels_both_ways(env):
    """`Upgrade: websocket` is passed to the origin; after its 101 frames flow both ways through the proxy."""
    key = base64.b64encode(os.urandom(16)).decode()
    with env.proxy.conn("a.test") as c:
        c.send(build_request("GET", "/ws", "a.test", headers=[
            ("Upgrade", "websocket"), ("Connection", "Upgrade"),
            ("Sec-WebSocket-Key", key), ("Sec-WebSocket-Version", "13")]))
        head = c.read_head()
        assert head.status == 101, head
        expect = base64.b64encode(hashlib.sha1((key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11").encode()).digest()).decode()
        assert head.header("sec-websocket-accept") == expect
        assert (head.header("upgrade") or "").lower() == "websocket"
        c.send(ws_frame(0x1, b"hello through the proxy", mask=True))
        assert ws_read_frame(c) == (0x1, b"hello through the proxy")
        big = os.urandom(70_000)                                     # 64-bit length form
        c.send(ws_frame(0x2, big, mask=True))
        assert ws_read_frame(c) == (0x2, big)
        c.send(ws_frame(0x9, b"ping", mask=True))
        assert ws_read_frame(c) == (0xA, b"ping")
        c.send(ws_frame(0x8, b"\x03\xe8", mask=True))
        assert ws_read_frame(c)[0] == 0x8


# ----- big transfers ---------------------------------------------------------------------------

def _download(conn: HTTPConn, n: int, chunked: bool, pause_s: float = 0.0) -> str:
    conn.send(build_request("GET", f"/bytes?n={n}&chunked={int(chunked)}", "a.test"))
    head = conn.read_head()
    assert head.status == 200
    if pause_s:
        time.sleep(pause_s)          # let the origin run ahead: a proxy without back-pressure would buffer
    h = hashlib.sha256()
    got = [0]

    def sink(b):
        h.update(b)
        got[0] += len(b)
    conn.read_body(head, "GET", sink)
    assert got[0] == n
    return h.hexdigest()


class RSSSampler:
    """Samples the proxy's VmRSS every 50 ms in a thread; .peak is the largest value seen."""

    def __init__(self, proxy):
        self.proxy, self.peak, self._stop = proxy, 0, threading.Event()
        self._t = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        while not self._stop.is_set():
            self.peak = max(self.peak, self.proxy.rss_kb())
            self._stop.wait(0.05)

    def __enter__(self):
        self._t.start()
        return self

    def __exit__(self, *a):
        self._stop.set()
        self._t.join(5)
        self.peak = max(self.peak, self.proxy.rss_kb())


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
def test_big_download_memory_stays_bounded(env, chunked):
    """A 100 MB download streams through: the client gets every byte and the proxy's RSS grows by
    no more than ~8 MB over its post-warm-up value, even while the client pauses reading."""
    n = 100 * 1024 * 1024
    with env.proxy.conn("a.test", timeout=60) as c:
        _download(c, 8 * 1024 * 1024, chunked)                   # warm-up: buffers, pools, allocator
        _download(c, 8 * 1024 * 1024, chunked)
        time.sleep(0.2)
        baseline = env.proxy.rss_kb()
        with RSSSampler(env.proxy) as rss:
            digest = _download(c, n, chunked, pause_s=1.5)
    assert digest == pattern_sha256(n)
    growth_kb = rss.peak - baseline
    print(f"RSS baseline {baseline} kB, peak {rss.peak} kB, growth {growth_kb} kB")
    assert growth_kb <= 8 * 1024 + RSS_SLACK_KB, f"RSS grew {growth_kb} kB (baseline {baseline} kB, peak {rss.peak} kB)"


def test_chunked_upload_arrives_intact(env):
    """A 6 MB chunked upload (uneven chunk sizes) reaches the origin intact (SHA-256 computed by the origin)."""
    body = os.urandom(6 * 1024 * 1024)
    with env.proxy.conn("a.test", timeout=60) as c:
        c.send(b"POST /sha256 HTTP/1.1\r\nHost: a.test\r\nTransfer-Encoding: chunked\r\n\r\n")
        off, sizes = 0, [1, 17, 4096, 65536, 100_000, 333_333]
        i = 0
        while off < len(body):
            take = min(sizes[i % len(sizes)], len(body) - off)
            c.send(b"%x\r\n" % take + body[off:off + take] + b"\r\n")
            off += take
            i += 1
        c.send(b"0\r\n\r\n")
        r = c.read_response()
    assert r.status == 200
    assert r.json()["length"] == len(body)
    assert r.json()["sha256"] == hashlib.sha256(body).hexdigest()


def test_content_length_upload_arrives_intact(env):
    """A 6 MB Content-Length upload reaches the origin intact."""
    body = os.urandom(6 * 1024 * 1024)
    with env.proxy.conn("a.test", timeout=60) as c:
        r = c.request("POST", "/sha256", host="a.test", body=body)
    assert r.status == 200
    assert r.json()["sha256"] == hashlib.sha256(body).hexdigest()


# ----- IPv6 loopback ---------------------------------------------------------------------------

def test_ipv6_listener_and_upstream(proxies, origins):
    """An https listener on [::1] and an upstream server on [::1] work like their IPv4 counterparts."""
    o = origins("V6", host="::1")
    port = free_port("::1")
    p = proxies({"workers": 1, "listen": {"https": [f"[::1]:{port}"]}, "tls": standard_tls(),
                 "upstreams": {"v6": {"servers": [o.addr]}}, "routes": [{"upstream": "v6"}]})
    assert p.https_host == "::1"
    with p.conn("a.test") as c:
        r = c.request("GET", "/echo", host="a.test")
    assert r.status == 200
    assert r.json()["origin"] == "V6"


def test_idle_pool_keeps_a_burst_then_trims_to_keepalive(proxies, origins):
    """keepalive: 2. Ten overlapping requests need ten upstream connections; the next burst right
    after reuses them (no new connects), and the excess idle ones are then closed, half per second,
    down to 2."""
    o = origins("P")
    p = proxies({"workers": 1, "tls": standard_tls(),
                 "upstreams": {"app": {"servers": [o.addr], "keepalive": 2}},
                 "routes": [{"upstream": "app"}]})

    def burst():
        results = []
        threads = [threading.Thread(target=lambda: results.append(https_get(p.https_port, "/slow?ms=400").status))
                   for _ in range(10)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(20)
        assert results == [200] * 10, results

    burst()
    assert o.stats()["connections"] == 10
    burst()
    assert o.stats()["connections"] == 10, "the second burst should reuse the first one's connections"
    deadline = time.monotonic() + 10
    while o.stats()["active"] > 2:
        assert time.monotonic() < deadline, o.stats()
        time.sleep(0.1)
    assert o.stats()["active"] == 2


def test_an_upstream_server_given_by_name_is_resolved_off_the_loops(proxies, origins):
    a = origins("A")
    p = proxies({"tls": standard_tls(), "upstreams": {"named": {"servers": [f"localhost:{a.port}"], "resolve_interval": "1s"}},
                 "routes": [{"upstream": "named"}]})
    for _ in range(3):
        r = https_get(p.https_port, "/echo", sni="a.test")
        assert r.status == 200 and r.header("x-origin") == "A"
        time.sleep(0.6)   # across a background re-resolution
    # A name that does not resolve fails its requests with 502 and a clear reason, and nothing else.
    p2 = proxies({"tls": standard_tls(), "upstreams": {"nowhere": {"servers": ["nowhere.invalid:80"]}},
                  "routes": [{"upstream": "nowhere"}]}, name="unresolvable")
    assert https_get(p2.https_port, "/", sni="a.test").status == 502
    assert "nowhere.invalid:80: the name does not resolve" in p2.stderr() and "does not resolve (yet)" in p2.stderr()


def test_a_request_in_flight_across_a_reload_that_replaces_its_upstream(proxies, origins):
    """The reload replaces the upstream's servers while a response is on its way: the connection
    it used finishes, is closed instead of pooled, and nothing touches the replaced server later."""
    a = origins("A")
    config = {"workers": 1, "tls": standard_tls(), "routes": [{"upstream": "app"}],
              "upstreams": {"app": {"servers": [a.addr], "keepalive_timeout": "1s"}}}
    p = proxies(config)
    done = {}

    def slow():
        done["r"] = https_get(p.https_port, "/slow?ms=800", sni="a.test")
    t = threading.Thread(target=slow)
    t.start()
    time.sleep(0.3)
    config["upstreams"]["app"]["keepalive_timeout"] = "2s"   # a changed group: rebuilt by the reload
    p.write_config(config)
    p.reload()
    t.join()
    assert done["r"].status == 200
    time.sleep(2.5)                                          # past both keep-alive timeouts
    assert p.alive()
    assert https_get(p.https_port, "/echo", sni="a.test").status == 200


# ----- response headers set by a route ---------------------------------------------------------

def header_lines(raw: str, name: str) -> list[str]:
    return [line.split(":", 1)[1].strip() for line in raw.splitlines() if line.lower().startswith(name.lower() + ":")]


@pytest.mark.parametrize("http2", [False, True])
def test_route_response_headers_replace_the_origins_and_mark_fixed_responses(env, http2):
    """`response_headers` set fields on every response of the route, over HTTP/1.1 and HTTP/2: the
    origin's field of the same name is replaced (one line, the route's value), fixed responses get
    them too, and other routes are untouched."""
    extra = ["--http2", "-k"] if http2 else ["-k"]
    def get(host, path):
        r = curl(env.proxy.url(path, host), resolve=env.proxy.resolve(host), extra=extra)
        assert r.rc == 0, r.stderr
        return r
    r = get("hdr.wild.test", "/status?code=200&h=X-Frame-Options:SAMEORIGIN&h=X-Extra:kept")
    assert r.status == 200
    assert header_lines(r.headers, "X-Frame-Options") == ["DENY"]
    assert header_lines(r.headers, "X-Content-Type-Options") == ["nosniff"]
    assert header_lines(r.headers, "X-Extra") == ["kept"]
    fixed = get("hdrfixed.wild.test", "/")
    assert fixed.body == b"hello\n"
    assert header_lines(fixed.headers, "X-Frame-Options") == ["DENY"]
    other = get("a.test", "/status?code=200&h=X-Frame-Options:SAMEORIGIN")
    assert header_lines(other.headers, "X-Frame-Options") == ["SAMEORIGIN"]
    assert header_lines(other.headers, "X-Content-Type-Options") == []
