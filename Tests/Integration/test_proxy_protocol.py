"""PROXY protocol end to end: a real HAProxy (send-proxy / send-proxy-v2, TCP mode) in front of
the real binary, so the origin and the access log see the original client (a client bound to
127.0.0.2, HAProxy connecting from 127.0.0.1); raw sockets sending malformed, truncated, slow and
untrusted headers; and PROXY out, parsed by an origin started here.
"""

from __future__ import annotations

import json
import socket
import ssl
import subprocess
import time

import pytest

from conftest import free_port, standard_tls
from httpclient import client_context
from loadbalancer import LoadBalancer
from origin import recv_head, serve_each
from reload_support import Admin, metric, wait_until
from tools import need_tool

CLIENT = "127.0.0.2"      # the original client, as HAProxy sees it


def get_from(source: str, port: int, path: str = "/echo", sni: str = "a.test", tls: bool = True) -> tuple[int, bytes]:
    """One GET from `source`, over TLS or plain; (status, body)."""
    raw = socket.create_connection(("127.0.0.1", port), timeout=10, source_address=(source, 0))
    s = client_context().wrap_socket(raw, server_hostname=sni) if tls else raw
    with s:
        s.sendall(f"GET {path} HTTP/1.1\r\nHost: {sni}\r\nConnection: close\r\n\r\n".encode())
        data = b""
        while chunk := s.recv(65536):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    return int(head.split()[1]), body


def echoed_forwarded_for(body: bytes) -> str | None:
    headers = json.loads(body)["headers"]
    return next((v for k, v in headers if k.lower() == "x-forwarded-for"), None)


@pytest.fixture
def behind_lb(proxies, origins, tmp_path):
    """(proxy, lb_https_port, lb_http_port, admin) with HAProxy sending PROXY `version` headers."""
    made = []

    def make(version: str, **listen):
        origin = origins("A")
        https, http, admin = free_port(), free_port(), free_port()
        config = {"tls": standard_tls(), "workers": 1,
                  "listen": {"https": [f"127.0.0.1:{https}"], "http": [f"127.0.0.1:{http}"],
                             "proxy_protocol": {"from": ["127.0.0.1"]} | listen},
                  "admin": {"listen": f"127.0.0.1:{admin}"},
                  "upstreams": {"app": {"servers": [origin.addr]}},
                  "routes": [{"upstream": "app"}],
                  "log": {"access": str(tmp_path / f"access-{version}.log")}}
        p = proxies(config)
        lb_https, lb_http = free_port(), free_port()
        lb = LoadBalancer(tmp_path / f"lb-{version}", {"tls": (lb_https, [f"127.0.0.1:{https}"]),
                                                       "plain": (lb_http, [f"127.0.0.1:{http}"])},
                          check_inter_ms=None, send_proxy=version)
        made.append(lb)
        return p, lb_https, lb_http, Admin(admin), tmp_path / f"access-{version}.log"
    yield make
    for lb in made:
        lb.stop()


@pytest.mark.parametrize("version", ["v1", "v2"])
def test_the_client_behind_haproxy_is_the_client_everywhere(behind_lb, version):
    p, lb_https, lb_http, admin, access = behind_lb(version)
    status, body = get_from(CLIENT, lb_https)
    assert status == 200 and echoed_forwarded_for(body) == CLIENT, body
    # HTTP/2 behind the balancer too.
    r = subprocess.run([need_tool("curl", "curl"), "-sk", "--http2", "--interface", CLIENT, "--resolve", f"a.test:{lb_https}:127.0.0.1",
                        f"https://a.test:{lb_https}/echo", "-o", "-", "-w", "\n%{http_version}"],
                       capture_output=True, text=True, timeout=20)
    body2, _, version_seen = r.stdout.rpartition("\n")
    assert version_seen == "2" and echoed_forwarded_for(body2.encode()) == CLIENT, r.stdout + r.stderr
    # The port-80 listener reads the header too: its redirect is answered.
    status, _ = get_from(CLIENT, lb_http, path="/x", tls=False)
    assert status == 301
    wait_until(lambda: access.exists() and access.read_text().count("\n") >= 2, 5, what="access log lines")
    clients = {json.loads(line)["client"].rsplit(":", 1)[0] for line in access.read_text().splitlines()}
    assert clients == {CLIENT}, clients
    assert metric(admin.metrics(), "edgeproxy_proxy_protocol_headers_total", outcome="accepted") >= 3


