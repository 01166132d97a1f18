"""A TCP relay in front of one etcd member that passes every request through, but can hold back
what watch streams (`POST /v3/watch`) deliver once they are created: a node behind it reads and
writes etcd as usual while its watch falls behind, as a watch a moment behind the other nodes does.

    gate = WatchGate(etcd.member_endpoint(0))
    node config: cluster.endpoints = [gate.endpoint]
    gate.hold(); ...; gate.release(); gate.close()

What a held stream receives waits in the relay (then in the kernel's buffers) until `release`; a
stream the node gives up and opens again is created, then held the same way.
"""

from __future__ import annotations

import re
import socket
import threading
from urllib.parse import urlsplit

CREATED = b'"created":true'
CREATED_RE = re.compile(rb'"created"\s*:\s*true')


class WatchGate:
    def __init__(self, upstream: str):
        parts = urlsplit(upstream)
        if parts.scheme != "http":
            raise ValueError(f"WatchGate relays plain HTTP only, not {upstream}")
        self.upstream = (parts.hostname, parts.port)
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.endpoint = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        self.cond = threading.Condition()
        self.held = False
        self.closed = False
        self.watches = 0          # watch streams opened through the gate
        self.conns: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def hold(self) -> None:
        with self.cond:
            self.held = True

    def release(self) -> None:
        with self.cond:
            self.held = False
            self.cond.notify_all()

    def close(self) -> None:
        with self.cond:
            self.closed, self.held = True, False
            self.cond.notify_all()
        for s in [self.sock, *self.conns]:
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            s.close()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.sock.accept()
            except OSError:
                return
            try:
                server = socket.create_connection(self.upstream, timeout=5)
                server.settimeout(None)
            except OSError:
                client.close()
                continue
            self.conns += [client, server]
            state = {"watch": False, "created": False}
            threading.Thread(target=self._up, args=(client, server, state), daemon=True).start()
            threading.Thread(target=self._down, args=(server, client, state), daemon=True).start()

    def _up(self, client: socket.socket, server: socket.socket, state: dict) -> None:
        seen = b""

        def inspect(data: bytes) -> bool:
            nonlocal seen
            if not state["watch"]:
                seen = (seen + data)[-4096:]
                if b"POST /v3/watch " in seen:
                    state["watch"] = True
                    with self.cond:
                        self.watches += 1
            return True

        _pump(client, server, inspect)
        with self.cond:
            state["gone"] = True
            self.cond.notify_all()

    def _down(self, server: socket.socket, client: socket.socket, state: dict) -> None:
        seen = b""

        def inspect(data: bytes):
            nonlocal seen
            if state["watch"] and not state["created"]:
                seen = (seen + data)[-4096:]
                state["created"] = CREATED in seen.replace(b" ", b"")
                if state["created"]:
                    # Events may follow the created response in the same read (a watch opened again
                    # from an older revision is sent what it missed at once): only the response
                    # passes, up to the end of its line; the rest is held like any later event.
                    m = CREATED_RE.search(data)
                    cut = data.find(b"\n", m.end() if m else 0)
                    if 0 <= cut < len(data) - 1:
                        return data[:cut + 1], data[cut + 1:]
            elif state["watch"]:
                # What arrived while held (or was on its way when `hold` was called) waits here.
                with self.cond:
                    self.cond.wait_for(lambda: not self.held or self.closed or state.get("gone"))
                    if self.closed or state.get("gone"):
                        return False
            return True

        _pump(server, client, inspect)


def _pump(src: socket.socket, dst: socket.socket, inspect) -> None:
    """Copies `src` to `dst` until either end closes or `inspect` (shown each chunk first) says
    stop, then closes both. `inspect` may also split a chunk (head, rest): the head goes at once,
    the rest is shown to it again."""
    while True:
        try:
            data = src.recv(65536)
        except OSError:
            data = b""
        if not data or not _send(dst, data, inspect):
            break
    _close(src, dst)


def _send(dst: socket.socket, data: bytes, inspect) -> bool:
    verdict = inspect(data)
    if isinstance(verdict, tuple):
        head, rest = verdict
        return _send(dst, head, lambda _: True) and _send(dst, rest, inspect)
    if not verdict:
        return False
    try:
        dst.sendall(data)
    except OSError:
        return False
    return True


def _close(*socks: socket.socket) -> None:
    for s in socks:
        try:
            s.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
