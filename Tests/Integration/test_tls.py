"""TLS front: certificate selection by SNI, wildcard and default names, strict SNI, RSA vs ECDSA,
protocol versions, ALPN, session tickets, self-signed fallback."""

from __future__ import annotations

import re
import socket
import ssl
import threading
from pathlib import Path

import pytest

from conftest import standard_tls
from httpclient import (client_context, curl, handshake_cert, https_get, openssl_s_client, peer_cert,
                        tls_connect)
from pki import describe_pem

RESPOND_HELLO = {"respond": {"status": 200, "body": "hello\n", "content_type": "text/plain"}}


def tls_config(**tls_overrides) -> dict:
    return {"workers": 2, "tls": standard_tls(**tls_overrides), "routes": [RESPOND_HELLO]}


@pytest.fixture(scope="module")
def tls_proxy(module_proxies):
    """Standard certificates, default.test as default, tickets on (2), TLS 1.2 minimum."""
    return module_proxies(tls_config(session_tickets=2, min_version="1.2"), name="tls")


def served_cert_from_s_client(output: str) -> dict:
    m = re.search(r"-----BEGIN CERTIFICATE-----.*?-----END CERTIFICATE-----", output, re.S)
    assert m, f"s_client printed no certificate:\n{output[-2000:]}"
    return describe_pem(m.group(0).encode())


# ----- certificate selection -------------------------------------------------------------------

@pytest.mark.parametrize("name,leaf", [("a.test", "a_ec"), ("b.test", "b"), ("c.test", "c")],
                         ids=["crt+key-in-dir", "combined-pem-in-dir", "tls.certificates-list"])
def test_exact_sni_gets_its_certificate(tls_proxy, pki, name, leaf):
    """An exact SNI match gets that name's certificate, and a verifying client accepts the chain."""
    ctx = client_context(cafile=pki.ca_path)           # verifies chain + host name
    with tls_connect(tls_proxy.https_port, name, ctx=ctx) as s:
        got = peer_cert(s)
    assert got["serial"] == pki.leaves[leaf].serial
    assert got["names"] == [name]


def test_curl_verifies_and_gets_response(tls_proxy, pki):
    """A stock client (curl, verifying against the test CA) completes a request over the TLS front."""
    r = curl(tls_proxy.url("/", "a.test"), resolve=tls_proxy.resolve("a.test"), cafile=pki.ca_path)
    assert r.rc == 0, r.stderr
    assert r.status == 200
    assert r.body == b"hello\n"


def test_wildcard_matches_one_label(tls_proxy, pki):
    """`*.wild.test` answers for x.wild.test (one label) and the chain verifies for that name."""
    ctx = client_context(cafile=pki.ca_path)
    with tls_connect(tls_proxy.https_port, "x.wild.test", ctx=ctx) as s:
        got = peer_cert(s)
    assert got["serial"] == pki.leaves["wild"].serial


@pytest.mark.parametrize("name", ["wild.test", "a.b.wild.test"])
def test_wildcard_does_not_match_apex_or_two_labels(tls_proxy, pki, name):
    """`*.wild.test` must not answer for the bare wild.test nor for a.b.wild.test: those get the default."""
    got = handshake_cert(tls_proxy.https_port, name)
    assert got["serial"] == pki.leaves["default"].serial, got


@pytest.mark.parametrize("sni", ["unknown.test", None], ids=["unknown-name", "no-sni"])
def test_unknown_or_missing_sni_gets_default_certificate(tls_proxy, pki, sni):
    """Clients with an unknown name or without SNI get the `tls.default` certificate (default.test)."""
    got = handshake_cert(tls_proxy.https_port, sni)
    assert got["serial"] == pki.leaves["default"].serial, got


def test_no_sni_with_openssl_s_client(tls_proxy, pki):
    """openssl s_client -noservername gets the default certificate too."""
    out = openssl_s_client(tls_proxy.https_port, ["-noservername", "-showcerts"], stdin=b"")
    assert served_cert_from_s_client(out)["serial"] == pki.leaves["default"].serial


