"""HTTP/2 on the front (ALPN h2, nghttp2): real clients (curl --http2, nghttp, h2load, python h2)
against the proxy in front of HTTP/1.1 origins: bodies both ways, concurrent streams, flow control
toward a slow reader, trailers, 502/504, graceful shutdown, and the abuse protections (rapid reset,
CONTINUATION flood, HPACK bomb, PING flood)."""

from __future__ import annotations

import hashlib
import json
import os
import re
import signal
import socket
import ssl
import struct
import subprocess
import threading
import time

import h2.config
import h2.connection
import h2.events
import h2.settings
import hpack
import pytest

from conftest import free_port, standard_tls, RSS_SLACK_KB
from httpclient import curl
from origin import pattern_sha256
from tools import need_tool

# The issue asks for -n 200000; against a debug build on 2 cores that takes ~90 s, so the suite
# runs 20000 by default (EDGEPROXY_H2LOAD_N=200000 for the full run, done against release builds).
H2LOAD_N = int(os.environ.get("EDGEPROXY_H2LOAD_N", "20000"))


@pytest.fixture(scope="module")
def env(module_proxies, module_origins):
    a = module_origins("A")
    dead = f"127.0.0.1:{free_port()}"
    cfg = {
        "workers": 2,
        "tls": standard_tls(),
        "upstreams": {"main": {"servers": [a.addr], "keepalive": 64}, "down": {"servers": [dead]}},
        "routes": [
            {"host": "down.wild.test", "upstream": "down"},
            {"host": "small.wild.test", "upstream": "main", "max_body": "1k"},
            {"host": "fixed.wild.test", "respond": {"status": 200, "body": "fixed\n", "content_type": "text/plain"}},
            {"upstream": "main"},
        ],
    }
    p = module_proxies(cfg, name="proxy-h2")
    return type("Env", (), {"proxy": p, "a": a, "port": p.https_port})


# ----- a small HTTP/2 client on python h2 -------------------------------------------------------

class H2Client:
    """One TLS connection speaking h2. `auto_ack=False` leaves flow-control windows closed until
    `ack()` is called, which is how a slow reader looks to the server."""

    def __init__(self, port: int, sni: str = "a.test", auto_ack: bool = True, window: int | None = None):
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        ctx.set_alpn_protocols(["h2"])
        raw = socket.create_connection(("127.0.0.1", port), timeout=10)
        self.sock = ctx.wrap_socket(raw, server_hostname=sni)
        assert self.sock.selected_alpn_protocol() == "h2"
        self.conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True, header_encoding="utf-8"))
        self.conn.initiate_connection()
        if window is not None:
            self.conn.update_settings({h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: window})
        self.auto_ack = auto_ack
        self.responses: dict[int, dict] = {}
        self.terminated: h2.events.ConnectionTerminated | None = None
        self.closed = False
        self.flush()

    def flush(self) -> None:
        data = self.conn.data_to_send()
        if data:
            self.sock.sendall(data)

    def request(self, path: str, method: str = "GET", authority: str = "a.test", body: bytes | None = None,
                headers: list[tuple[str, str]] = ()) -> int:
        sid = self.conn.get_next_available_stream_id()
        hdrs = [(":method", method), (":scheme", "https"), (":authority", authority), (":path", path)] + list(headers)
        self.conn.send_headers(sid, hdrs, end_stream=body is None)
        self.responses[sid] = {"headers": None, "body": bytearray(), "trailers": None, "ended": False, "reset": None}
        if body is not None:
            self.flush()
            self.send_body(sid, body)
        self.flush()
        return sid

    def send_body(self, sid: int, body: bytes) -> None:
        off = 0
        while off < len(body):
            window = min(self.conn.local_flow_control_window(sid), self.conn.max_outbound_frame_size)
            if window <= 0:
                self.pump(0.5)
                continue
            chunk = body[off:off + window]
            self.conn.send_data(sid, chunk)
            off += len(chunk)
            self.flush()
        self.conn.end_stream(sid)
        self.flush()

    def pump(self, timeout: float = 5.0) -> bool:
        """Reads once (up to `timeout`); False when the connection is gone."""
        self.sock.settimeout(timeout)
        try:
            data = self.sock.recv(65536)
        except socket.timeout:
            return True
        except (ConnectionError, ssl.SSLError):
            data = b""
        if not data:
            self.closed = True
            return False
        for ev in self.conn.receive_data(data):
            r = self.responses.get(getattr(ev, "stream_id", None) or 0)
            if isinstance(ev, h2.events.ResponseReceived) and r is not None:
                r["headers"] = dict(ev.headers)
                r["header_list"] = ev.headers
            elif isinstance(ev, h2.events.InformationalResponseReceived) and r is not None:
                r.setdefault("interim", []).append(dict(ev.headers))
            elif isinstance(ev, h2.events.DataReceived) and r is not None:
                r["body"] += ev.data
                if self.auto_ack:
                    self.conn.acknowledge_received_data(ev.flow_controlled_length, ev.stream_id)
            elif isinstance(ev, h2.events.TrailersReceived) and r is not None:
                r["trailers"] = dict(ev.headers)
            elif isinstance(ev, h2.events.StreamEnded) and r is not None:
                r["ended"] = True
            elif isinstance(ev, h2.events.StreamReset) and r is not None:
                r["reset"] = ev.error_code
                r["ended"] = True
            elif isinstance(ev, h2.events.ConnectionTerminated):
                self.terminated = ev
        try:
            self.flush()
        except OSError:
            pass
        return True

    def wait(self, sids, timeout: float = 20.0) -> None:
        deadline = time.monotonic() + timeout
        while not all(self.responses[s]["ended"] for s in sids):
            assert time.monotonic() < deadline, f"streams {sids} did not end"
            if not self.pump(1.0):
                break

    def get(self, path: str, **kw) -> dict:
        sid = self.request(path, **kw)
        self.wait([sid])
        return self.responses[sid]

    def close(self) -> None:
        try:
            self.sock.close()
        except OSError:
            pass


