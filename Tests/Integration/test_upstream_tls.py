"""Upstream TLS end to end: a real TLS origin (nginx, started here on free loopback ports with its
own configuration) whose certificate comes from a private CA. Its access log records, per
request, whether the session was resumed, the SNI, the ALPN protocol, the client certificate and
the PROXY header's client, so each case reads what the origin really saw.
"""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

import pytest

import nginx
from conftest import free_port, standard_tls, wait_for_port
from reload_support import wait_until
from httpclient import curl
from pki import TestPKI
from tools import need_tool

NGINX = "/usr/sbin/nginx"


class Origin:
    """nginx serving TLS on three ports: `plain` (any client), `mtls` (a client certificate from
    the client CA required) and `proxied` (a PROXY v1 header before the TLS handshake)."""

    def __init__(self, work: Path, pki: TestPKI, client_ca: TestPKI):
        self.work = work
        self.ports = {"plain": free_port(), "mtls": free_port(), "proxied": free_port()}
        leaf = pki.issue(["origin.test", "localhost", "127.0.0.1"])
        leaf.write(work, "origin")
        self.big = os.urandom(3 << 20)
        (work / "big.bin").write_bytes(self.big)
        self.log = work / "access.log"
        tls = f"""ssl_certificate {work}/origin.crt; ssl_certificate_key {work}/origin.key;
        ssl_session_cache shared:s:1m; ssl_session_tickets on; access_log {self.log} tls;"""
        answer = 'location / { return 200 "origin $ssl_server_name $request_uri\\n"; }'
        nginx.write_config(work, error_log_level="info", http=f"""    log_format tls '$request_uri|$ssl_session_reused|$ssl_server_name|$ssl_alpn_protocol|$ssl_client_s_dn|$proxy_protocol_addr|$connection|$ssl_cipher';
    server {{ listen 127.0.0.1:{self.ports['plain']} ssl; {tls} {answer}
              location = /big {{ alias {work}/big.bin; }} client_max_body_size 8m; }}
    server {{ listen 127.0.0.1:{self.ports['mtls']} ssl; {tls}
              ssl_client_certificate {client_ca.ca_path}; ssl_verify_client on; {answer} }}
    server {{ listen 127.0.0.1:{self.ports['proxied']} ssl proxy_protocol; {tls} {answer} }}""")
        self.proc = subprocess.Popen([need_tool(NGINX, "nginx-light"), "-c", str(work / "nginx.conf"), "-p", str(work)],
                                     stdout=subprocess.DEVNULL, stderr=open(work / "nginx.out", "w"))
        for port in self.ports.values():
            wait_for_port(port, proc=self.proc)

    def seen(self, uri: str) -> list[dict]:
        """What the origin logged for requests to `uri`, in order."""
        time.sleep(0.2)  # nginx writes its log line after the response
        keys = ("uri", "reused", "sni", "alpn", "client", "proxy", "connection", "cipher")
        lines = self.log.read_text().splitlines() if self.log.exists() else []
        return [r for r in (dict(zip(keys, line.split("|"))) for line in lines) if r["uri"] == uri]

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=10)


