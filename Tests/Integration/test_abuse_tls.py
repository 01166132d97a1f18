"""TLS abuse (issue 13 item 3): handshakes that stop half way, garbage instead of a ClientHello,
TLS 1.2 renegotiation, ClientHellos split into 1-byte records or 1-byte TCP segments, huge and
oversized ClientHellos. Each connection completes or is closed cleanly; one event loop serves a
normal client throughout, so a stall anywhere would show."""

from __future__ import annotations

import os
import select
import socket
import ssl
import struct
import subprocess
import time

import pytest

from abuse import Prober, wait_for_no_clients
from conftest import standard_tls
from httpclient import https_get
from tools import need_tool

HANDSHAKE_TIMEOUT = 2.0


@pytest.fixture(scope="module")
def env(module_proxies, module_origins):
    o = module_origins("A")
    return module_proxies({"workers": 1, "tls": standard_tls(), "timeouts": {"handshake": f"{HANDSHAKE_TIMEOUT:g}s"},
                           "upstreams": {"app": {"servers": [o.addr]}}, "routes": [{"upstream": "app"}]},
                          name="proxy-tls-abuse")


# ----- a TLS client driven by hand: Python's ssl over memory BIOs --------------------------------

class ManualTLS:
    """A client handshake whose records we put on the wire ourselves."""

    def __init__(self, max_version=ssl.TLSVersion.TLSv1_3):
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        ctx.maximum_version = max_version
        ctx.set_alpn_protocols(["http/1.1"])
        self.incoming, self.outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
        self.obj = ctx.wrap_bio(self.incoming, self.outgoing, server_hostname="a.test")

    def client_hello(self) -> bytes:
        """The ClientHello record(s) the handshake starts with."""
        with pytest.raises(ssl.SSLWantReadError):
            self.obj.do_handshake()
        return self.outgoing.read()

    def finish(self, sock: socket.socket) -> None:
        """Completes the handshake over `sock` with the server's answers."""
        sock.settimeout(10)
        while True:
            try:
                self.obj.do_handshake()
                sock.sendall(self.outgoing.read())
                return
            except ssl.SSLWantReadError:
                sock.sendall(self.outgoing.read())
                data = sock.recv(65536)
                assert data, "the server closed during the handshake"
                self.incoming.write(data)

    def get(self, sock: socket.socket, path: str = "/echo") -> bytes:
        """One request over the finished session; returns the bytes up to the end of the head."""
        self.obj.write(f"GET {path} HTTP/1.1\r\nHost: a.test\r\n\r\n".encode())
        sock.sendall(self.outgoing.read())
        got = b""
        while b"\r\n\r\n" not in got:
            data = sock.recv(65536)
            assert data, got
            self.incoming.write(data)
            try:
                got += self.obj.read(65536)
            except ssl.SSLWantReadError:
                pass
        return got


def handshake_message(records: bytes) -> bytes:
    """The handshake bytes inside TLS records (their 5-byte headers dropped)."""
    out, i = b"", 0
    while i < len(records):
        length = struct.unpack(">H", records[i + 3:i + 5])[0]
        out += records[i + 5:i + 5 + length]
        i += 5 + length
    return out


def as_records(message: bytes, size: int) -> bytes:
    """Handshake bytes framed into records of at most `size` bytes each."""
    return b"".join(b"\x16\x03\x01" + struct.pack(">H", len(message[i:i + size])) + message[i:i + size]
                    for i in range(0, len(message), size))


def connect(env) -> socket.socket:
    s = socket.create_connection(("127.0.0.1", env.https_port), timeout=10)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return s


def closed_within(s: socket.socket, seconds: float) -> tuple[bool, bytes]:
    """Reads until the server closes (True) or `seconds` pass (False); returns what came."""
    got, deadline = b"", time.monotonic() + seconds
    while time.monotonic() < deadline:
        s.settimeout(max(0.05, deadline - time.monotonic()))
        try:
            data = s.recv(65536)
        except (socket.timeout, TimeoutError):
            break
        except ConnectionResetError:
            return True, got
        if not data:
            return True, got
        got += data
    return False, got


# ----- half-way handshakes and garbage --------------------------------------------------------

def test_handshakes_stopping_after_the_client_hello_are_closed_by_the_handshake_timeout(env):
    """200 connections send a ClientHello and then nothing: each is closed by the handshake timeout
    (2 s), none earlier than it and none much later, while a normal client is served throughout."""
    hello = ManualTLS().client_hello()
    opened: dict[socket.socket, float] = {}
    lived: list[float] = []
    with Prober(env.https_port, "/echo") as probe:
        for _ in range(200):
            s = connect(env)
            s.sendall(hello)
            opened[s] = time.monotonic()
        deadline = time.monotonic() + HANDSHAKE_TIMEOUT + 5
        while opened and time.monotonic() < deadline:
            ready, _, _ = select.select(list(opened), [], [], 0.5)
            for s in ready:
                try:
                    data = s.recv(65536)
                except ConnectionResetError:
                    data = b""
                if not data:
                    lived.append(time.monotonic() - opened.pop(s))
                    s.close()
        for s in opened:
            s.close()
    probe.check(bound=2.0)
    assert not opened, f"{len(opened)} half-way handshakes outlived the handshake timeout"
    assert min(lived) > HANDSHAKE_TIMEOUT - 0.3, f"closed after {min(lived):.2f} s, before the handshake timeout"
    assert max(lived) < HANDSHAKE_TIMEOUT + 3, max(lived)
    wait_for_no_clients(env.https_port, within=3)