def h2_curl(env_or_proxy, path: str, host: str = "a.test", extra: list[str] = ()):
    p = getattr(env_or_proxy, "proxy", env_or_proxy)
    return curl(p.url(path, host=host), resolve=p.resolve(host), extra=["--http2", "-k"] + list(extra))


# ----- basic exchanges -----------------------------------------------------------------------

def test_curl_http2_get_is_proxied(env):
    r = h2_curl(env, "/echo?x=1")
    assert r.rc == 0, r.stderr
    assert r.transfers[0]["http_version"] == "2"
    assert r.transfers[0]["response_code"] == 200
    echo = json.loads(r.body)
    assert echo["target"] == "/echo?x=1"
    names = {k.lower(): v for k, v in echo["headers"]}
    assert names["host"] == f"a.test:{env.port}"
    assert names["x-forwarded-proto"] == "https"
    assert echo["version"] == "HTTP/1.1"


def test_curl_http2_post_body(env, tmp_path):
    data = os.urandom(3 * 1024 * 1024 + 17)
    f = tmp_path / "body"
    f.write_bytes(data)
    r = h2_curl(env, "/sha256", extra=["--data-binary", f"@{f}", "-H", "Content-Type: application/octet-stream"])
    assert r.rc == 0, r.stderr
    assert r.transfers[0]["http_version"] == "2"
    assert json.loads(r.body) == {"sha256": hashlib.sha256(data).hexdigest(), "length": len(data), "origin": "A"}


def test_nghttp_get_and_post(env, tmp_path):
    data = os.urandom(200_000)
    f = tmp_path / "post"
    f.write_bytes(data)
    url = f"https://127.0.0.1:{env.port}/sha256"
    p = subprocess.run([need_tool("nghttp", "nghttp2-client"), "-H", ":authority: a.test", "-d", str(f), url], capture_output=True, timeout=30)
    assert p.returncode == 0, p.stderr
    assert json.loads(p.stdout)["sha256"] == hashlib.sha256(data).hexdigest()
    p = subprocess.run([need_tool("nghttp", "nghttp2-client"), "-s", f"https://127.0.0.1:{env.port}/bytes?n=1000000&chunked=1"],
                       capture_output=True, timeout=30)
    assert p.returncode == 0, p.stderr
    assert hashlib.sha256(p.stdout[:1000000]).hexdigest() == pattern_sha256(1000000)