def raw(port: int, payload: bytes, source: str = "127.0.0.1", wait: float = 5) -> tuple[bytes, float]:
    """Sends `payload`, then reads until the server closes; (what came back, seconds until closed)."""
    s = socket.create_connection(("127.0.0.1", port), timeout=wait + 5, source_address=(source, 0))
    started = time.monotonic()
    try:
        s.sendall(payload)
        data = b""
        while chunk := s.recv(65536):
            data += chunk
    except ConnectionResetError:
        data = b""
    finally:
        s.close()
    return data, time.monotonic() - started


def test_bad_headers_close_the_connection_and_are_counted(proxies, origins, tmp_path):
    admin_port = free_port()
    p = proxies({"tls": standard_tls(), "timeouts": {"handshake": "1s"},
                 "listen": {"proxy_protocol": {"from": ["127.0.0.1"]}},
                 "admin": {"listen": f"127.0.0.1:{admin_port}"}})
    admin = Admin(admin_port)
    hello = b"\x16\x03\x01\x00\x05hello"
    for bad in [b"GET / HTTP/1.1\r\nHost: a.test\r\n\r\n",               # no header at all
                b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2\n",                      # LF without CR
                b"PROXY TCP4 1.2.3.400 5.6.7.8 1 2\r\n" + hello,          # bad address
                b"PROXY TCP4 " + b"1" * 200,                               # too long
                b"\r\n\r\n\x00\r\nQUIT\n\x21\x11\x04\x00" + b"\x00" * 64,  # v2 of 1040 bytes
                hello]:                                                    # a ClientHello without a header
        data, seconds = raw(p.https_port, bad)
        assert data == b"" and seconds < 1.0, (bad, data, seconds)
    # Truncated: the client half-closes half way (closed at once); slow: it never finishes (closed at
    # the handshake timeout, with a reset since its bytes were never read).
    with socket.create_connection(("127.0.0.1", p.https_port), timeout=10) as s:
        s.sendall(b"PROXY TCP4 192.0.2.1 198.")
        s.shutdown(socket.SHUT_WR)
        started = time.monotonic()
        try:
            assert s.recv(100) == b""
        except ConnectionResetError:
            pass
        assert time.monotonic() - started < 0.8
    with socket.create_connection(("127.0.0.1", p.https_port), timeout=10) as s:
        s.sendall(b"PROXY TCP4 192.0.2.1 198.51.100.1 ")
        started = time.monotonic()
        try:
            assert s.recv(100) == b""
        except ConnectionResetError:
            pass
        assert 0.8 < time.monotonic() - started < 5
    text = admin.metrics()
    assert metric(text, "edgeproxy_proxy_protocol_headers_total", outcome="invalid") >= 8
    assert metric(text, "edgeproxy_proxy_protocol_headers_total", outcome="accepted") == 0
    # A good header followed by the handshake works on the same listener.
    with socket.create_connection(("127.0.0.1", p.https_port), timeout=10) as s:
        s.sendall(b"PROXY TCP4 192.0.2.1 198.51.100.1 40000 443\r\n")
        with client_context().wrap_socket(s, server_hostname="a.test") as t:
            t.sendall(b"GET / HTTP/1.1\r\nHost: a.test\r\nConnection: close\r\n\r\n")
            assert t.recv(100).startswith(b"HTTP/1.1 200")
    # v2 LOCAL (the balancer's own health check): the connection's own address stands.
    with socket.create_connection(("127.0.0.1", p.https_port), timeout=10) as s:
        s.sendall(b"\r\n\r\n\x00\r\nQUIT\n\x20\x00\x00\x00")
        with client_context().wrap_socket(s, server_hostname="a.test") as t:
            t.sendall(b"GET / HTTP/1.1\r\nHost: a.test\r\nConnection: close\r\n\r\n")
            assert t.recv(100).startswith(b"HTTP/1.1 200")
    assert metric(admin.metrics(), "edgeproxy_proxy_protocol_headers_total", outcome="local") == 1