@pytest.fixture(scope="module")
def env(module_proxies, tmp_path_factory):
    base = tmp_path_factory.mktemp("upstream-tls")
    origin_pki = TestPKI(base / "origin-ca", name="origin CA")
    client_pki = TestPKI(base / "client-ca", name="origin client CA")
    stranger = TestPKI(base / "stranger-ca", name="some other CA")
    origin = Origin(base, origin_pki, client_pki)
    client = client_pki.issue(["edgeproxy.client"], client=True)
    client.write(base, "client")
    ca = str(origin_pki.ca_path)
    plain, mtls, proxied = (f"{h}:{origin.ports[k]}" for h, k in (("localhost", "plain"), ("127.0.0.1", "mtls"), ("127.0.0.1", "proxied")))
    ip = f"127.0.0.1:{origin.ports['plain']}"
    upstreams = {
        "named": {"servers": [plain], "tls": {"ca": ca, "server_name": "origin.test"}},
        "host": {"servers": [plain], "tls": {"ca": ca}},
        "ip": {"servers": [ip], "tls": {"ca": ca}},
        "fresh": {"servers": [plain], "keepalive": 0, "tls": {"ca": ca}},
        "noreuse": {"servers": [plain], "keepalive": 0, "tls": {"ca": ca, "session_reuse": False}},
        "wrongname": {"servers": [plain], "fail_timeout": "0s", "tls": {"ca": ca, "server_name": "wrong.test"}},
        "stranger": {"servers": [plain], "fail_timeout": "0s", "tls": {"ca": str(stranger.ca_path)}},
        "system": {"servers": [plain], "fail_timeout": "0s", "tls": True},
        "unverified": {"servers": [plain], "tls": {"ca": str(stranger.ca_path), "verify": False}},
        "mtls": {"servers": [mtls], "tls": {"ca": ca, "client_certificate": str(base / "client.crt"),
                                            "client_key": str(base / "client.key")}},
        "mtls-without": {"servers": [mtls], "tls": {"ca": ca}},
        "proxied": {"servers": [proxied], "proxy_protocol": "v1", "tls": {"ca": ca}},
        # The first server expects a PROXY header, so it drops the ClientHello.
        "failover": {"servers": [proxied, plain], "tls": {"ca": ca}},
        "checked": {"servers": [plain], "tls": {"ca": ca, "server_name": "origin.test"},
                    "health_check": {"path": "/check-ok", "interval": "1s", "rise": 1, "fall": 1}},
        "checked-wrong": {"servers": [plain], "tls": {"ca": ca, "server_name": "wrong.test"},
                          "health_check": {"path": "/check-wrong", "interval": "1s", "rise": 1, "fall": 1}},
    }
    config = {"workers": 1, "tls": standard_tls(), "upstreams": upstreams,
              "routes": [{"host": f"{name}.wild.test", "upstream": name} for name in upstreams]}
    proxy = module_proxies(config, name="proxy-upstream-tls")
    yield type("Env", (), {"proxy": proxy, "origin": origin, "base": base, "ca": origin_pki.ca_pem, "stranger_ca": stranger.ca_pem})
    origin.stop()


def get(env, upstream: str, path: str):
    with env.proxy.conn() as c:
        return c.request("GET", path, host=f"{upstream}.wild.test")


def test_verified_origin_sees_the_configured_name_and_http11(env):
    r = get(env, "named", "/named")
    assert r.status == 200 and r.body == b"origin origin.test /named\n"
    [seen] = env.origin.seen("/named")
    assert seen["sni"] == "origin.test" and seen["alpn"] == "http/1.1"


def test_origin_connections_offer_aes_128_gcm_first(env):
    """nginx follows the client's order by default (ssl_prefer_server_ciphers off), so the origin
    gets the suite edgeproxy offers first: AES-128-GCM, as the front prefers, rather than OpenSSL's
    default first choice, AES-256-GCM. (nginx 1.22 speaks TLS 1.2 unless told otherwise.)"""
    r = get(env, "named", "/cipher")
    assert r.status == 200
    [seen] = env.origin.seen("/cipher")
    assert seen["cipher"] in ("TLS_AES_128_GCM_SHA256", "ECDHE-ECDSA-AES128-GCM-SHA256"), seen


def test_server_name_defaults_to_the_servers_host(env):
    r = get(env, "host", "/host")
    assert r.status == 200
    assert env.origin.seen("/host")[0]["sni"] == "localhost"


def test_an_ip_address_sends_no_sni_and_is_checked_against_ip_sans(env):
    r = get(env, "ip", "/ip")
    assert r.status == 200, r.body
    assert env.origin.seen("/ip")[0]["sni"] == "-"


def test_http2_client_over_a_tls_upstream(env):
    p = env.proxy
    res = curl(p.url("/h2", host="named.wild.test"), resolve=p.resolve("named.wild.test"), extra=["--http2", "-k"])
    assert res.rc == 0 and res.transfers[0]["http_version"] == "2"
    assert res.body == b"origin origin.test /h2\n"


def test_new_connections_resume_the_servers_last_session(env):
    # keepalive 0: every request opens a connection of its own.
    for _ in range(4):
        assert get(env, "fresh", "/fresh").status == 200
    seen = env.origin.seen("/fresh")
    assert len({s["connection"] for s in seen}) == 4
    assert [s["reused"] for s in seen] == [".", "r", "r", "r"], seen


def test_session_reuse_off_makes_every_handshake_full(env):
    for _ in range(3):
        assert get(env, "noreuse", "/noreuse").status == 200
    assert [s["reused"] for s in env.origin.seen("/noreuse")] == [".", ".", "."]