def test_post_without_content_length_streams_chunked(env):
    c = H2Client(env.port)
    try:
        body = os.urandom(700_000)
        r = c.get("/echo", method="POST", body=body)
        echo = json.loads(bytes(r["body"]))
        assert echo["body_sha256"] == hashlib.sha256(body).hexdigest()
        names = {k.lower(): v for k, v in echo["headers"]}
        assert names.get("transfer-encoding") == "chunked"
    finally:
        c.close()


def test_response_headers_are_lower_case_and_connection_specific_stripped(env):
    c = H2Client(env.port)
    try:
        r = c.get("/status?code=200&h=X-Mixed-Case:yes&h=Keep-Alive:timeout=5&h=Connection:close")
        names = [k for k, _ in r["header_list"]]
        assert all(k == k.lower() for k in names)
        assert "x-mixed-case" in names
        assert "keep-alive" not in names and "connection" not in names
        # The connection is still fine after the origin asked to close its own.
        assert c.get("/echo")["headers"][":status"] == "200"
    finally:
        c.close()


def test_authority_routes_like_host(env):
    c = H2Client(env.port)
    try:
        assert bytes(c.get("/", authority="fixed.wild.test")["body"]) == b"fixed\n"
        r = c.get("/echo", authority="a.test")
        assert json.loads(bytes(r["body"]))["origin"] == "A"
    finally:
        c.close()


def test_cookie_crumbs_joined(env):
    c = H2Client(env.port)
    try:
        r = c.get("/echo", headers=[("cookie", "a=1"), ("cookie", "b=2")])
        names = [(k.lower(), v) for k, v in json.loads(bytes(r["body"]))["headers"]]
        assert ("cookie", "a=1; b=2") in names
    finally:
        c.close()


def test_many_concurrent_streams_on_one_connection(env):
    """50 streams that each wait 300 ms at the origin finish together, not one after another."""
    c = H2Client(env.port)
    try:
        t0 = time.monotonic()
        sids = [c.request("/slow?ms=300") for _ in range(50)]
        c.wait(sids, timeout=30)
        elapsed = time.monotonic() - t0
        assert all(c.responses[s]["headers"][":status"] == "200" for s in sids)
        assert elapsed < 5.0, f"streams were not concurrent: {elapsed:.1f}s"
        sids = [c.request(f"/bytes?n={10000 + i}") for i in range(100)]
        c.wait(sids)
        for i, s in enumerate(sids):
            assert len(c.responses[s]["body"]) == 10000 + i
    finally:
        c.close()


def test_trailers_are_passed(env):
    c = H2Client(env.port)
    try:
        r = c.get("/trailers?body=hello")
        assert bytes(r["body"]) == b"hello"
        assert r["trailers"] == {"x-checksum": hashlib.sha256(b"hello").hexdigest(), "x-note": "done"}
    finally:
        c.close()


def test_early_hints_are_relayed(env):
    """The origin's 103 Early Hints reaches the client as an interim HEADERS frame before the 200."""
    c = H2Client(env.port)
    try:
        r = c.get("/early-hints")
        assert r["headers"][":status"] == "200"
        interim = r.get("interim")
        assert interim and len(interim) == 1, r
        assert interim[0][":status"] == "103" and interim[0]["link"] == "</style.css>; rel=preload; as=style", interim
        assert bytes(r["body"]) == b"final\n"
    finally:
        c.close()


def test_early_hints_over_http1(env):
    """HTTP/1.1 clients get the 103 too, then the final response."""
    from httpclient import tls_connect
    with tls_connect(env.port, "a.test") as s:
        s.sendall(b"GET /early-hints HTTP/1.1\r\nHost: a.test\r\nConnection: close\r\n\r\n")
        got = b""
        while True:
            chunk = s.recv(4096)
            if not chunk:
                break
            got += chunk
    assert got.startswith(b"HTTP/1.1 103 Early Hints\r\n"), got[:200]
    assert b"link: </style.css>; rel=preload; as=style" in got.lower()
    assert b"HTTP/1.1 200 " in got and got.endswith(b"final\n")


def test_head_and_204(env):
    c = H2Client(env.port)
    try:
        r = c.get("/bytes?n=5000", method="HEAD")
        assert r["headers"][":status"] == "200" and r["headers"]["content-length"] == "5000"
        assert bytes(r["body"]) == b""
        r = c.get("/status?code=204")
        assert r["headers"][":status"] == "204" and bytes(r["body"]) == b""
    finally:
        c.close()