@pytest.mark.parametrize("sent", ["B.Test", "b.test.", "B.TEST."])
def test_sni_ignores_case_and_a_trailing_dot(tls_proxy, pki, sent):
    """SNI compares case-insensitively, and an absolute name (trailing dot) is the same name."""
    out = openssl_s_client(tls_proxy.https_port, ["-servername", sent, "-showcerts"])
    assert served_cert_from_s_client(out)["serial"] == pki.leaves["b"].serial


def test_strict_sni_rejects_unknown_names(proxies, pki):
    """With strict_sni: true an unknown SNI fails the handshake (alert), known names still work."""
    p = proxies(tls_config(strict_sni=True))
    with pytest.raises(ssl.SSLError):
        handshake_cert(p.https_port, "unknown.test")
    # an alert (unrecognized_name is the natural one) rather than a silent close
    assert handshake_cert(p.https_port, "a.test")["serial"] == pki.leaves["a_ec"].serial
    assert handshake_cert(p.https_port, "x.wild.test")["serial"] == pki.leaves["wild"].serial


def test_non_strict_is_default(tls_proxy, pki):
    """Without strict_sni, unknown names still complete the handshake and are served."""
    r = https_get(tls_proxy.https_port, "/", sni="nobody.test")
    assert r.status == 200 and r.body == b"hello\n"


# ----- RSA vs ECDSA ----------------------------------------------------------------------------

@pytest.mark.parametrize("args", [
    ["-tls1_2", "-sigalgs", "RSA+SHA256"],
    ["-tls1_3", "-sigalgs", "rsa_pss_rsae_sha256:rsa_pss_rsae_sha384:rsa_pkcs1_sha256"],
], ids=["tls1.2-RSA+SHA256", "tls1.3-rsa_pss"])
def test_rsa_only_client_gets_rsa_certificate(tls_proxy, pki, args):
    """A client that offers only RSA signature algorithms gets a.test's RSA certificate."""
    out = openssl_s_client(tls_proxy.https_port, ["-servername", "a.test", "-showcerts"] + args)
    got = served_cert_from_s_client(out)
    assert got["key_type"] == "rsa", out[-2000:]
    assert got["serial"] == pki.leaves["a_rsa"].serial


@pytest.mark.parametrize("args", [[], ["-tls1_2"], ["-tls1_3"]], ids=["default", "tls1.2", "tls1.3"])
def test_default_client_gets_ecdsa_certificate(tls_proxy, pki, args):
    """Clients offering ECDSA signature algorithms (every default client) get a.test's ECDSA certificate."""
    out = openssl_s_client(tls_proxy.https_port, ["-servername", "a.test", "-showcerts"] + args)
    got = served_cert_from_s_client(out)
    assert got["key_type"] == "ec", out[-2000:]
    assert got["serial"] == pki.leaves["a_ec"].serial


def test_python_default_client_gets_ecdsa(tls_proxy, pki):
    """Python's default client context also gets ECDSA for a.test (and verifies it)."""
    with tls_connect(tls_proxy.https_port, "a.test", ctx=client_context(cafile=pki.ca_path)) as s:
        assert peer_cert(s)["key_type"] == "ec"


# ----- versions, ALPN --------------------------------------------------------------------------

@pytest.mark.parametrize("version,name", [(ssl.TLSVersion.TLSv1_2, "TLSv1.2"), (ssl.TLSVersion.TLSv1_3, "TLSv1.3")],
                         ids=["1.2", "1.3"])
def test_tls12_and_tls13_accepted(tls_proxy, version, name):
    """TLS 1.2 and TLS 1.3 handshakes both succeed and carry a request."""
    ctx = client_context(min_version=version, max_version=version)
    with tls_connect(tls_proxy.https_port, "a.test", ctx=ctx) as s:
        assert s.version() == name
    r = https_get(tls_proxy.https_port, "/", ctx=ctx)
    assert r.status == 200 and r.body == b"hello\n"


