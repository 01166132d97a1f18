"""Self-checks of the test harness itself (origin.py, the raw HTTP client, the PKI). They do not need
the edgeproxy binary; when they fail, the other failures in this directory are not trustworthy."""

from __future__ import annotations

import base64
import hashlib
import os
import ssl

from httpclient import HTTPConn, build_request, client_context, curl, peer_cert, tls_connect
from origin import pattern_bytes, pattern_sha256, ws_frame, ws_read_frame


def test_origin_echo_keepalive_and_counters(origins):
    """The origin answers /echo on one keep-alive connection and counts connections and requests."""
    o = origins("T")
    with HTTPConn.plain(o.port) as c:
        for i in range(3):
            r = c.request("POST", f"/echo?i={i}", host="h", headers=[("X-A", "1")], body=b"abc", chunked=i == 1)
            assert r.status == 200
            e = r.json()
            assert (e["target"], e["body"], e["origin"]) == (f"/echo?i={i}", "abc", "T")
    st = o.stats()
    assert (st["connections"], st["requests"]) == (1, 3)
    o.reset()
    assert o.stats()["requests"] == 0


def test_origin_pipelining_head_204_bytes(origins):
    """Pipelined requests, HEAD, 204/304 and /bytes framing through the raw client."""
    o = origins("T")
    with HTTPConn.plain(o.port) as c:
        c.send(build_request("HEAD", "/bytes?n=10", "h") + build_request("GET", "/status?code=204", "h")
               + build_request("GET", "/status?code=304", "h") + build_request("GET", "/bytes?n=70000&chunked=1", "h")
               + build_request("GET", "/bytes?n=1000", "h"))
        h = c.read_response("HEAD")
        assert (h.status, h.header("content-length"), h.body) == (200, "10", b"")
        assert c.read_response().status == 204
        assert c.read_response().status == 304
        r = c.read_response()
        assert r.header("transfer-encoding") == "chunked" and r.body == pattern_bytes(0, 70000)
        assert c.read_response().body == pattern_bytes(0, 1000)
    assert hashlib.sha256(pattern_bytes(0, 3_000_000)).hexdigest() == pattern_sha256(3_000_000)


def test_origin_expect_continue_and_sha256(origins):
    """The origin sends 100 Continue for Expect and hashes the body."""
    o = origins("T")
    body = os.urandom(200_000)
    with HTTPConn.plain(o.port) as c:
        c.send(b"POST /sha256 HTTP/1.1\r\nHost: h\r\nExpect: 100-continue\r\nContent-Length: %d\r\n\r\n" % len(body))
        assert c.read_head().status == 100
        c.send(body)
        assert c.read_response().json()["sha256"] == hashlib.sha256(body).hexdigest()


def test_origin_websocket_echo(origins):
    """The origin's /ws endpoint upgrades and echoes frames."""
    o = origins("T")
    key = base64.b64encode(os.urandom(16)).decode()
    with HTTPConn.plain(o.port) as c:
        c.send(build_request("GET", "/ws", "h", headers=[("Upgrade", "websocket"), ("Connection", "Upgrade"),
                                                          ("Sec-WebSocket-Key", key), ("Sec-WebSocket-Version", "13")]))
        assert c.read_head().status == 101
        data = os.urandom(70000)
        c.send(ws_frame(0x2, data, mask=True))
        assert ws_read_frame(c) == (0x2, data)
        c.send(ws_frame(0x8, b"\x03\xe8", mask=True))
        assert ws_read_frame(c)[0] == 0x8
    assert o.stats()["ws_sessions"] == 1


def test_origin_with_curl(origins):
    """curl against the origin: keep-alive reuse across URLs and a chunked upload."""
    o = origins("T")
    u = f"http://127.0.0.1:{o.port}"
    r = curl([f"{u}/echo", f"{u}/status?code=201&h=X-A:b"])
    assert r.rc == 0, r.stderr
    assert [int(t["http_code"]) for t in r.transfers] == [200, 201]
    assert sum(int(t["num_connects"]) for t in r.transfers) == 1
    r = curl(f"{u}/sha256", extra=["-H", "Transfer-Encoding: chunked", "--data-binary", "hello"])
    assert r.body.startswith(b'{"sha256": "' + hashlib.sha256(b"hello").hexdigest().encode())


def test_pki_leaves_verify(pki, tmp_path):
    """The PKI's leaves verify against its CA for their names (through a local TLS server)."""
    import socket
    import threading
    leaf = pki.leaves["wild"]
    crt, key = leaf.write(tmp_path, "w")
    srv = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    srv.load_cert_chain(crt, key)
    ls = socket.socket()
    ls.bind(("127.0.0.1", 0))
    ls.listen(1)

    def serve():
        c, _ = ls.accept()
        try:
            with srv.wrap_socket(c, server_side=True) as s:
                s.recv(1)
        except (ssl.SSLError, OSError):
            pass
    t = threading.Thread(target=serve, daemon=True)
    t.start()
    with tls_connect(ls.getsockname()[1], "x.wild.test", ctx=client_context(cafile=pki.ca_path)) as s:
        got = peer_cert(s)
    t.join(5)
    ls.close()
    assert got == {"serial": leaf.serial, "names": ["*.wild.test"], "key_type": "ec"}
    assert pki.issue(["a.test"]).serial != pki.issue(["a.test"]).serial
