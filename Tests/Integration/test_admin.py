"""The admin API (issue #3): every route, the bearer token, loopback-only access without one,
persistence of API-installed certificates, and refusals with their reasons."""

from __future__ import annotations

import os
import subprocess

import pytest

from conftest import free_port, run_check, standard_tls
from httpclient import handshake_cert
from reload_support import Admin, metric, wait_until
from tools import need_tool

TOKEN = "0123456789abcdef-test-token"


def admin_config(port: int, **admin) -> dict:
    return {"tls": standard_tls(), "admin": {"listen": f"127.0.0.1:{port}", **admin},
            "routes": [{"respond": {"status": 200, "body": "ok\n", "content_type": "text/plain"}}],
            "log": {"access": "off"}}


@pytest.fixture
def proxy_admin(proxies):
    port = free_port()
    p = proxies(admin_config(port))
    return p, Admin(port)


def test_healthz_and_metrics(proxy_admin):
    p, admin = proxy_admin
    status, headers, body = admin.request("GET", "/healthz")
    assert (status, body) == (200, b"ok\n")
    handshake_cert(p.https_port, "a.test")
    handshake_cert(p.https_port, "x.wild.test")
    handshake_cert(p.https_port, "unknown.test")
    from httpclient import https_get
    assert https_get(p.https_port, "/").status == 200
    # A response is counted once written, which the client may see first: wait for the count.
    def counted():
        t = admin.metrics()
        return t if metric(t, "edgeproxy_http_responses_total", **{"class": "2xx"}) >= 1 else None
    text = wait_until(counted, 5, what="the 2xx response counted")
    assert metric(text, "edgeproxy_tls_handshakes_total", outcome="ok", version="TLSv1.3") >= 4
    assert metric(text, "edgeproxy_sni_total", match="exact") >= 2
    assert metric(text, "edgeproxy_sni_total", match="wildcard") >= 1
    assert metric(text, "edgeproxy_sni_total", match="default") >= 1
    assert metric(text, "edgeproxy_http_responses_total", **{"class": "2xx"}) >= 1
    assert metric(text, "edgeproxy_http_requests_total", protocol="HTTP/1.1") >= 1
    assert metric(text, "edgeproxy_http_requests_total", protocol="HTTP/2") == 0
    h2 = subprocess.run([need_tool("curl", "curl"), "-sk", "--http2", "-o", "/dev/null", "-w", "%{http_version}",
                         f"https://127.0.0.1:{p.https_port}/"], capture_output=True, text=True, timeout=30)
    assert h2.stdout == "2"
    assert metric(admin.metrics(), "edgeproxy_http_requests_total", protocol="HTTP/2") == 1
    assert "edgeproxy_open_connections " in text
    assert "edgeproxy_upstream_errors_total " in text
    serial = format(p_serial(p, "a.test"), "X")
    serial = "0" * (len(serial) % 2) + serial  # OpenSSL writes whole bytes: "0A…", not "A…"
    expiry = metric(text, "edgeproxy_certificate_expiry_seconds", name="a.test", serial=serial)
    assert 29 * 86400 < expiry <= 30 * 86400


def p_serial(p, sni):
    return handshake_cert(p.https_port, sni)["serial"]


def test_list_certificates(proxy_admin, pki):
    p, admin = proxy_admin
    # Start-up serves P-256 certificates from their index and OpenSSL checks them just after:
    # until then the listing says so and leaves issuer and subject out.
    listing = wait_until(lambda: (l := admin.json("GET", "/certificates")[1]) and all(c["checked"] for c in l) and l, 20,
                         what="every certificate checked by OpenSSL")
    by_name = {c["name"]: c for c in listing}
    assert {"a.test", "a.test-rsa", "b.test", "wild", "default", "c.test"} <= set(by_name)
    a = by_name["a.test"]
    assert a["names"] == ["a.test"] and a["key_type"] == "ecdsa" and a["source"] == "directory"
    assert "Test CA" in a["issuer"] or a["issuer"]
    assert int(a["serial"], 16) == pki.leaves["a_ec"].serial
    assert a["not_before"] < a["not_after"]
    assert by_name["a.test-rsa"]["key_type"] == "rsa"
    assert by_name["c.test"]["source"] == "file"


