"""Broken origins (issue 13 item 4): an origin that resets mid-response, sends two different
Content-Lengths, Content-Length with Transfer-Encoding, bad chunking, a head past the limit, a
flood of 1xx, no answer at all, an answer before the request body ended, or closes keep-alive
connections at random. The client gets a clean error (502/504, or the bytes up to the failure and
then a close), and nothing of it reaches the next request: neither on the same client connection
nor through the pooled origin connections (one worker, one origin, keep-alive on)."""

from __future__ import annotations

import random
import socket
import struct
import threading
import time
import uuid

import pytest

from conftest import standard_tls
from httpclient import ConnectionClosed, HTTPConn, build_request
from origin import Reader, ClientGone

UPSTREAM_TIMEOUT = 1.5


class BrokenOrigin:
    """A keep-alive HTTP/1.1 origin on raw sockets whose path picks how it misbehaves. `/ok?id=X`
    answers `ok X` properly; `connections` counts accepted connections."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(128)
        self.addr = "127.0.0.1:%d" % self.sock.getsockname()[1]
        self.connections = 0
        self.random_close = random.Random(13)
        self.held: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.connections += 1
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def close(self) -> None:
        self.sock.close()
        for c in self.held:
            c.close()

    def _serve(self, conn: socket.socket) -> None:
        reader = Reader(conn)
        try:
            while True:
                head = reader.readline()
                method, target, _ = head.decode("latin-1").split(" ", 2)
                fields = {}
                while (line := reader.readline()) not in (b"\r\n", b"\n"):
                    name, _, value = line.decode("latin-1").partition(":")
                    fields[name.strip().lower()] = value.strip()
                path, _, query = target.partition("?")
                handler = getattr(self, "do_" + path.strip("/").replace("-", "_"))
                if handler(conn, reader, fields, query) == "close":
                    conn.close()
                    return
        except (ClientGone, OSError, ValueError):
            conn.close()

    @staticmethod
    def read_body(reader: Reader, fields: dict) -> bytes:
        return reader.read(int(fields.get("content-length", "0")))

    # -- behaviours --
    def do_ok(self, conn, reader, fields, query):
        self.read_body(reader, fields)
        body = f"ok {query}".encode()
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(body) + body)

    def do_reset_mid(self, conn, reader, fields, query):
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n" + b"r" * 1000)
        time.sleep(0.1)
        conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))   # RST
        return "close"

    def do_two_cl(self, conn, reader, fields, query):
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!")

    def do_cl_te(self, conn, reader, fields, query):
        # RFC 9112 §6.3: chunked wins and the connection must not be reused; the Content-Length
        # framing would leave "llo\r\n0\r\n\r\n" to be read as the next response.
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n"
                     b"5\r\nhello\r\n0\r\n\r\n")

    def do_bad_chunk(self, conn, reader, fields, query):
        conn.sendall(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n"
                     b"zz\r\nHTTP/1.1 200 OK\r\nContent-Length: 8\r\n\r\nsmuggled")

    def do_big_head(self, conn, reader, fields, query):
        conn.sendall(b"HTTP/1.1 200 OK\r\n" + b"X-Big: " + b"b" * 100_000 + b"\r\nContent-Length: 2\r\n\r\nhi")

    def do_interim_flood(self, conn, reader, fields, query):
        for _ in range(5000):
            conn.sendall(b"HTTP/1.1 103 Early Hints\r\nLink: </x.css>; rel=preload\r\n\r\n")
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nfinal")

    def do_never(self, conn, reader, fields, query):
        self.held.append(conn)
        time.sleep(30)
        return "close"

    def do_early(self, conn, reader, fields, query):
        # Answers after the first bytes of a large body, then reads the rest and stays open.
        reader.read(1000)
        conn.sendall(b"HTTP/1.1 403 Forbidden\r\nContent-Length: 6\r\n\r\nnope!\n")
        reader.read(int(fields["content-length"]) - 1000)

    def do_flaky(self, conn, reader, fields, query):
        """A proper answer, after which the connection is closed at random (no Connection: close)."""
        self.do_ok(conn, reader, fields, query)
        if self.random_close.random() < 0.5:
            time.sleep(self.random_close.random() * 0.02)
            return "close"


@pytest.fixture(scope="module")
def env(module_proxies):
    o = BrokenOrigin()
    p = module_proxies({"workers": 1, "tls": standard_tls(), "timeouts": {"upstream_response": f"{int(UPSTREAM_TIMEOUT * 1000)}ms"},
                        "upstreams": {"app": {"servers": [o.addr], "keepalive": 8}},
                        "routes": [{"upstream": "app"}]}, name="proxy-broken-origins")
    yield type("Env", (), {"proxy": p, "origin": o})
    o.close()


def ok(c: HTTPConn) -> None:
    """A good request on `c` gets its own answer, not a leftover of the broken one."""
    marker = uuid.uuid4().hex
    r = c.request("GET", f"/ok?{marker}")
    assert (r.status, r.body) == (200, f"ok {marker}".encode()), r


def then_clean(env, c: HTTPConn, closed_expected: bool = False) -> None:
    """After the broken exchange: the same client connection (when the proxy kept it) and a new
    one are served correctly, several times, through the pooled origin connections."""
    if not closed_expected:
        for _ in range(3):
            ok(c)
    for _ in range(3):
        with env.proxy.conn("a.test") as fresh:
            ok(fresh)


@pytest.mark.parametrize("case", ["two-cl", "big-head", "interim-flood"])
def test_invalid_response_head_gets_502(env, case):
    """Two different Content-Lengths, a head over the limit, 5000 interim responses: 502 (nothing of
    the broken response reaches the client), the client connection stays usable."""
    with env.proxy.conn("a.test") as c:
        r = c.request("GET", f"/{case}")
        assert r.status == 502, r
        assert len(r.informational) <= 100, f"{len(r.informational)} interim responses relayed"
        then_clean(env, c)


def test_content_length_with_transfer_encoding_is_framed_chunked_or_refused(env):
    """CL + TE from the origin: chunked framing wins (RFC 9112 §6.3), or the response is refused;
    never framed by the Content-Length (which would leave the rest as the next response)."""
    with env.proxy.conn("a.test") as c:
        r = c.request("GET", "/cl-te")
        assert (r.status, r.body) in ((200, b"hello"), (502, r.body)), r
        then_clean(env, c)


@pytest.mark.parametrize("case", ["reset-mid", "bad-chunk"])
def test_response_failing_mid_body_is_cut_after_the_bytes_before_it(env, case):
    """A reset in the middle of a Content-Length body, an invalid chunk size (with a response
    hidden behind it): the client gets the head and the bytes before the failure, then the
    connection closes (it can't be told otherwise); nothing behind the failure is relayed."""
    with env.proxy.conn("a.test") as c:
        c.send(build_request("GET", f"/{case}", "a.test"))
        head = c.read_head()
        assert head.status == 200
        got = bytearray()
        with pytest.raises((ConnectionClosed, OSError)):
            c.read_body(head, "GET", got.extend)
        assert b"smuggled" not in got and len(got) <= 1000
        then_clean(env, c, closed_expected=True)


def test_origin_that_never_answers_gets_504(env):
    """No answer within upstream_response (1.5 s): 504, and the same client connection goes on."""
    with env.proxy.conn("a.test") as c:
        t0 = time.monotonic()
        r = c.request("GET", "/never")
        assert r.status == 504, r
        assert UPSTREAM_TIMEOUT - 0.2 < time.monotonic() - t0 < UPSTREAM_TIMEOUT + 3
        then_clean(env, c)


def test_origin_answering_before_the_request_body_ended(env):
    """The origin answers 403 after 1000 bytes of a 200 kB upload: the client gets the 403 and its
    connection is either closed or goes on cleanly (the rest of the body never read as a request)."""
    body = b"{" * 200_000
    with env.proxy.conn("a.test") as c:
        c.send(build_request("POST", "/early", "a.test", headers=[("Content-Length", str(len(body)))]))
        c.send(body[:100_000])
        r = c.read_response()
        assert (r.status, r.body) == (403, b"nope!\n"), r
        try:
            c.send(body[100_000:])
            marker = uuid.uuid4().hex
            c.send(build_request("GET", f"/ok?{marker}", "a.test"))
            nxt = c.read_response()
        except (ConnectionClosed, OSError):
            nxt = None                     # closed: fine, nothing was misread
        if nxt is not None:
            assert (nxt.status, nxt.body) == (200, f"ok {marker}".encode()), nxt
    then_clean(env, c, closed_expected=True)


def test_origin_closing_keepalive_connections_at_random(env):
    """The origin closes half of its connections after a response, at random moments, without
    saying so. 60 requests on one client connection and on new ones: every GET is answered (a
    reused connection found closed is retried, on the same server too); a POST, whose body is not
    kept for a retry, may get a clean 502 instead; the next request is never affected."""
    before = env.origin.connections
    failures, refused_posts = [], 0
    c = env.proxy.conn("a.test")
    for i in range(60):
        marker = f"{i}-{uuid.uuid4().hex[:6]}"
        body = b"p" * 100 if i % 3 == 0 else None
        conn = c if i % 2 else env.proxy.conn("a.test")
        r = conn.request("POST" if body else "GET", f"/flaky?{marker}", body=body)
        if body and r.status == 502 and b"closed the connection" in r.body:
            refused_posts += 1
        elif (r.status, r.body) != (200, f"ok {marker}".encode()):
            failures.append((i, r.status, r.body[:80]))
        if r.header("connection") == "close":          # announced (a refused body left unread)
            assert conn.closed_by_peer(), "Connection: close, yet the connection stayed open"
            conn.close()
            if conn is c:
                c = env.proxy.conn("a.test")
        elif conn is not c:
            conn.close()
        time.sleep(random.random() * 0.03)
    c.close()
    assert not failures, failures
    assert env.origin.connections - before >= 15, "the origin closed too few connections to test anything"
    print("POSTs refused:", refused_posts, "of 20; origin connections:", env.origin.connections - before)