def test_body_limit_413(env):
    c = H2Client(env.port)
    try:
        r = c.get("/sha256", method="POST", authority="small.wild.test", body=b"x" * 5000,
                  headers=[("content-length", "5000")])
        assert r["headers"][":status"] == "413"
        r = c.get("/sha256", method="POST", authority="small.wild.test", body=b"x" * 5000)
        assert r["headers"][":status"] == "413" or r["reset"] is not None
    finally:
        c.close()


def test_header_list_too_large_431(env):
    c = H2Client(env.port)
    try:
        r = c.get("/echo", headers=[("x-big", "v" * 20000)])
        assert r["headers"][":status"] == "431"
        assert c.get("/echo")["headers"][":status"] == "200"
    finally:
        c.close()


def test_502_and_504(env, proxies, origins):
    r = h2_curl(env, "/", host="down.wild.test")
    assert r.transfers[0]["http_version"] == "2"
    assert r.transfers[0]["response_code"] == 502
    a = origins("slow")
    p = proxies({"tls": standard_tls(), "timeouts": {"upstream_response": "1s"},
                 "upstreams": {"main": {"servers": [a.addr]}}, "routes": [{"upstream": "main"}]})
    r = h2_curl(p, "/slow?ms=3000")
    assert r.transfers[0]["response_code"] == 504


def test_access_log_shows_protocol(env):
    h2_curl(env, "/echo?logged=h2")
    time.sleep(0.3)
    recs = [r for r in env.proxy.access_log() if r["path"] == "/echo?logged=h2"]
    assert recs and recs[-1]["protocol"] == "HTTP/2" and recs[-1]["status"] == 200
    assert recs[-1]["upstream"] == env.a.addr


# ----- flow control toward a slow reader ---------------------------------------------------------

def test_large_download_to_slow_reader_does_not_grow_rss(env):
    """200 MB requested by a client that keeps its window closed: the proxy must pause the origin,
    not buffer. Afterwards the client reads everything and it arrives intact."""
    n = 64 * 1024 * 1024
    c = H2Client(env.port, auto_ack=False)
    try:
        base = env.proxy.rss_kb()
        sid = c.request(f"/bytes?n={n}")
        deadline = time.monotonic() + 3
        while time.monotonic() < deadline:
            c.pump(0.2)
        grown = env.proxy.rss_kb() - base
        got = len(c.responses[sid]["body"])
        assert got <= 1024 * 1024, f"the proxy sent past the client's window: {got}"
        assert grown < 8 * 1024 + RSS_SLACK_KB, f"RSS grew by {grown} kB while the client did not read"
        # Now read it all, acknowledging as we go.
        c.auto_ack = True
        c.conn.acknowledge_received_data(got, sid) if got else None
        c.conn.increment_flow_control_window(16 * 1024 * 1024)
        c.conn.increment_flow_control_window(16 * 1024 * 1024, sid)
        c.flush()
        c.wait([sid], timeout=120)
        body = bytes(c.responses[sid]["body"])
        assert len(body) == n
        assert hashlib.sha256(body).hexdigest() == pattern_sha256(n)
        assert env.proxy.rss_kb() - base < 48 * 1024 + RSS_SLACK_KB
    finally:
        c.close()


# ----- graceful shutdown ---------------------------------------------------------------------

def test_graceful_shutdown_lets_open_streams_finish(proxies, origins):
    """SIGTERM while five streams wait at the origin: GOAWAY (NO_ERROR) goes out, the five finish,
    the process exits 0. nghttp is the client (python h2 treats any GOAWAY as the end)."""
    a = origins("A")
    p = proxies({"tls": standard_tls(), "upstreams": {"main": {"servers": [a.addr]}}, "routes": [{"upstream": "main"}]})
    cmd = [need_tool("nghttp", "nghttp2-client"), "-v", "-m", "5", f"https://127.0.0.1:{p.https_port}/slow?ms=1500"]
    client = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    time.sleep(0.6)
    p.send_signal(signal.SIGTERM)
    out, _ = client.communicate(timeout=30)
    assert client.returncode == 0, out
    assert "recv GOAWAY frame" in out and "error_code=NO_ERROR" in out, out
    assert len(re.findall(r"recv \(stream_id=\d+\) :status: 200", out)) == 5, out
    assert out.count("slept 1500") == 5, out
    assert p.wait(20) == 0


