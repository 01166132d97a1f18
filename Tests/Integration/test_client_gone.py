"""A client that vanishes in the same instant its response ends. The proxy is stopped (SIGSTOP)
while the origin sends the last bytes of a response and the client then resets its connection,
so that one wake-up of the loop sees the origin's bytes first and the reset second: ending the
response writes to the reset socket, which closes the client connection from inside the
origin's event. The connection must stay valid until that event is over (it is logged once, the
process lives on), which a run of slow readers once showed it did not."""

from __future__ import annotations

import os
import signal
import socket
import struct
import threading
import time

from conftest import standard_tls
from httpclient import HTTPConn, build_request, https_get
from origin import recv_head, serve_each


class HeldOrigin:
    """Answers one request with a head and the first half of its body, then the second half only
    once `release` is set; later connections get a plain 200."""

    BODY = b"0123456789" * 100

    def __init__(self, chunked: bool):
        self.chunked = chunked
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.addr = "127.0.0.1:%d" % self.sock.getsockname()[1]
        self.release = threading.Event()
        self.sent_rest = threading.Event()
        self.first = threading.Lock()   # taken by the first connection only
        serve_each(self.sock, self._serve)

    def _serve(self, conn: socket.socket) -> None:
        held = self.first.acquire(blocking=False)
        with conn:
            if recv_head(conn) is None:
                return
            half = len(self.BODY) // 2
            if not held:
                conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nok\n")
                time.sleep(1)
                return
            if self.chunked:
                conn.sendall(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                             + b"%x\r\n" % half + self.BODY[:half] + b"\r\n")
                self.release.wait(20)
                conn.sendall(b"%x\r\n" % half + self.BODY[half:] + b"\r\n0\r\n\r\n")
            else:
                conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(self.BODY) + self.BODY[:half])
                self.release.wait(20)
                conn.sendall(self.BODY[half:])
            self.sent_rest.set()
            time.sleep(2)

    def close(self) -> None:
        self.sock.close()


def run_case(proxies, chunked: bool) -> None:
    origin = HeldOrigin(chunked)
    p = proxies({"workers": 1, "tls": standard_tls(),
                 "upstreams": {"app": {"servers": [origin.addr]}}, "routes": [{"upstream": "app"}]})
    try:
        c = HTTPConn.tls(p.https_port)
        c.send(build_request("GET", "/held", "a.test"))
        r = c.read_head()
        assert r.status == 200
        c.read(len(HeldOrigin.BODY) // 2 - 64)  # the first half went through: the proxy waits on the origin
        os.kill(p.pid, signal.SIGSTOP)
        try:
            origin.release.set()
            assert origin.sent_rest.wait(5)
            time.sleep(0.2)  # the rest sits in the proxy's socket buffer, readable before the reset
            c.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            c.close()  # RST
            time.sleep(0.2)
        finally:
            os.kill(p.pid, signal.SIGCONT)
        time.sleep(0.5)
        assert p.alive(), f"the proxy died:\n{p.stderr()[-3000:]}"
        assert https_get(p.https_port, "/after").status == 200
        held = [rec for rec in p.access_log() if rec["path"] == "/held"]
        assert len(held) == 1, held
    finally:
        origin.close()


def test_response_end_and_client_reset_in_one_wakeup(proxies):
    run_case(proxies, chunked=False)


def test_chunked_response_end_and_client_reset_in_one_wakeup(proxies):
    run_case(proxies, chunked=True)