def test_pooled_connection_is_kept_across_requests(env):
    with env.proxy.conn() as c:
        for _ in range(3):
            assert c.request("GET", "/pooled", host="named.wild.test").status == 200
    # One pooled TLS connection carried them all.
    seen = env.origin.seen("/pooled")
    assert len(seen) == 3 and len({s["connection"] for s in seen}) == 1, seen


@pytest.mark.parametrize("upstream,reason", [
    ("wrongname", "certificate verification failed: hostname mismatch"),
    # The origin sends its CA along (a full chain): a root nobody here trusts.
    ("stranger", "certificate verification failed: self-signed certificate in certificate chain"),
    ("system", "certificate verification failed: self-signed certificate in certificate chain"),
])
def test_a_certificate_that_fails_verification_is_a_502_with_the_reason_logged(env, upstream, reason):
    r = get(env, upstream, f"/{upstream}")
    assert r.status == 502
    assert env.origin.seen(f"/{upstream}") == []   # the request never reached the origin
    assert f"upstream {upstream} server localhost:{env.origin.ports['plain']}: {reason}" in env.proxy.stderr()


def test_verify_false_accepts_any_certificate(env):
    assert get(env, "unverified", "/unverified").status == 200


def test_client_certificate_is_shown_to_an_origin_that_requires_one(env):
    r = get(env, "mtls", "/mtls")
    assert r.status == 200
    assert env.origin.seen("/mtls")[0]["client"] == "CN=edgeproxy.client"
    # Without one, nginx answers 400 (no required SSL certificate was sent).
    assert get(env, "mtls-without", "/mtls-without").status == 400


def test_proxy_header_goes_out_in_the_clear_before_the_handshake(env):
    r = get(env, "proxied", "/proxied")
    assert r.status == 200, r.body
    [seen] = env.origin.seen("/proxied")
    assert seen["proxy"] == "127.0.0.1" and seen["sni"] == "-"


def test_health_checks_of_a_tls_upstream_handshake_as_its_connections_do(env):
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and get(env, "checked-wrong", "/after-check").status != 503:
        time.sleep(0.3)
    # The check with the wrong name fails verification: the server is taken out.
    assert get(env, "checked-wrong", "/after-check").status == 503
    assert env.origin.seen("/check-wrong") == []
    # The other check reached the origin over TLS, with the configured name.
    assert get(env, "checked", "/after-check").status == 200
    checks = env.origin.seen("/check-ok")
    assert checks and all(c["sni"] == "origin.test" for c in checks)


def test_a_failed_handshake_is_a_failed_connect_the_next_server_answers(env):
    for _ in range(4):
        assert get(env, "failover", "/failover").status == 200
    # Marked failed after the first attempt: skipped for fail_timeout, so tried once only.
    failed = [line for line in env.proxy.stderr().splitlines()
              if f"upstream failover server 127.0.0.1:{env.origin.ports['proxied']}:" in line]
    assert len(failed) == 1 and "during the TLS handshake" in failed[0], failed
    assert len(env.origin.seen("/failover")) == 4


def test_large_bodies_both_ways(env):
    # Many TLS records each way, with backpressure toward the client and the origin.
    r = get(env, "named", "/big")
    assert r.status == 200 and r.body == env.origin.big
    with env.proxy.conn() as c:
        r = c.request("POST", "/upload", host="named.wild.test", body=os.urandom(2 << 20))
    assert r.status == 200 and r.body == b"origin origin.test /upload\n"


def test_reload_reads_the_ca_file_again_and_refuses_one_that_is_unusable(env, proxies):
    ca = env.base / "reload-ca.pem"
    ca.write_bytes(env.stranger_ca)
    p = proxies({"workers": 1, "tls": standard_tls(), "routes": [{"upstream": "app"}],
                 "upstreams": {"app": {"servers": [f"localhost:{env.origin.ports['plain']}"], "tls": {"ca": str(ca)}}}})
    with p.conn() as c:
        assert c.request("GET", "/reload").status == 502
    ca.write_bytes(env.ca)   # the same configuration, a renewed file
    p.reload()
    wait_until(lambda: "reloaded" in p.stderr(), 10, what="reload")
    with p.conn() as c:
        assert c.request("GET", "/reload").status == 200
    ca.write_bytes(b"not a certificate\n")
    p.reload()
    wait_until(lambda: "reload refused" in p.stderr(), 10, what="refused reload")
    assert "upstreams.app.tls failed" in p.stderr()
    with p.conn() as c:
        assert c.request("GET", "/reload").status == 200   # still the previous context
