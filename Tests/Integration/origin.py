#!/usr/bin/env python3
"""A small threaded HTTP/1.1 origin server on raw sockets, for the edgeproxy integration tests.

It is deliberately hand-written (not http.server): it keeps connections alive, reads chunked and
Content-Length request bodies, answers pipelined requests in order, honours
`Expect: 100-continue`, and counts what it sees so tests can tell what the proxy forwarded.

Endpoints (query parameters in brackets):
  /echo                  JSON: method, target, path, version, headers ([name, value] pairs in wire
                         order), body (latin-1 text), body_len, body_sha256, origin, conn
  /sha256                JSON: sha256 + length of the request body
  /bytes?n=N[&chunked=1] N bytes of a fixed pattern (byte i == i % 251), Content-Length or chunked
  /slow?ms=N             waits N ms, then 200
  /status?code=N[&h=Name:Value ...][&body=text]
                         answers with status N and the given extra headers (204/304: no body)
  /trailers[?body=text]  chunked body, then trailer fields X-Checksum (sha256 of the body) and X-Note
  /ws                    websocket upgrade (101) then echo of every frame; close answered with close
  /stats                 JSON counters (see Origin.stats())
Any other path answers 404.

Every response carries `X-Origin: NAME` and `X-Conn: N` (the origin's connection number).

Counting: `connections` = TCP connections accepted on the main port; `requests` = requests whose
head *and* body were fully received; `heads` logs each request line as soon as its header block is
parsed; `completed` logs request targets once the body is complete too.

Run it in-process (`Origin(name).start()`) or as a subprocess:
  python3 origin.py --name A [--host 127.0.0.1] [--port 0]
which prints one line `READY <port> <control_port>` on stdout when listening, and stops on SIGTERM
(or when stdin closes, with --exit-on-stdin-eof). The control port answers /stats and /reset without being counted.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import os
import signal
import socket
import struct
import sys
import threading
import time
from urllib.parse import parse_qs, urlsplit

WS_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
PATTERN_MOD = 251
_PATTERN = bytes(i % PATTERN_MOD for i in range(PATTERN_MOD)) * 1024   # ~251 KiB

REASONS = {100: "Continue", 101: "Switching Protocols", 200: "OK", 201: "Created", 204: "No Content",
           301: "Moved Permanently", 302: "Found", 304: "Not Modified", 400: "Bad Request",
           404: "Not Found", 413: "Content Too Large", 500: "Internal Server Error",
           502: "Bad Gateway", 503: "Service Unavailable", 504: "Gateway Timeout"}


def pattern_bytes(offset: int, length: int) -> bytes:
    """The /bytes pattern from `offset`, `length` bytes long (byte i == i % 251)."""
    out = bytearray()
    while length > 0:
        start = offset % PATTERN_MOD
        take = min(length, len(_PATTERN) - start)
        out += _PATTERN[start:start + take]
        offset += take
        length -= take
    return bytes(out)


def pattern_sha256(n: int) -> str:
    h = hashlib.sha256()
    off = 0
    while off < n:
        take = min(1 << 20, n - off)
        h.update(pattern_bytes(off, take))
        off += take
    return h.hexdigest()


def serve_each(sock: socket.socket, serve) -> None:
    """Accepts on `sock` until it is closed; each connection is served by `serve(conn)` on a thread
    of its own (for the tests' scripted origins)."""
    def run() -> None:
        while True:
            try:
                conn, _ = sock.accept()
            except OSError:
                return
            threading.Thread(target=serve, args=(conn,), daemon=True).start()
    threading.Thread(target=run, daemon=True).start()


def recv_head(conn: socket.socket) -> bytes | None:
    """What `conn` sends up to its first blank line (and any bytes after it), or None at EOF before."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = conn.recv(4096)
        if not chunk:
            return None
        data += chunk
    return data


class ClientGone(Exception):
    pass


class Reader:
    """Buffered reads over a socket: lines (CRLF or LF) and exact byte counts."""

    def __init__(self, sock: socket.socket):
        self.sock = sock
        self.buf = bytearray()

    def _fill(self) -> None:
        data = self.sock.recv(65536)
        if not data:
            raise ClientGone()
        self.buf += data

    def readline(self, limit: int = 1 << 20) -> bytes:
        while True:
            i = self.buf.find(b"\n")
            if i >= 0:
                line = bytes(self.buf[:i + 1])
                del self.buf[:i + 1]
                return line
            if len(self.buf) > limit:
                raise ValueError("line too long")
            self._fill()

    def read(self, n: int) -> bytes:
        while len(self.buf) < n:
            self._fill()
        out = bytes(self.buf[:n])
        del self.buf[:n]
        return out

    def read_some(self) -> bytes:
        if not self.buf:
            self._fill()
        out = bytes(self.buf)
        self.buf.clear()
        return out


class Request:
    def __init__(self, method, target, version, headers):
        self.method = method
        self.target = target
        self.version = version
        self.headers = headers          # list of (name, value)
        self.body = b""
        u = urlsplit(target)
        self.path = u.path
        self.query = parse_qs(u.query, keep_blank_values=True)

    def header(self, name: str) -> str | None:
        name = name.lower()
        for k, v in self.headers:
            if k.lower() == name:
                return v
        return None

    def header_all(self, name: str) -> list[str]:
        name = name.lower()
        return [v for k, v in self.headers if k.lower() == name]

    def tokens(self, name: str) -> set[str]:
        out = set()
        for v in self.header_all(name):
            out |= {t.strip().lower() for t in v.split(",") if t.strip()}
        return out

    def q(self, name: str, default: str | None = None) -> str | None:
        v = self.query.get(name)
        return v[0] if v else default


class Origin:
    def __init__(self, name: str = "origin", host: str = "127.0.0.1", port: int = 0):
        self.name = name
        self.host = host
        self._lock = threading.Lock()
        self._conn_seq = 0
        self.reset()
        fam = socket.AF_INET6 if ":" in host else socket.AF_INET
        self.sock = socket.socket(fam, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind((host, port))
        self.sock.listen(512)
        self.port = self.sock.getsockname()[1]
        self.ctl = socket.socket(fam, socket.SOCK_STREAM)
        self.ctl.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.ctl.bind((host, 0))
        self.ctl.listen(64)
        self.control_port = self.ctl.getsockname()[1]
        self._stopping = threading.Event()
        self._threads: list[threading.Thread] = []
        self._open: set[socket.socket] = set()

    # ----- counters -------------------------------------------------------------------------
    def reset(self) -> None:
        with getattr(self, "_lock", threading.Lock()):
            self.connections = 0          # accepted TCP connections (main port)
            self.active = 0               # currently open connections
            self.requests = 0             # fully received requests
            self.heads: list[str] = []    # "METHOD target" once the header block parsed
            self.completed: list[str] = []  # "METHOD target" once the body is complete too
            self.ws_sessions = 0

    def stats(self) -> dict:
        with self._lock:
            return {"origin": self.name, "connections": self.connections, "active": self.active,
                    "requests": self.requests, "heads": list(self.heads),
                    "completed": list(self.completed), "ws_sessions": self.ws_sessions}

    # ----- lifecycle ------------------------------------------------------------------------
    def start(self) -> "Origin":
        for target, sock, counted in ((self._accept_loop, self.sock, True), (self._accept_loop, self.ctl, False)):
            t = threading.Thread(target=target, args=(sock, counted), daemon=True, name=f"origin-{self.name}-accept")
            t.start()
            self._threads.append(t)
        return self

    def stop(self) -> None:
        self._stopping.set()
        for s in (self.sock, self.ctl):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            s.close()
        with self._lock:
            conns = list(self._open)
        for c in conns:
            try:
                c.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def __enter__(self):
        return self.start()

    def __exit__(self, *a):
        self.stop()

    def _accept_loop(self, lsock: socket.socket, counted: bool) -> None:
        while not self._stopping.is_set():
            try:
                conn, _ = lsock.accept()
            except OSError:
                return
            with self._lock:
                self._conn_seq += 1
                cid = self._conn_seq
                if counted:
                    self.connections += 1
                    self.active += 1
                self._open.add(conn)
            t = threading.Thread(target=self._serve, args=(conn, cid, counted), daemon=True,
                                 name=f"origin-{self.name}-conn{cid}")
            t.start()

    # ----- per connection -------------------------------------------------------------------
    def _serve(self, conn: socket.socket, cid: int, counted: bool) -> None:
        conn.settimeout(120)
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        rd = Reader(conn)
        try:
            while not self._stopping.is_set():
                req = self._read_head(rd)
                if req is None:
                    return
                if counted:
                    with self._lock:
                        self.heads.append(f"{req.method} {req.target}")
                if req.header("expect") and req.header("expect").lower() == "100-continue" and self._has_body(req):
                    conn.sendall(b"HTTP/1.1 100 Continue\r\n\r\n")
                req.body = self._read_body(rd, req)
                if counted:
                    with self._lock:
                        self.requests += 1
                        self.completed.append(f"{req.method} {req.target}")
                keep = self._handle(conn, rd, req, cid, counted)
                if not keep:
                    return
        except (ClientGone, ConnectionError, socket.timeout, OSError, ValueError):
            return
        finally:
            with self._lock:
                self._open.discard(conn)
                if counted:
                    self.active -= 1
            try:
                conn.close()
            except OSError:
                pass

    @staticmethod
    def _read_head(rd: Reader) -> Request | None:
        try:
            line = rd.readline()
        except ClientGone:
            return None
        while line in (b"\r\n", b"\n"):        # tolerate stray CRLF between requests
            line = rd.readline()
        parts = line.decode("latin-1").rstrip("\r\n").split(" ")
        if len(parts) != 3:
            raise ValueError(f"bad request line {line!r}")
        method, target, version = parts
        headers = []
        while True:
            h = rd.readline()
            if h in (b"\r\n", b"\n"):
                break
            k, _, v = h.decode("latin-1").rstrip("\r\n").partition(":")
            headers.append((k, v.strip(" \t")))
        return Request(method, target, version, headers)

    @staticmethod
    def _has_body(req: Request) -> bool:
        if "chunked" in req.tokens("transfer-encoding"):
            return True
        cl = req.header("content-length")
        return bool(cl) and int(cl) > 0

    @staticmethod
    def _read_body(rd: Reader, req: Request) -> bytes:
        if req.header_all("transfer-encoding"):
            if "chunked" not in req.tokens("transfer-encoding"):
                raise ValueError("unsupported transfer-encoding")
            body = bytearray()
            while True:
                size_line = rd.readline().decode("latin-1").strip()
                size = int(size_line.split(";")[0].strip(), 16)
                if size == 0:
                    while rd.readline() not in (b"\r\n", b"\n"):   # trailers
                        pass
                    return bytes(body)
                body += rd.read(size)
                if rd.readline() not in (b"\r\n", b"\n"):
                    raise ValueError("missing CRLF after chunk")
        cl = req.header("content-length")
        if cl:
            return rd.read(int(cl))
        return b""

    # ----- responses ------------------------------------------------------------------------
    def _keepalive(self, req: Request) -> bool:
        conn_tokens = req.tokens("connection")
        if req.version == "HTTP/1.0":
            return "keep-alive" in conn_tokens
        return "close" not in conn_tokens

    def _send(self, conn, req, cid, status, body=b"", headers=(), keep=True, no_body=False):
        lines = [f"HTTP/1.1 {status} {REASONS.get(status, 'Status')}",
                 f"X-Origin: {self.name}", f"X-Conn: {cid}"]
        lines += [f"{k}: {v}" for k, v in headers]
        if status not in (204, 304) and status >= 200:
            lines.append(f"Content-Length: {len(body)}")
        if not keep:
            lines.append("Connection: close")
        head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
        if req.method == "HEAD" or no_body or status in (204, 304):
            conn.sendall(head)
        else:
            conn.sendall(head + body)

    def _handle(self, conn, rd, req: Request, cid: int, counted: bool) -> bool:
        keep = self._keepalive(req)
        p = req.path
        if p == "/echo":
            doc = {"method": req.method, "target": req.target, "path": req.path, "version": req.version,
                   "headers": [[k, v] for k, v in req.headers], "body": req.body.decode("latin-1"),
                   "body_len": len(req.body), "body_sha256": hashlib.sha256(req.body).hexdigest(),
                   "origin": self.name, "conn": cid}
            self._send(conn, req, cid, 200, json.dumps(doc).encode(), [("Content-Type", "application/json")], keep)
        elif p == "/sha256":
            doc = {"sha256": hashlib.sha256(req.body).hexdigest(), "length": len(req.body), "origin": self.name}
            self._send(conn, req, cid, 200, json.dumps(doc).encode(), [("Content-Type", "application/json")], keep)
        elif p == "/bytes":
            self._send_bytes(conn, req, cid, keep)
        elif p == "/slow":
            ms = int(req.q("ms", "1000"))
            time.sleep(ms / 1000.0)
            self._send(conn, req, cid, 200, f"slept {ms}\n".encode(), [("Content-Type", "text/plain")], keep)
        elif p == "/status":
            code = int(req.q("code", "200"))
            extra = []
            for h in req.query.get("h", []):
                k, _, v = h.partition(":")
                extra.append((k.strip(), v.strip()))
            body = req.q("body", f"status {code}\n").encode()
            self._send(conn, req, cid, code, body, extra, keep)
        elif p == "/trailers":
            self._send_trailers(conn, req, cid, keep)
        elif p == "/early-hints":           # 103 Early Hints (RFC 8297), then the response
            conn.sendall(b"HTTP/1.1 103 Early Hints\r\nLink: </style.css>; rel=preload; as=style\r\n\r\n")
            self._send(conn, req, cid, 200, b"final\n", [("Content-Type", "text/plain")], keep)
        elif p == "/ws":
            return self._websocket(conn, rd, req, cid, counted)
        elif p == "/stats":
            self._send(conn, req, cid, 200, json.dumps(self.stats()).encode(),
                       [("Content-Type", "application/json")], keep)
        elif p == "/reset" and not counted:
            self.reset()
            self._send(conn, req, cid, 200, b"reset\n", [], keep)
        else:
            self._send(conn, req, cid, 404, b"not found\n", [("Content-Type", "text/plain")], keep)
        return keep

    def _send_bytes(self, conn, req, cid, keep):
        n = int(req.q("n", "0"))
        chunked = req.q("chunked", "0") not in ("0", "", "false")
        block = int(req.q("block", str(64 * 1024)))
        lines = ["HTTP/1.1 200 OK", f"X-Origin: {self.name}", f"X-Conn: {cid}",
                 "Content-Type: application/octet-stream"]
        lines.append("Transfer-Encoding: chunked" if chunked else f"Content-Length: {n}")
        if not keep:
            lines.append("Connection: close")
        conn.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
        if req.method == "HEAD":
            return
        off = 0
        while off < n:
            take = min(block, n - off)
            data = pattern_bytes(off, take)
            if chunked:
                conn.sendall(b"%x\r\n" % take + data + b"\r\n")
            else:
                conn.sendall(data)
            off += take
        if chunked:
            conn.sendall(b"0\r\n\r\n")

    def _send_trailers(self, conn, req, cid, keep):
        """A chunked body followed by trailer fields: X-Checksum (sha256 of the body) and X-Note."""
        body = req.q("body", "body with trailers\n").encode()
        lines = ["HTTP/1.1 200 OK", f"X-Origin: {self.name}", f"X-Conn: {cid}", "Content-Type: text/plain",
                 "Transfer-Encoding: chunked", "Trailer: X-Checksum, X-Note"]
        if not keep:
            lines.append("Connection: close")
        out = ("\r\n".join(lines) + "\r\n\r\n").encode()
        if req.method != "HEAD":
            out += b"%x\r\n" % len(body) + body + b"\r\n0\r\n"
            out += f"X-Checksum: {hashlib.sha256(body).hexdigest()}\r\nX-Note: done\r\n\r\n".encode()
        conn.sendall(out)

    # ----- websocket ------------------------------------------------------------------------
    def _websocket(self, conn, rd: Reader, req: Request, cid: int, counted: bool) -> bool:
        key = req.header("sec-websocket-key")
        if "websocket" not in req.tokens("upgrade") or not key:
            self._send(conn, req, cid, 400, b"websocket upgrade required\n", [], False)
            return False
        accept = base64.b64encode(hashlib.sha1((key + WS_GUID).encode()).digest()).decode()
        conn.sendall(("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                      f"Sec-WebSocket-Accept: {accept}\r\nX-Origin: {self.name}\r\n\r\n").encode())
        if counted:
            with self._lock:
                self.ws_sessions += 1
        while True:
            opcode, payload = ws_read_frame(rd)
            if opcode == 0x8:
                conn.sendall(ws_frame(0x8, payload[:2]))
                return False
            if opcode == 0x9:
                conn.sendall(ws_frame(0xA, payload))
                continue
            conn.sendall(ws_frame(opcode, payload))


def ws_frame(opcode: int, payload: bytes, mask: bool = False) -> bytes:
    """One final websocket frame (server frames unmasked; clients must pass mask=True)."""
    b0 = 0x80 | opcode
    n = len(payload)
    mbit = 0x80 if mask else 0
    if n < 126:
        head = struct.pack("!BB", b0, mbit | n)
    elif n < 65536:
        head = struct.pack("!BBH", b0, mbit | 126, n)
    else:
        head = struct.pack("!BBQ", b0, mbit | 127, n)
    if not mask:
        return head + payload
    key = os.urandom(4)
    return head + key + _xor(payload, key)


def _xor(data: bytes, key: bytes) -> bytes:
    if not data:
        return b""
    k = (key * (len(data) // 4 + 1))[:len(data)]
    return (int.from_bytes(data, "big") ^ int.from_bytes(k, "big")).to_bytes(len(data), "big")


def ws_read_frame(rd) -> tuple[int, bytes]:
    """Read one (unfragmented) frame from anything with .read(n); returns (opcode, payload)."""
    b0, b1 = rd.read(2)
    opcode = b0 & 0x0F
    masked = b1 & 0x80
    n = b1 & 0x7F
    if n == 126:
        n = struct.unpack("!H", rd.read(2))[0]
    elif n == 127:
        n = struct.unpack("!Q", rd.read(8))[0]
    key = rd.read(4) if masked else None
    payload = rd.read(n) if n else b""
    if key:
        payload = _xor(payload, key)
    return opcode, payload


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--name", default="origin")
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--exit-on-stdin-eof", action="store_true",
                    help="also stop when stdin closes (the test harness uses this so a dead parent never leaks us)")
    args = ap.parse_args()
    origin = Origin(args.name, args.host, args.port).start()
    done = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: done.set())
    signal.signal(signal.SIGINT, lambda *_: done.set())

    def watch_stdin():
        try:
            while sys.stdin.buffer.read(1):
                pass
        except (OSError, ValueError):
            pass
        done.set()
    if args.exit_on_stdin_eof:
        threading.Thread(target=watch_stdin, daemon=True).start()
    print(f"READY {origin.port} {origin.control_port}", flush=True)
    while not done.wait(0.05):
        pass
    origin.stop()
    sys.stdout.flush()
    os._exit(0)          # do not wait for connection threads blocked in recv


if __name__ == "__main__":
    main()
