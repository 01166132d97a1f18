"""HTTP/2 abuse beyond test_http2.py's protections (issue 13 item 3): stream floods at the
concurrency limit, WINDOW_UPDATE floods and overflows, clients that never open their window,
SETTINGS with extreme and invalid values, and header blocks trickled in. Frames are written by
hand (hpack for header blocks) on a real TLS socket, so the client can break the rules python-h2
enforces; a normal client is served meanwhile."""

from __future__ import annotations

import socket
import ssl
import struct
import time

import hpack
import pytest

from abuse import PeakRSS, Prober, cpu_seconds, wait_for_no_clients
from conftest import standard_tls, RSS_SLACK_KB

DATA, HEADERS, RST_STREAM, SETTINGS, PING, GOAWAY, WINDOW_UPDATE, CONTINUATION = 0, 1, 3, 4, 6, 7, 8, 9
END_STREAM, ACK, END_HEADERS = 0x1, 0x1, 0x4
NO_ERROR, PROTOCOL_ERROR, FLOW_CONTROL_ERROR, REFUSED_STREAM, ENHANCE_YOUR_CALM = 0, 1, 3, 7, 11
MAX_CONCURRENT = 8
IDLE = 2.0


@pytest.fixture(scope="module")
def env(module_proxies, module_origins):
    o = module_origins("A")
    return module_proxies({"workers": 1, "tls": standard_tls(), "timeouts": {"idle": f"{IDLE:g}s", "header": "2s"},
                           "http2": {"max_concurrent_streams": MAX_CONCURRENT},
                           "upstreams": {"app": {"servers": [o.addr]}}, "routes": [{"upstream": "app"}]},
                          name="proxy-h2-abuse")


def frame(ftype: int, flags: int, sid: int, payload: bytes = b"") -> bytes:
    return struct.pack(">I", len(payload))[1:] + bytes([ftype, flags]) + struct.pack(">I", sid) + payload


class RawH2:
    """An HTTP/2 client that writes whatever frames it is told to. It acknowledges the server's
    SETTINGS, and the DATA it reads with WINDOW_UPDATE unless `reads` is False."""

    def __init__(self, port: int, settings: dict[int, int] | None = None, reads: bool = True):
        self.reads = reads
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        ctx.set_alpn_protocols(["h2"])
        self.sock = ctx.wrap_socket(socket.create_connection(("127.0.0.1", port), timeout=10), server_hostname="a.test")
        assert self.sock.selected_alpn_protocol() == "h2"
        self.enc, self.dec = hpack.Encoder(), hpack.Decoder()
        self.buf = b""
        self.status: dict[int, int] = {}          # stream -> :status
        self.body: dict[int, int] = {}            # stream -> DATA bytes received
        self.ended: set[int] = set()
        self.resets: dict[int, int] = {}          # stream -> RST_STREAM code
        self.goaway: int | None = None
        self.closed = False
        payload = b"".join(struct.pack(">HI", k, v) for k, v in (settings or {}).items())
        self.send(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + frame(SETTINGS, 0, 0, payload))

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def block(self, path: str, extra=()) -> bytes:
        return self.enc.encode([(":method", "GET"), (":scheme", "https"), (":authority", "a.test"), (":path", path)]
                               + list(extra))

    def request(self, sid: int, path: str) -> None:
        self.send(frame(HEADERS, END_STREAM | END_HEADERS, sid, self.block(path)))

    def pump(self, timeout: float) -> bool:
        """Reads and handles frames for up to `timeout`; False once the connection is closed."""
        deadline = time.monotonic() + timeout
        while not self.closed and time.monotonic() < deadline:
            self.sock.settimeout(max(0.01, deadline - time.monotonic()))
            try:
                data = self.sock.recv(65536)
            except (socket.timeout, TimeoutError):
                break
            except (ConnectionError, ssl.SSLError):
                data = b""
            if not data:
                self.closed = True
                break
            self.buf += data
            self._frames()
        return not self.closed

    def _frames(self) -> None:
        while len(self.buf) >= 9:
            length = int.from_bytes(self.buf[:3], "big")
            if len(self.buf) < 9 + length:
                return
            ftype, flags, sid = self.buf[3], self.buf[4], struct.unpack(">I", self.buf[5:9])[0] & 0x7FFFFFFF
            payload, self.buf = self.buf[9:9 + length], self.buf[9 + length:]
            if ftype == SETTINGS and not flags & ACK:
                self.send(frame(SETTINGS, ACK, 0))
            elif ftype == HEADERS:
                status = dict(self.dec.decode(payload)).get(":status")
                if status and int(status) >= 200:
                    self.status[sid] = int(status)
            elif ftype == DATA:
                self.body[sid] = self.body.get(sid, 0) + length
                if self.reads and length:
                    self.send(frame(WINDOW_UPDATE, 0, 0, struct.pack(">I", length))
                              + (b"" if flags & END_STREAM else frame(WINDOW_UPDATE, 0, sid, struct.pack(">I", length))))
            elif ftype == RST_STREAM:
                self.resets[sid] = struct.unpack(">I", payload)[0]
            elif ftype == GOAWAY:
                self.goaway = struct.unpack(">I", payload[4:8])[0]
            if ftype in (HEADERS, DATA) and flags & END_STREAM or ftype == RST_STREAM:
                self.ended.add(sid)

    def wait(self, sids, timeout: float = 10) -> None:
        deadline = time.monotonic() + timeout
        while not set(sids) <= self.ended and time.monotonic() < deadline and self.pump(0.2):
            pass

    def close(self) -> None:
        self.sock.close()