@pytest.mark.parametrize("offer,chosen", [
    (None, "TLS_AES_128_GCM_SHA256"),
    ("TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256", "TLS_CHACHA20_POLY1305_SHA256"),
    ("TLS_CHACHA20_POLY1305_SHA256:TLS_AES_128_GCM_SHA256", "TLS_CHACHA20_POLY1305_SHA256"),
], ids=["openssl-default", "aes256+chacha20", "chacha20-first"])
def test_tls13_cipher_follows_proxy_preference(tls_proxy, offer, chosen):
    """TLS 1.3: the proxy's order (AES-128-GCM, ChaCha20, AES-256-GCM) wins over the client's, whose
    default list starts with AES-256-GCM; a client listing ChaCha20 first (no AES instructions) gets it."""
    args = ["-servername", "a.test", "-tls1_3"] + (["-ciphersuites", offer] if offer else [])
    out = openssl_s_client(tls_proxy.https_port, args)
    assert f"Cipher is {chosen}" in out, out[-2000:]


def _old_version_ctx(version):
    return client_context(min_version=version, max_version=version, ciphers="DEFAULT:@SECLEVEL=0", alpn=None)


def _control_server_accepts(version, pki, tmp_path) -> bool:
    """Proves this client really can speak `version` (so a failure against the proxy means the proxy refused)."""
    leaf = pki.leaves["a_rsa"]
    crt, key = leaf.write(tmp_path / "control", "ctl")
    srv = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    srv.load_cert_chain(crt, key)
    srv.set_ciphers("DEFAULT:@SECLEVEL=0")
    srv.minimum_version = version
    srv.maximum_version = version
    ls = socket.socket()
    ls.bind(("127.0.0.1", 0))
    ls.listen(1)
    ok = {}

    def serve():
        c, _ = ls.accept()
        try:
            with srv.wrap_socket(c, server_side=True):
                ok["server"] = True
        except (ssl.SSLError, OSError):
            pass
    t = threading.Thread(target=serve, daemon=True)
    t.start()
    try:
        with tls_connect(ls.getsockname()[1], "a.test", ctx=_old_version_ctx(version), timeout=5):
            pass
        return True
    except (ssl.SSLError, OSError):
        return False
    finally:
        t.join(5)
        ls.close()


@pytest.mark.parametrize("version", [ssl.TLSVersion.TLSv1, ssl.TLSVersion.TLSv1_1], ids=["1.0", "1.1"])
def test_tls10_and_tls11_refused(tls_proxy, pki, tmp_path, version):
    """TLS 1.0/1.1 are never negotiated, even by a client that offers them and nothing else."""
    assert _control_server_accepts(version, pki, tmp_path), "test client cannot speak this version locally"
    with pytest.raises((ssl.SSLError, ConnectionResetError)):
        with tls_connect(tls_proxy.https_port, "a.test", ctx=_old_version_ctx(version)) as s:
            s.sendall(b"GET / HTTP/1.1\r\nHost: a.test\r\n\r\n")
            s.recv(1)


def test_min_version_13_refuses_tls12(proxies):
    """min_version "1.3": a TLS-1.2-only client fails the handshake; TLS 1.3 works."""
    p = proxies(tls_config(min_version="1.3"))
    v12 = client_context(min_version=ssl.TLSVersion.TLSv1_2, max_version=ssl.TLSVersion.TLSv1_2)
    with pytest.raises((ssl.SSLError, ConnectionResetError)):
        handshake_cert(p.https_port, "a.test", ctx=v12)
    v13 = client_context(min_version=ssl.TLSVersion.TLSv1_3)
    with tls_connect(p.https_port, "a.test", ctx=v13) as s:
        assert s.version() == "TLSv1.3"


@pytest.mark.parametrize("offer,chosen", [(["h2", "http/1.1"], "h2"), (["http/1.1", "h2"], "h2"),
                                          (["http/1.1"], "http/1.1")], ids=["h2+http1.1", "http1.1+h2", "http1.1"])
def test_alpn_prefers_h2_then_http11(tls_proxy, offer, chosen):
    """ALPN: the proxy selects h2 whenever the client offers it (its own preference), else http/1.1."""
    with tls_connect(tls_proxy.https_port, "a.test", ctx=client_context(alpn=offer)) as s:
        assert s.selected_alpn_protocol() == chosen


# ----- session tickets -------------------------------------------------------------------------

REQ_CLOSE = b"GET / HTTP/1.1\r\nHost: a.test\r\nConnection: close\r\n\r\n"