def test_an_untrusted_source_is_closed_even_with_a_valid_header(proxies):
    admin_port = free_port()
    p = proxies({"tls": standard_tls(), "listen": {"proxy_protocol": {"from": ["127.0.0.9/32"]}},
                 "admin": {"listen": f"127.0.0.1:{admin_port}"}})
    # The fixture's readiness probe was an untrusted connection too: counted once its loop took it.
    before = wait_until(lambda: metric(Admin(admin_port).metrics(), "edgeproxy_proxy_protocol_headers_total",
                                       outcome="untrusted"), 10, what="the readiness probe counted")
    data, seconds = raw(p.https_port, b"PROXY TCP4 192.0.2.1 198.51.100.1 40000 443\r\n", source="127.0.0.1")
    assert data == b"" and seconds < 1.0
    assert metric(Admin(admin_port).metrics(), "edgeproxy_proxy_protocol_headers_total", outcome="untrusted") == before + 1
    # The trusted balancer is served.
    with socket.create_connection(("127.0.0.1", p.https_port), timeout=10, source_address=("127.0.0.9", 0)) as s:
        s.sendall(b"PROXY TCP4 192.0.2.1 198.51.100.1 40000 443\r\n")
        with client_context().wrap_socket(s, server_hostname="a.test") as t:
            t.sendall(b"GET / HTTP/1.1\r\nHost: a.test\r\nConnection: close\r\n\r\n")
            assert t.recv(100).startswith(b"HTTP/1.1 200")


class ProxyOrigin:
    """A plain HTTP origin that reads the PROXY header opening each connection, records it, and
    answers every request on that connection with it."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.addr = f"127.0.0.1:{self.sock.getsockname()[1]}"
        self.headers: list[bytes] = []
        serve_each(self.sock, self._serve)

    def _serve(self, conn):
        with conn:
            data = recv_head(conn)
            if data is None:
                return
            if data.startswith(b"PROXY "):
                header, _, data = data.partition(b"\r\n")
                header += b"\r\n"
            elif data.startswith(b"\r\n\r\n\x00\r\nQUIT\n"):
                length = 16 + int.from_bytes(data[14:16], "big")
                header, data = data[:length], data[length:]
            else:
                header = b""
            self.headers.append(header)
            while True:
                while b"\r\n\r\n" not in data:
                    chunk = conn.recv(4096)
                    if not chunk:
                        return
                    data += chunk
                _, _, data = data.partition(b"\r\n\r\n")
                body = header.hex().encode()
                conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))

    def close(self):
        self.sock.close()


def read_response(sock) -> bytes:
    """One response with a Content-Length body from a keep-alive connection."""
    data = b""
    while b"\r\n\r\n" not in data:
        data += sock.recv(65536)
    head, _, body = data.partition(b"\r\n\r\n")
    length = int(next(line.split(b":")[1] for line in head.split(b"\r\n") if line.lower().startswith(b"content-length:")))
    while len(body) < length:
        body += sock.recv(65536)
    return head + b"\r\n\r\n" + body


@pytest.mark.parametrize("version", ["v1", "v2"])
def test_proxy_out_tells_the_origin_who_the_client_is(proxies, version):
    origin = ProxyOrigin()
    try:
        p = proxies({"tls": standard_tls(), "upstreams": {"app": {"servers": [origin.addr], "proxy_protocol": version}},
                     "routes": [{"upstream": "app"}]})
        for source in ("127.0.0.2", "127.0.0.3"):
            status, body = get_from(source, p.https_port, path="/")
            assert status == 200
            header = bytes.fromhex(body.decode())
            if version == "v1":
                assert header == f"PROXY TCP4 {source} 127.0.0.1 ".encode() + header.split(b" ")[4] + f" {p.https_port}\r\n".encode()
            else:
                assert header[:12] == b"\r\n\r\n\x00\r\nQUIT\n" and header[12:14] == b"\x21\x11"
                assert socket.inet_ntoa(header[16:20]) == source and int.from_bytes(header[26:28], "big") == p.https_port
        # Each client connection got a connection of its own: a header never speaks for another client.
        assert len(origin.headers) == 2 and origin.headers[0] != origin.headers[1]
        # A keep-alive client keeps its own upstream connection: one header for all its requests.
        raw = socket.create_connection(("127.0.0.1", p.https_port), timeout=10, source_address=("127.0.0.4", 0))
        with client_context().wrap_socket(raw, server_hostname="a.test") as t:
            for _ in range(3):
                t.sendall(b"GET / HTTP/1.1\r\nHost: a.test\r\n\r\n")
                assert read_response(t).startswith(b"HTTP/1.1 200")
        assert len(origin.headers) == 3, origin.headers
    finally:
        origin.close()