def still_serves(c: RawH2, sid: int) -> None:
    """A request on the same connection is answered in full."""
    c.request(sid, "/bytes?n=1000")
    c.wait([sid])
    assert (c.status.get(sid), c.body.get(sid)) == (200, 1000), (c.status, c.body, c.resets, c.goaway)


# ----- streams ---------------------------------------------------------------------------------

def test_stream_flood_at_the_concurrency_limit(env):
    """A client that keeps exactly the limit (8) of streams open, opening a new one as each ends,
    for 400 streams: every one is served, the connection stays up, another client is served."""
    c = RawH2(env.https_port)
    c.pump(0.3)
    total, next_sid = 400, 1
    with Prober(env.https_port, "/echo") as probe:
        open_sids: set[int] = set()
        deadline = time.monotonic() + 60
        while (next_sid < 2 * total or open_sids) and time.monotonic() < deadline:
            while len(open_sids) < MAX_CONCURRENT and next_sid < 2 * total:
                c.request(next_sid, "/bytes?n=2000")
                open_sids.add(next_sid)
                next_sid += 2
            assert c.pump(0.05), (c.goaway, c.resets)
            open_sids -= c.ended
    probe.check(bound=2.0)
    sids = range(1, 2 * total, 2)
    assert all((c.status.get(s), c.body.get(s)) == (200, 2000) for s in sids), (len(c.ended), c.resets, c.goaway)
    assert c.goaway is None and not c.resets
    c.close()


def test_streams_past_the_concurrency_limit(env):
    """8 slow streams (the limit) and 40 more in one write. RFC 9113 §5.1.2 allows refusing the
    extra streams (REFUSED_STREAM / PROTOCOL_ERROR); nghttp2 ends the whole connection instead
    (GOAWAY PROTOCOL_ERROR), as the client broke the limit it acknowledged. Either way nothing
    past the limit is served, and another client is served throughout."""
    c = RawH2(env.https_port)
    c.pump(0.3)
    served = list(range(1, 2 * MAX_CONCURRENT, 2))
    extra = list(range(2 * MAX_CONCURRENT + 1, 2 * (MAX_CONCURRENT + 40), 2))
    with Prober(env.https_port, "/echo") as probe:
        c.send(b"".join(frame(HEADERS, END_STREAM | END_HEADERS, s, c.block("/slow?ms=500")) for s in served + extra))
        c.wait(served + extra)
    probe.check(bound=2.0, at_least=1)
    if c.goaway is None:
        assert all(c.status.get(s) == 200 for s in served), (c.status, c.resets)
        assert all(c.resets.get(s) in (REFUSED_STREAM, PROTOCOL_ERROR) for s in extra), c.resets
    else:
        assert c.goaway == PROTOCOL_ERROR and not any(s in c.status for s in extra), (c.goaway, c.status)
    c.close()