def _s_client_session(port, version_flag, sess_path: Path, resume: bool) -> str:
    args = ["-servername", "a.test", version_flag, "-ign_eof"]
    args += ["-sess_in", str(sess_path)] if resume else ["-sess_out", str(sess_path)]
    return openssl_s_client(port, args, stdin=REQ_CLOSE)


@pytest.mark.parametrize("vflag", ["-tls1_2", "-tls1_3"])
def test_session_ticket_resumption(tls_proxy, tmp_path, vflag):
    """With tickets on, a client that saved its session (-sess_out) resumes it on reconnect ("Reused")."""
    sess = tmp_path / "sess.pem"
    first = _s_client_session(tls_proxy.https_port, vflag, sess, resume=False)
    assert "TLS session ticket:" in first, first[-3000:]
    assert sess.exists(), first[-3000:]
    second = _s_client_session(tls_proxy.https_port, vflag, sess, resume=True)
    assert "Reused," in second, second[-3000:]
    assert "hello" in second, second[-3000:]      # and the resumed connection serves the request


def test_tls13_ticket_count_follows_config(tls_proxy, tmp_path):
    """session_tickets: 2 → a TLS 1.3 handshake receives exactly two NewSessionTicket messages."""
    out = _s_client_session(tls_proxy.https_port, "-tls1_3", tmp_path / "s.pem", resume=False)
    assert out.count("Post-Handshake New Session Ticket arrived") == 2, out[-3000:]


@pytest.mark.parametrize("vflag", ["-tls1_2", "-tls1_3"])
def test_session_tickets_off(proxies, tmp_path, vflag):
    """session_tickets: 0 → no ticket is issued and a reconnect with the saved session is a full handshake."""
    p = proxies(tls_config(session_tickets=0))
    sess = tmp_path / "sess.pem"
    first = _s_client_session(p.https_port, vflag, sess, resume=False)
    assert "hello" in first, first[-3000:]           # the connection itself worked
    assert "TLS session ticket:" not in first, first[-3000:]
    assert "New Session Ticket arrived" not in first, first[-3000:]
    if sess.exists():
        second = _s_client_session(p.https_port, vflag, sess, resume=True)
        assert "Reused," not in second, second[-3000:]
        assert "New," in second


def test_python_resumption_tls13(tls_proxy):
    """Python's client resumes a TLS 1.3 session from a ticket (session_reused)."""
    ctx = client_context(min_version=ssl.TLSVersion.TLSv1_3)
    with tls_connect(tls_proxy.https_port, "a.test", ctx=ctx) as s:
        s.sendall(b"GET / HTTP/1.1\r\nHost: a.test\r\n\r\n")
        assert s.recv(4096).startswith(b"HTTP/1.1 200")   # tickets arrive before the response
        session = s.session
    with tls_connect(tls_proxy.https_port, "a.test", ctx=ctx, session=session) as s2:
        assert s2.session_reused


# ----- self-signed fallback --------------------------------------------------------------------

def test_self_signed_when_no_certificate_configured(proxies):
    """With no certificate configured, `self_signed: [localhost]` serves a self-signed cert for localhost."""
    p = proxies({"workers": 1, "tls": {"self_signed": ["localhost"]}, "routes": [RESPOND_HELLO]},
                standard_certs=False)
    with tls_connect(p.https_port, "localhost") as s:
        der = s.getpeercert(binary_form=True)
    from cryptography import x509
    cert = x509.load_der_x509_certificate(der)
    assert cert.issuer == cert.subject, "expected a self-signed certificate"
    sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert "localhost" in sans.get_values_for_type(x509.DNSName)
    r = https_get(p.https_port, "/", sni="localhost")
    assert r.status == 200 and r.body == b"hello\n"


def test_self_signed_not_used_when_certificates_exist(proxies, pki):
    """`self_signed` is ignored when real certificates are configured: a.test still gets its own cert."""
    p = proxies(tls_config(self_signed=["localhost"]))
    assert handshake_cert(p.https_port, "a.test")["serial"] == pki.leaves["a_ec"].serial
    assert handshake_cert(p.https_port, "localhost")["serial"] == pki.leaves["default"].serial