# ----- protections -------------------------------------------------------------------------

def test_rapid_reset_closes_the_connection_others_keep_working(env):
    c = H2Client(env.port)
    stop = threading.Event()
    ok = []

    def other_client():
        while not stop.is_set():
            r = h2_curl(env, "/echo")
            ok.append(r.rc == 0 and r.transfers[0]["response_code"] == 200)

    t = threading.Thread(target=other_client)
    t.start()
    try:
        sent = 0
        for _ in range(2000):
            if c.closed or c.terminated:
                break
            sid = c.conn.get_next_available_stream_id()
            c.conn.send_headers(sid, [(":method", "GET"), (":scheme", "https"), (":authority", "a.test"),
                                      (":path", "/slow?ms=200")])
            c.conn.reset_stream(sid)
            try:
                c.flush()
            except OSError:
                break
            sent += 1
            if sent % 50 == 0:
                c.pump(0.05)
        deadline = time.monotonic() + 10
        while not (c.closed or c.terminated) and time.monotonic() < deadline:
            c.pump(0.5)
        assert c.terminated is not None or c.closed
        if c.terminated:
            assert c.terminated.error_code == 0xb   # ENHANCE_YOUR_CALM
        assert sent < 2000
    finally:
        time.sleep(0.5)
        stop.set()
        t.join()
        c.close()
    assert ok and all(ok)
    assert h2_curl(env, "/echo").transfers[0]["response_code"] == 200


def raw_h2(port: int):
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    ctx.set_alpn_protocols(["h2"])
    s = ctx.wrap_socket(socket.create_connection(("127.0.0.1", port), timeout=10), server_hostname="a.test")
    s.sendall(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + frame(4, 0, 0, b""))
    return s


def frame(ftype: int, flags: int, sid: int, payload: bytes) -> bytes:
    return struct.pack(">I", len(payload))[1:] + bytes([ftype, flags]) + struct.pack(">I", sid) + payload


def read_until_closed(s, timeout: float = 10) -> bytes:
    """Everything the server sends until it closes; returns the bytes (GOAWAY among them)."""
    out = b""
    s.settimeout(timeout)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            d = s.recv(65536)
        except socket.timeout:
            raise AssertionError("the server did not close the connection")
        except (ConnectionError, ssl.SSLError):
            break
        if not d:
            break
        out += d
    return out


def goaway_codes(data: bytes) -> list[int]:
    codes, i = [], 0
    while i + 9 <= len(data):
        length = int.from_bytes(data[i:i + 3], "big")
        if data[i + 3] == 7:
            codes.append(int.from_bytes(data[i + 13:i + 17], "big"))
        i += 9 + length
    return codes


def test_continuation_flood_closes_connection(env):
    s = raw_h2(env.port)
    enc = hpack.Encoder()
    block = enc.encode([(":method", "GET"), (":scheme", "https"), (":authority", "a.test"), (":path", "/")])
    try:
        s.sendall(frame(1, 0, 1, block))    # HEADERS without END_HEADERS
        for _ in range(1000):
            s.sendall(frame(9, 0, 1, enc.encode([("x-a", "b")])))
    except (ConnectionError, ssl.SSLError):
        pass
    data = read_until_closed(s)
    assert goaway_codes(data) or "Too many CONTINUATION frames" in env.proxy.stderr()
    assert h2_curl(env, "/echo").transfers[0]["response_code"] == 200


def test_hpack_bomb_closes_connection(env):
    s = raw_h2(env.port)
    # One 4000-byte value enters the dynamic table, then each 1-byte index re-emits it.
    enc = hpack.Encoder()
    first = enc.encode([(":method", "GET"), (":scheme", "https"), (":authority", "a.test"), (":path", "/"),
                        ("x-bomb", "b" * 4000)])
    index = bytes([0x80 | 62])   # the newest dynamic entry
    block = first + index * 10000
    try:
        # HEADERS, then CONTINUATIONs of 16 KiB (nghttp2 caps CONTINUATION count; keep under it).
        s.sendall(frame(1, 0x4 | 0x1, 1, block[:16384]))
    except (ConnectionError, ssl.SSLError):
        pass
    read_until_closed(s)
    time.sleep(0.2)
    assert "HPACK bomb" in env.proxy.stderr()
    assert h2_curl(env, "/echo").transfers[0]["response_code"] == 200