# ----- flow control -------------------------------------------------------------------------------

def test_window_update_flood_is_cheap_and_harmless(env):
    """20,000 WINDOW_UPDATE frames (increment 1) on the connection and on an open stream: they
    cost the proxy little CPU and elicit no frames; the connection is either left working (the
    frames only widen windows) or closed as a flood (ENHANCE_YOUR_CALM)."""
    c = RawH2(env.https_port)
    c.pump(0.3)
    c.request(1, "/slow?ms=3000")
    cpu0 = cpu_seconds(env.pid)
    with Prober(env.https_port, "/echo") as probe:
        burst = frame(WINDOW_UPDATE, 0, 0, struct.pack(">I", 1)) + frame(WINDOW_UPDATE, 0, 1, struct.pack(">I", 1))
        try:
            for _ in range(100):
                c.send(burst * 100)
        except (ConnectionError, ssl.SSLError):
            pass
        c.pump(0.5)
    spent = cpu_seconds(env.pid) - cpu0
    probe.check(bound=2.0, at_least=1)
    assert spent < 2.0, f"{spent:.2f} s of CPU for 20,000 WINDOW_UPDATE frames"
    if c.goaway is None and not c.closed:
        still_serves(c, 3)
    else:
        assert c.goaway == ENHANCE_YOUR_CALM, c.goaway
    c.close()


@pytest.mark.parametrize("sid, code", [(0, FLOW_CONTROL_ERROR), (1, FLOW_CONTROL_ERROR)], ids=["connection", "stream"])
def test_window_update_overflow_is_a_flow_control_error(env, sid, code):
    """A window pushed past 2^31-1 (RFC 9113 §6.9.1): FLOW_CONTROL_ERROR, for the connection
    (GOAWAY) or the stream (RST_STREAM)."""
    c = RawH2(env.https_port)
    c.pump(0.3)
    c.request(1, "/slow?ms=2000")
    c.send(frame(WINDOW_UPDATE, 0, sid, struct.pack(">I", 0x7FFFFFFF)))
    c.wait([1], timeout=5)
    assert (c.goaway if sid == 0 else c.resets.get(1)) == code, (c.goaway, c.resets)
    c.close()


@pytest.mark.parametrize("window", ["stream", "connection"])
def test_client_that_never_opens_its_window(env, window):
    """A client asks for 8 × 20 MB and never sends WINDOW_UPDATE (stream windows of 0, or the
    connection's 65,535 bytes used up): memory stays bounded (the origins are paused), and once
    no byte could be written for the idle timeout (2 s) the connection is closed, its origin
    connections with it."""
    c = RawH2(env.https_port, {0x4: 0} if window == "stream" else {}, reads=False)
    c.pump(0.3)
    sids = list(range(1, 2 * MAX_CONCURRENT, 2))
    with Prober(env.https_port, "/echo") as probe, PeakRSS(env) as rss:
        rss0 = env.rss_kb()
        t0 = time.monotonic()
        c.send(b"".join(frame(HEADERS, END_STREAM | END_HEADERS, s, c.block("/bytes?n=20000000")) for s in sids))
        while c.pump(0.5) and time.monotonic() - t0 < IDLE + 8:
            pass
        held = time.monotonic() - t0
    probe.check(bound=2.0)
    print(f"closed after {held:.1f} s; RSS {rss0} kB, peak {rss.peak} kB")
    assert sum(c.body.values()) <= 65535
    # Each stream keeps at most 64 KiB beyond the window; the rest waits at the paused origins.
    assert rss.peak - rss0 < MAX_CONCURRENT * 64 + 8 * 1024 + RSS_SLACK_KB, f"RSS grew {rss.peak - rss0} kB"
    assert c.closed, f"a connection that never opened its window was held {held:.1f} s"
    assert held < IDLE + 4
    c.close()
    wait_for_no_clients(env.https_port, within=3)


