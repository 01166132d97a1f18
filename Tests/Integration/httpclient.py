"""Minimal, explicit HTTP/1.1-over-TLS client pieces for the integration tests.

Raw on purpose: the framing tests must put exact bytes on the wire, and the proxy tests need to
see exactly what came back (status, header order, whether the connection was closed).
"""

from __future__ import annotations

import json
import socket
import ssl
import subprocess
import tempfile
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path

from pki import describe_der
from tools import need_tool

DEFAULT_TIMEOUT = 15.0


# ----- TLS ------------------------------------------------------------------------------------

def client_context(cafile: str | Path | None = None, alpn=("http/1.1",), min_version=None,
                   max_version=None, ciphers: str | None = None) -> ssl.SSLContext:
    """A client context. With `cafile` the chain and host name are verified; without, nothing is."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    if cafile:
        ctx.load_verify_locations(cafile=str(cafile))
        ctx.check_hostname = True
        ctx.verify_mode = ssl.CERT_REQUIRED
    else:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    if alpn:
        ctx.set_alpn_protocols(list(alpn))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        if ciphers:
            ctx.set_ciphers(ciphers)
        if min_version is not None:
            ctx.minimum_version = min_version
        if max_version is not None:
            ctx.maximum_version = max_version
    return ctx


def tls_connect(port: int, sni: str | None = "a.test", host: str = "127.0.0.1",
                ctx: ssl.SSLContext | None = None, timeout: float = DEFAULT_TIMEOUT,
                session: ssl.SSLSession | None = None) -> ssl.SSLSocket:
    """TCP connect + TLS handshake. `sni=None` sends no server_name extension."""
    ctx = ctx or client_context()
    raw = socket.create_connection((host, port), timeout=timeout)
    try:
        s = ctx.wrap_socket(raw, server_hostname=sni, session=session)
    except BaseException:
        raw.close()
        raise
    s.settimeout(timeout)
    return s


def peer_cert(sock: ssl.SSLSocket) -> dict:
    """serial / names / key_type of the certificate the server presented."""
    return describe_der(sock.getpeercert(binary_form=True))


def handshake_cert(port: int, sni: str | None, **kw) -> dict:
    with tls_connect(port, sni, **kw) as s:
        return peer_cert(s)


# ----- HTTP/1.1 --------------------------------------------------------------------------------

@dataclass
class Response:
    version: str
    status: int
    reason: str
    headers: list[tuple[str, str]] = field(default_factory=list)
    body: bytes = b""
    informational: list[int] = field(default_factory=list)   # 1xx statuses seen before this one

    def header(self, name: str) -> str | None:
        name = name.lower()
        for k, v in self.headers:
            if k.lower() == name:
                return v
        return None

    def header_all(self, name: str) -> list[str]:
        return [v for k, v in self.headers if k.lower() == name.lower()]

    def has_header(self, name: str) -> bool:
        return any(k.lower() == name.lower() for k, _ in self.headers)

    @property
    def text(self) -> str:
        return self.body.decode("utf-8", "replace")

    def json(self):
        return json.loads(self.body)

    def __repr__(self) -> str:
        b = self.body[:300]
        return f"<Response {self.status} {self.reason!r} headers={self.headers} body={b!r}{'...' if len(self.body) > 300 else ''}>"


class ConnectionClosed(Exception):
    pass


def build_request(method: str, target: str, host: str | None, headers=(), body: bytes | None = None,
                  chunked: bool = False, chunk_size: int = 65536) -> bytes:
    """Serialise a well-formed request (Content-Length unless `chunked`)."""
    lines = [f"{method} {target} HTTP/1.1"]
    if host is not None:
        lines.append(f"Host: {host}")
    lines += [f"{k}: {v}" for k, v in headers]
    payload = b""
    if body is not None:
        if chunked:
            lines.append("Transfer-Encoding: chunked")
            parts = [body[i:i + chunk_size] for i in range(0, len(body), chunk_size)]
            payload = b"".join(b"%x\r\n" % len(p) + p + b"\r\n" for p in parts) + b"0\r\n\r\n"
        else:
            lines.append(f"Content-Length: {len(body)}")
            payload = body
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + payload


class HTTPConn:
    """One client connection (TLS or plain) with a read buffer that survives across responses."""

    def __init__(self, sock: socket.socket):
        self.sock = sock
        self.buf = bytearray()

    @classmethod
    def tls(cls, port: int, sni: str | None = "a.test", **kw) -> "HTTPConn":
        return cls(tls_connect(port, sni, **kw))

    @classmethod
    def plain(cls, port: int, host: str = "127.0.0.1", timeout: float = DEFAULT_TIMEOUT) -> "HTTPConn":
        return cls(socket.create_connection((host, port), timeout=timeout))

    def close(self) -> None:
        try:
            self.sock.close()
        except OSError:
            pass

    def __enter__(self):
        return self

    def __exit__(self, *a):
        self.close()

    # -- low level --
    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def _fill(self) -> None:
        try:
            data = self.sock.recv(262144)
        except (ssl.SSLZeroReturnError, ssl.SSLEOFError, ConnectionResetError):
            data = b""
        if not data:
            raise ConnectionClosed("connection closed by peer")
        self.buf += data

    def _readline(self) -> bytes:
        while True:
            i = self.buf.find(b"\n")
            if i >= 0:
                line = bytes(self.buf[:i + 1])
                del self.buf[:i + 1]
                return line
            if len(self.buf) > 1 << 20:
                raise ValueError("response line too long")
            self._fill()

    def _read_exact(self, n: int) -> bytes:
        while len(self.buf) < n:
            self._fill()
        out = bytes(self.buf[:n])
        del self.buf[:n]
        return out

    def read(self, n: int) -> bytes:
        """Exactly n bytes (used by the websocket frame reader)."""
        return self._read_exact(n)

    def read_head(self) -> Response:
        line = self._readline()
        parts = line.decode("latin-1").rstrip("\r\n").split(" ", 2)
        if len(parts) < 2 or not parts[0].startswith("HTTP/"):
            raise ValueError(f"bad status line {line!r}")
        r = Response(parts[0], int(parts[1]), parts[2] if len(parts) > 2 else "")
        while True:
            h = self._readline()
            if h in (b"\r\n", b"\n"):
                return r
            k, _, v = h.decode("latin-1").rstrip("\r\n").partition(":")
            r.headers.append((k.strip(), v.strip()))

    def read_body(self, r: Response, method: str = "GET", sink=None) -> None:
        """Read the body that belongs to head `r`; into r.body, or piecewise into `sink(bytes)`."""
        out = bytearray()
        emit = sink or out.extend
        if method == "HEAD" or r.status in (204, 304) or 100 <= r.status < 200:
            pass
        elif "chunked" in (r.header("transfer-encoding") or "").lower():
            while True:
                size = int(self._readline().split(b";")[0].strip(), 16)
                if size == 0:
                    while self._readline() not in (b"\r\n", b"\n"):
                        pass
                    break
                left = size
                while left:
                    if not self.buf:
                        self._fill()
                    take = min(left, len(self.buf))
                    emit(bytes(self.buf[:take]))
                    del self.buf[:take]
                    left -= take
                if self._readline() not in (b"\r\n", b"\n"):
                    raise ValueError("bad chunk terminator")
        elif r.header("content-length") is not None:
            left = int(r.header("content-length"))
            while left:
                if not self.buf:
                    self._fill()
                take = min(left, len(self.buf))
                emit(bytes(self.buf[:take]))
                del self.buf[:take]
                left -= take
        else:   # close-delimited
            while True:
                if self.buf:
                    emit(bytes(self.buf))
                    self.buf.clear()
                try:
                    self._fill()
                except ConnectionClosed:
                    break
        if sink is None:
            r.body = bytes(out)

    def read_response(self, method: str = "GET", sink=None, skip_1xx: bool = True) -> Response:
        """Next final response (1xx heads are skipped, their codes kept in .informational)."""
        seen = []
        while True:
            r = self.read_head()
            if skip_1xx and 100 <= r.status < 200 and r.status != 101:
                seen.append(r.status)
                continue
            r.informational = seen
            self.read_body(r, method, sink)
            return r

    def request(self, method: str, target: str, host: str | None = "a.test", headers=(),
                body: bytes | None = None, chunked: bool = False, sink=None) -> Response:
        self.send(build_request(method, target, host, headers, body, chunked))
        return self.read_response(method, sink)

    def closed_by_peer(self, timeout: float = 5.0) -> bool:
        """True when the peer closes (EOF/reset) within `timeout`; unread data is discarded."""
        deadline = time.monotonic() + timeout
        self.buf.clear()
        while time.monotonic() < deadline:
            self.sock.settimeout(max(0.05, deadline - time.monotonic()))
            try:
                data = self.sock.recv(65536)
            except (ssl.SSLZeroReturnError, ssl.SSLEOFError, ConnectionResetError, BrokenPipeError):
                return True
            except ssl.SSLError:
                return True
            except (socket.timeout, TimeoutError):
                return False
            if not data:
                return True
        return False


def https_get(port: int, target: str, sni: str | None = "a.test", host: str | None = None,
              headers=(), method: str = "GET", body: bytes | None = None, **kw) -> Response:
    """One request on a fresh connection (closed afterwards)."""
    with HTTPConn.tls(port, sni, **kw) as c:
        return c.request(method, target, host if host is not None else sni, headers, body)


# ----- curl ------------------------------------------------------------------------------------

@dataclass
class CurlResult:
    rc: int
    transfers: list[dict]       # curl's %{json} write-out, one per URL
    headers: str
    body: bytes
    stderr: str

    @property
    def status(self) -> int:
        return int(self.transfers[-1]["http_code"]) if self.transfers else 0


def curl(urls: list[str] | str, resolve: list[tuple[str, int]] = (), cafile: str | Path | None = None,
         extra: list[str] = (), timeout: float = 30.0) -> CurlResult:
    """Run the real curl binary; `resolve` pins host:port to 127.0.0.1 (no DNS, loopback only)."""
    if isinstance(urls, str):
        urls = [urls]
    with tempfile.TemporaryDirectory() as td:
        hdr, body = Path(td) / "h", Path(td) / "b"
        args = [need_tool("curl", "curl"), "-sS", "--http1.1", "--max-time", str(int(timeout)), "-D", str(hdr), "-o", str(body),
                "--write-out", "%{json}\\n", "--noproxy", "*"]
        for h, p in resolve:
            args += ["--resolve", f"{h}:{p}:127.0.0.1"]
        if cafile:
            args += ["--cacert", str(cafile)]
        args += list(extra)
        cmd = []
        for i, u in enumerate(urls):
            if i:
                cmd += ["-o", str(body)]   # every URL needs an output; the last one wins
            cmd.append(u)
        p = subprocess.run(args + cmd, capture_output=True, timeout=timeout + 10)
        transfers = [json.loads(line) for line in p.stdout.decode().splitlines() if line.startswith("{")]
        return CurlResult(p.returncode, transfers, hdr.read_text("latin-1") if hdr.exists() else "",
                          body.read_bytes() if body.exists() else b"", p.stderr.decode("utf-8", "replace"))


def openssl_s_client(port: int, args: list[str], stdin: bytes = b"", timeout: float = 15.0) -> str:
    """Run `openssl s_client -connect 127.0.0.1:PORT ARGS...`; returns stdout+stderr."""
    cmd = [need_tool("openssl", "openssl"), "s_client", "-connect", f"127.0.0.1:{port}"] + list(args)
    p = subprocess.run(cmd, input=stdin, capture_output=True, timeout=timeout)
    return p.stdout.decode("utf-8", "replace") + p.stderr.decode("utf-8", "replace")