def test_ping_flood_closes_connection(env):
    s = raw_h2(env.port)
    try:
        for i in range(5000):
            s.sendall(frame(6, 0, 0, struct.pack(">Q", i)))
    except (ConnectionError, ssl.SSLError):
        pass
    data = read_until_closed(s)
    # The GOAWAY may be lost to the TCP reset of closing with unread input; the log says why.
    assert 0xb in goaway_codes(data) or "flood of PING frames" in env.proxy.stderr()


def test_settings_flood_closes_connection(env):
    s = raw_h2(env.port)
    try:
        for i in range(5000):
            s.sendall(frame(4, 0, 0, b""))
    except (ConnectionError, ssl.SSLError):
        pass
    data = read_until_closed(s)
    assert goaway_codes(data) or "flood of SETTINGS frames" in env.proxy.stderr()


# ----- load ------------------------------------------------------------------------------------

def test_h2load_many_streams_zero_errors(env):
    p = subprocess.run([need_tool("h2load", "nghttp2-client"), "-c", "32", "-m", "16", "-n", str(H2LOAD_N), "-t", "1",
                        f"https://127.0.0.1:{env.port}/bytes?n=1024"], capture_output=True, text=True, timeout=600)
    assert p.returncode == 0, p.stderr
    m = re.search(r"requests: (\d+) total, (\d+) started, (\d+) done, (\d+) succeeded, (\d+) failed, (\d+) errored",
                  p.stdout)
    assert m, p.stdout
    total, _, done, ok, failed, errored = map(int, m.groups())
    assert (done, ok, failed, errored) == (H2LOAD_N, H2LOAD_N, 0, 0), p.stdout
    assert "status codes: %d 2xx" % H2LOAD_N in p.stdout, p.stdout


# ----- websockets over HTTP/2 (RFC 8441) ----------------------------------------------------------

def test_websocket_over_http2_extended_connect(env):
    from origin import ws_frame
    c = H2Client(env.port)
    try:
        # The server offers extended CONNECT in its SETTINGS (RFC 8441 §3).
        while c.conn.remote_settings.get(h2.settings.SettingCodes.ENABLE_CONNECT_PROTOCOL) != 1:
            assert c.pump(2.0), "connection closed before SETTINGS"
        sid = c.conn.get_next_available_stream_id()
        c.conn.send_headers(sid, [(":method", "CONNECT"), (":protocol", "websocket"), (":scheme", "https"),
                                  (":authority", "a.test"), (":path", "/ws"), ("sec-websocket-version", "13")])
        c.responses[sid] = {"headers": None, "body": bytearray(), "trailers": None, "ended": False, "reset": None}
        c.flush()
        deadline = time.monotonic() + 10
        while c.responses[sid]["headers"] is None:
            assert time.monotonic() < deadline and c.pump(1.0), c.responses[sid]
        headers = c.responses[sid]["headers"]
        assert headers[":status"] == "200", headers
        assert "sec-websocket-accept" not in headers and "upgrade" not in headers
        # Frames both ways over DATA: the origin echoes each one.
        for payload in (b"hello over h2", os.urandom(3000)):
            c.responses[sid]["body"] = bytearray()
            c.conn.send_data(sid, ws_frame(0x2, payload, mask=True))
            c.flush()
            expected = ws_frame(0x2, payload)
            deadline = time.monotonic() + 10
            while len(c.responses[sid]["body"]) < len(expected):
                assert time.monotonic() < deadline and c.pump(1.0), c.responses[sid]
            assert bytes(c.responses[sid]["body"]) == expected
        # A close frame is answered with one, and the origin closing ends the stream.
        c.responses[sid]["body"] = bytearray()
        c.conn.send_data(sid, ws_frame(0x8, b"\x03\xe8", mask=True))
        c.flush()
        c.wait([sid])
        assert bytes(c.responses[sid]["body"][:2]) == b"\x88\x02" and c.responses[sid]["reset"] is None
        # Plain CONNECT (a TCP tunnel) and other protocols are still refused.
        r = c.get("/", method="CONNECT", headers=[(":protocol", "bogus")])
        assert r["headers"][":status"] == "501", r
    finally:
        c.close()