@pytest.mark.parametrize("garbage", [b"GET / HTTP/1.1\r\nHost: a.test\r\n\r\n", os.urandom(4096),
                                     b"\x16\x03\x01\x00\x05\x01\x00\x00\x01\x00", b"\x16\x03\x01\xff\xff" + b"\x00" * 200],
                         ids=["plain-http", "random", "truncated-hello-inside-a-record", "record-over-16k"])
def test_garbage_instead_of_a_client_hello_is_closed_at_once(env, garbage):
    """Not a ClientHello: the connection is closed straight away (with an alert at most), not
    left to the handshake timeout; the next client is served."""
    s = connect(env)
    s.sendall(garbage)
    closed, got = closed_within(s, 1.5)
    s.close()
    assert closed, "garbage kept the connection open"
    assert got == b"" or got[0] == 0x15 or got.startswith(b"HTTP/1."), got[:64]   # an alert, or nothing
    assert https_get(env.https_port, "/echo").status == 200


def test_tls12_renegotiation_is_refused(env):
    """`openssl s_client -tls1_2` then `R` (client-initiated renegotiation): the proxy answers
    no_renegotiation, no second handshake happens, and others are served."""
    p = subprocess.Popen([need_tool("openssl", "openssl"), "s_client", "-tls1_2", "-connect", f"127.0.0.1:{env.https_port}",
                          "-servername", "a.test"],
                         stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        time.sleep(1.0)                     # handshake done
        p.stdin.write(b"R\n")
        p.stdin.flush()
        time.sleep(1.0)
        out = p.communicate(timeout=10)[0].decode("utf-8", "replace")
    finally:
        if p.poll() is None:
            p.kill()
    assert "Protocol  : TLSv1.2" in out, out
    assert "RENEGOTIATING" in out, out
    assert "no renegotiation" in out, out              # the server's no_renegotiation alert
    assert out.count("SSL-Session:") == 1, out        # no second handshake
    assert https_get(env.https_port, "/echo").status == 200


# ----- odd ClientHello framing ------------------------------------------------------------------

def test_client_hello_in_one_byte_records_completes(env):
    """The ClientHello split into one TLS record per byte (legal, RFC 8446 §5.1): the handshake
    completes and the request is served."""
    tls = ManualTLS()
    message = handshake_message(tls.client_hello())
    s = connect(env)
    s.sendall(as_records(message, 1))
    tls.finish(s)
    assert tls.get(s).startswith(b"HTTP/1.1 200 ")
    s.close()


def test_client_hello_in_one_byte_tcp_segments_completes(env):
    """The ClientHello written one byte per TCP segment (Nagle off, a pause after each): the
    handshake completes and the request is served; a normal client meanwhile is not delayed."""
    tls = ManualTLS()
    hello = tls.client_hello()
    s = connect(env)
    with Prober(env.https_port, "/echo", interval=0.1) as probe:
        t0 = time.monotonic()
        for b in hello:
            s.send(bytes([b]))
            if time.monotonic() - t0 < HANDSHAKE_TIMEOUT / 2:   # a loaded machine sleeps longer
                time.sleep(0.002)
    tls.finish(s)
    assert tls.get(s).startswith(b"HTTP/1.1 200 ")
    s.close()
    probe.check(bound=2.0, at_least=1)


def padded(message: bytes, padding: int) -> bytes:
    """The ClientHello with a padding extension (RFC 7685) of `padding` zero bytes added."""
    i = 4 + 2 + 32
    i += 1 + message[i]                                         # session id
    i += 2 + struct.unpack(">H", message[i:i + 2])[0]           # cipher suites
    i += 1 + message[i]                                         # compression methods
    ext_len = struct.unpack(">H", message[i:i + 2])[0]
    ext = message[i + 2:i + 2 + ext_len] + struct.pack(">HH", 21, padding) + b"\x00" * padding
    body = message[4:i] + struct.pack(">H", len(ext)) + ext
    return b"\x01" + len(body).to_bytes(3, "big") + body


@pytest.mark.parametrize("padding", [16_000, 60_000], ids=["16k", "60k"])
def test_huge_client_hello_is_answered_or_refused_promptly(env, padding):
    """A ClientHello grown by a padding extension to 16 KB or 60 KB (many records): the server
    answers it (ServerHello) or refuses it with an alert, at once either way."""
    message = padded(handshake_message(ManualTLS().client_hello()), padding)
    s = connect(env)
    with Prober(env.https_port, "/echo", interval=0.1) as probe:
        s.sendall(as_records(message, 16384))
        s.settimeout(3)
        first = s.recv(5)
    s.close()
    probe.check(bound=2.0, at_least=1)
    assert first[:1] in (b"\x16", b"\x15"), first            # a handshake record or an alert


def test_client_hello_claiming_16_mb_is_refused_without_waiting_for_it(env):
    """A handshake header announcing a 16 MB ClientHello: refused as soon as the header is seen,
    never buffered up to that size."""
    s = connect(env)
    s.sendall(as_records(b"\x01\xff\xff\xff" + os.urandom(1000), 16384))
    closed, got = closed_within(s, 1.5)
    s.close()
    assert closed, "the proxy waited for the rest of a 16 MB ClientHello"
    assert got == b"" or got[0] == 0x15, got[:16]