# ----- SETTINGS ------------------------------------------------------------------------------------

def test_extreme_but_valid_settings_are_honoured(env):
    """The largest legal values (header table 2^32-1, frames of 2^24-1 bytes, windows of 2^31-1,
    no concurrent pushes, a header list size of 1, an unknown setting): requests are served."""
    c = RawH2(env.https_port, {0x1: 0xFFFFFFFF, 0x2: 0, 0x3: 0, 0x4: 0x7FFFFFFF, 0x5: 0xFFFFFF, 0x6: 1, 0xFA: 7})
    c.pump(0.3)
    c.send(frame(WINDOW_UPDATE, 0, 0, struct.pack(">I", 0x7FFFFFFF - 65535)))
    for sid in (1, 3, 5):
        c.request(sid, "/bytes?n=3000000")
    c.wait([1, 3, 5], timeout=30)
    assert all((c.status.get(s), c.body.get(s)) == (200, 3000000) for s in (1, 3, 5)), (c.status, c.body, c.goaway)
    still_serves(c, 7)
    c.close()


@pytest.mark.parametrize("setting, value, code", [(0x4, 0x80000000, FLOW_CONTROL_ERROR), (0x5, 100, PROTOCOL_ERROR),
                                                  (0x5, 0x1000000, PROTOCOL_ERROR), (0x2, 2, PROTOCOL_ERROR)],
                         ids=["window-over-2^31-1", "frame-size-below-16k", "frame-size-over-2^24-1", "enable-push-2"])
def test_invalid_settings_close_the_connection_with_the_rfc_error(env, setting, value, code):
    """RFC 9113 §6.5.2: out-of-range SETTINGS end the connection with GOAWAY and the error the RFC
    names; other clients are unaffected."""
    c = RawH2(env.https_port, {setting: value})
    c.pump(2.0)
    assert c.goaway == code, (c.goaway, c.closed)
    c.close()
    c = RawH2(env.https_port)
    still_serves(c, 1)
    c.close()


# ----- header blocks trickled in --------------------------------------------------------------------

def test_header_block_trickled_one_byte_at_a_time_is_cut_by_the_header_timeout(env):
    """A HEADERS frame (no END_HEADERS) followed by its block one byte every 0.3 s, in CONTINUATION
    frames or within one frame: the connection is closed within the header timeout (2 s) + 2 s,
    not kept as long as the bytes keep coming."""
    for continuation in (True, False):
        c = RawH2(env.https_port)
        c.pump(0.3)
        block = c.block("/echo", [("x-pad", "p" * 200)])
        t0 = time.monotonic()
        if continuation:
            c.send(frame(HEADERS, 0, 1, block[:1]))
            pieces = [frame(CONTINUATION, 0, 1, block[i:i + 1]) for i in range(1, len(block))]
        else:
            whole = frame(HEADERS, END_STREAM | END_HEADERS, 1, block)
            c.send(whole[:10])
            pieces = [whole[i:i + 1] for i in range(10, len(whole))]
        try:
            for p in pieces:
                if not c.pump(0.3):
                    break
                c.send(p)
        except (ConnectionError, ssl.SSLError):
            c.closed = True
        c.pump(1.0)
        held = time.monotonic() - t0
        assert c.closed, f"trickled header block (continuation={continuation}) held {held:.1f} s"
        assert held < 2 + 2 + 1, held
        c.close()
