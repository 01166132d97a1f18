"""Client certificates (mutual TLS) end to end: curl with certificates from a test CA of its own
against the real binary; the origin sees the verified certificate in the configured headers and
never a copy a client sent; required and optional modes, a certificate from another CA, one
revoked by a CRL, HTTP/2, and the access log.
"""

from __future__ import annotations

import hashlib
import json

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from conftest import free_port, standard_tls
from httpclient import curl
from pki import TestPKI, crl_pem
from reload_support import wait_until


@pytest.fixture(scope="module")
def clients(tmp_path_factory):
    """The clients' CA, a good client, a revoked one, and a client of another CA."""
    d = tmp_path_factory.mktemp("clients")
    ca = TestPKI(d / "ca", name="clients CA")
    other = TestPKI(d / "other", name="another CA")
    files = {}
    for name, pki in (("alice", ca), ("mallory", other), ("revoked", ca)):
        leaf = pki.issue([f"{name}.clients.test"], client=True)
        (d / f"{name}.crt").write_bytes(leaf.cert_pem)
        (d / f"{name}.key").write_bytes(leaf.key_pem)
        files[name] = leaf
    (d / "clients.crl").write_bytes(crl_pem(ca, [files["revoked"].serial]))
    return type("Clients", (), {"ca": ca.ca_path, "crl": d / "clients.crl", "dir": d, "leaf": files})


def cert_args(clients, name: str | None) -> list[str]:
    return [] if name is None else ["--cert", str(clients.dir / f"{name}.crt"), "--key", str(clients.dir / f"{name}.key")]


def fingerprint(leaf) -> str:
    return hashlib.sha256(x509.load_pem_x509_certificate(leaf.cert_pem).public_bytes(serialization.Encoding.DER)).hexdigest()


def echoed(r) -> dict[str, str]:
    return {k.lower(): v for k, v in json.loads(r.body)["headers"]}


@pytest.fixture
def mtls(proxies, origins, clients, tmp_path):
    def make(mode: str, **extra):
        origin = origins("A")
        config = {"tls": standard_tls() | {"client_auth": {"ca": str(clients.ca), "crl": str(clients.crl), "mode": mode} | extra},
                  "upstreams": {"app": {"servers": [origin.addr]}}, "routes": [{"upstream": "app"}],
                  "log": {"access": str(tmp_path / "access.log")}}
        return proxies(config), tmp_path / "access.log"
    return make


def get(p, clients, who: str | None, extra: list[str] = ()):
    return curl(p.url("/echo"), resolve=p.resolve(), extra=["-k"] + cert_args(clients, who) + list(extra))


def test_required_client_certificates(mtls, clients):
    p, access = mtls("required")
    spoof = ["-H", "X-Client-Cert-Subject: CN=admin", "-H", "X-Client-Cert-SHA256: 00"]
    r = get(p, clients, "alice", spoof)
    assert r.rc == 0 and r.status == 200, r.stderr
    headers = echoed(r)
    # The verified certificate, and never the copies the client sent.
    assert headers["x-client-cert-subject"] == "CN=alice.clients.test"
    assert headers["x-client-cert-sans"] == "DNS:alice.clients.test"
    assert headers["x-client-cert-sha256"] == fingerprint(clients.leaf["alice"])
    # HTTP/2 alike.
    r2 = get(p, clients, "alice", ["--http2"] + spoof)
    assert r2.status == 200 and echoed(r2)["x-client-cert-subject"] == "CN=alice.clients.test"
    # No certificate, another CA's, a revoked one: no handshake.
    for who in (None, "mallory", "revoked"):
        r = get(p, clients, who)
        assert r.rc != 0 and r.status == 0, (who, r.rc, r.stderr)
    # Written off the loops within a flush interval: both successful requests (HTTP/1.1, HTTP/2).
    wait_until(lambda: access.exists() and access.read_text().count("\n") >= 2, 5, what="access log lines")
    lines = [json.loads(line) for line in access.read_text().splitlines()]
    assert lines and all(line["client_cert_sha256"] == fingerprint(clients.leaf["alice"]) for line in lines), lines


def test_optional_client_certificates_and_names(mtls, clients):
    p, _ = mtls("optional", headers={"subject": "X-Subject", "sans": None})
    spoof = ["-H", "X-Subject: CN=admin", "-H", "X-Client-Cert-SHA256: 00"]
    # A verified certificate is forwarded under the configured names (SANs turned off).
    headers = echoed(get(p, clients, "alice", spoof))
    assert headers["x-subject"] == "CN=alice.clients.test" and "x-client-cert-sans" not in headers
    assert headers["x-client-cert-sha256"] == fingerprint(clients.leaf["alice"])
    # Without one, or with one that does not verify, the request goes on unauthenticated.
    for who in (None, "mallory", "revoked"):
        r = get(p, clients, who, spoof)
        assert r.status == 200, (who, r.stderr)
        headers = echoed(r)
        assert "x-subject" not in headers and "x-client-cert-sha256" not in headers, (who, headers)


def test_client_certificates_only_for_the_names_listed(mtls, clients):
    p, _ = mtls("required", names=["secure.wild.test"])
    # a.test is not listed: no certificate asked for.
    assert get(p, clients, None).status == 200
    r = curl(p.url("/echo", host="secure.wild.test"), resolve=p.resolve("secure.wild.test"), extra=["-k"])
    assert r.rc != 0
    r = curl(p.url("/echo", host="secure.wild.test"), resolve=p.resolve("secure.wild.test"), extra=["-k"] + cert_args(clients, "alice"))
    assert r.status == 200 and echoed(r)["x-client-cert-subject"] == "CN=alice.clients.test"
    # The covered name asked for over a handshake that was not (no SNI, or another name's SNI,
    # HTTP/1 or HTTP/2): 421, never the protected upstream.
    for url, extra in ((f"https://127.0.0.1:{p.https_port}/echo", []), (p.url("/echo"), ["--resolve", f"a.test:{p.https_port}:127.0.0.1"]),
                       (p.url("/echo"), ["--http2", "--resolve", f"a.test:{p.https_port}:127.0.0.1"])):
        r = curl(url, extra=["-k", "-H", "Host: secure.wild.test"] + extra)
        assert r.status == 421 and b"client certificate" in r.body, (url, extra, r.status, r.body)


def test_client_auth_configuration_errors(tmp_path, edgeproxy_bin):
    from conftest import run_check
    config = tmp_path / "c.yaml"
    config.write_text(f"tls:\n  client_auth:\n    mode: required\n")
    r = run_check(edgeproxy_bin, config)
    assert r.returncode != 0 and "c.yaml:3:5" in r.stderr and "needs `ca`" in r.stderr, r.stderr
    config.write_text(f"listen: {{ https: [\"127.0.0.1:{free_port()}\"] }}\ntls:\n  client_auth: {{ ca: /nonexistent.pem }}\n")
    r = run_check(edgeproxy_bin, config)
    assert r.returncode != 0 and "cannot read" in r.stderr, r.stderr