def test_put_and_delete_a_certificate(proxy_admin, pki, proxies):
    p, admin = proxy_admin
    leaf = pki.issue(["new.test"])
    status, body = admin.json("PUT", "/certificates/new.test", leaf.chain_pem + leaf.key_pem)
    assert status == 200, body
    assert body["names"] == ["new.test"] and body["source"] == "api"
    assert p_serial(p, "new.test") == leaf.serial
    stored = p.dir / "certs" / "new.test.pem"
    assert stored.exists() and stored.stat().st_mode & 0o777 == 0o600
    # A restart keeps it (persisted into the certificate directory).
    p.stop()
    p.start()
    assert p_serial(p, "new.test") == leaf.serial
    status, body = admin.json("DELETE", "/certificates/new.test")
    assert status == 200, body
    assert not stored.exists()
    assert p_serial(p, "new.test") == pki.leaves["default"].serial
    status, _, _ = admin.request("DELETE", "/certificates/new.test")
    assert status == 404


def test_put_refuses_bad_certificates_with_reasons(proxy_admin, pki):
    p, admin = proxy_admin
    leaf = pki.issue(["a.test"])
    other = pki.issue(["a.test"])
    before = p_serial(p, "a.test")
    for body, reason in [(b"garbage", "no certificate found"),
                         (leaf.chain_pem + other.key_pem, "does not belong"),
                         (leaf.chain_pem, "no private key")]:
        status, answer = admin.json("PUT", "/certificates/a.test", body)
        assert status == 422 and reason in answer["error"], answer
    assert p_serial(p, "a.test") == before
    assert metric(admin.metrics(), "edgeproxy_certificate_refusals_total", source="api") >= 3
    # Bodies are bounded (1 MiB): refused from the head, before any of it is read.
    import socket
    with socket.create_connection(("127.0.0.1", admin.port), timeout=10) as s:
        s.sendall(b"PUT /certificates/a.test HTTP/1.1\r\nHost: x\r\nContent-Length: 1048586\r\n\r\n")
        assert s.recv(100).startswith(b"HTTP/1.1 413")


def test_reload_route_and_bad_configuration(proxy_admin):
    p, admin = proxy_admin
    status, body = admin.json("POST", "/reload")
    assert status == 200 and body["refused"] == [] and body["unchanged"] >= 6, body
    good = p.config_path.read_text()
    p.config_path.write_text(good + "tls_typo: 1\n")
    status, body = admin.json("POST", "/reload")
    assert status == 422
    assert "config.yaml:" in body["error"] and "tls_typo" in body["error"], body
    assert p_serial(p, "a.test")  # still serving
    p.config_path.write_text(good)


def test_routes_and_methods(proxy_admin):
    _, admin = proxy_admin
    assert admin.request("GET", "/nope")[0] == 404
    status, headers, _ = admin.request("GET", "/reload")
    assert status == 405 and headers["allow"] == "POST"
    assert admin.request("PUT", "/certificates/..%2Fescape", b"x")[0] == 404


def test_bearer_token(proxies, tmp_path):
    port = free_port()
    proxies(admin_config(port, token=TOKEN))
    admin = Admin(port)
    assert admin.request("GET", "/healthz")[0] == 401
    status, headers, _ = admin.request("GET", "/certificates", token="wrong-token-wrong-token")
    assert status == 401 and "bearer" in headers["www-authenticate"].lower()
    assert admin.request("GET", "/certificates", token=TOKEN)[0] == 200


def test_token_file(proxies, tmp_path):
    port = free_port()
    token_file = tmp_path / "admin.token"
    token_file.write_text(TOKEN + "\n")
    proxies(admin_config(port, token_file=str(token_file)))
    assert Admin(port).request("GET", "/healthz")[0] == 401
    assert Admin(port, TOKEN).request("GET", "/healthz")[0] == 200


def test_non_loopback_admin_without_token_is_refused(proxies, edgeproxy_bin):
    p = proxies({"tls": standard_tls(), "admin": {"listen": f"0.0.0.0:{free_port()}"}}, start=False)
    r = run_check(edgeproxy_bin, p.config_path)
    assert r.returncode == 1
    assert "config.yaml:" in r.stderr and "admin.token" in r.stderr, r.stderr
    # With a token it is accepted.
    p.write_config({"tls": standard_tls(), "admin": {"listen": f"0.0.0.0:{free_port()}", "token": TOKEN}})
    assert run_check(edgeproxy_bin, p.config_path).returncode == 0
