"""ACME (issue #4) end to end: the real binary obtains and renews certificates from a real Pebble,
answering HTTP-01 on its port-80 listener and TLS-ALPN-01 inside its own TLS handshake.

Pebble's validation authority is pointed at the proxy's ports; pebble-challtestsrv resolves every
test name to 127.0.0.1. Pebble rejects 30 % of nonces (PEBBLE_WFE_NONCEREJECT=30), so every test
also exercises the badNonce retry.
"""

from __future__ import annotations

import http.server
import re
import socket
import ssl
import subprocess
import threading
import time
from datetime import datetime, timezone

import pytest

from conftest import free_port
from httpclient import client_context, handshake_cert, tls_connect
from pebble import EAB_KEYS, Pebble, available
from reload_support import Admin, metric, record_result, wait_until
from tools import need_tool

@pytest.fixture(autouse=True)
def require_pebble():
    """A missing CA fails the test (saying what to install); it never skips it."""
    if not available():
        pytest.fail("pebble / pebble-challtestsrv are missing: apt-get install pebble (make test installs it)", pytrace=False)

ISSUE_TIMEOUT = 60


@pytest.fixture
def ports():
    return {"https": free_port(), "http": free_port(), "admin": free_port()}


@pytest.fixture
def pebble_factory(tmp_path):
    made = []

    def make(http_port: int, tls_port: int, **kw) -> Pebble:
        p = Pebble(tmp_path / f"pebble{len(made)}", http_port, tls_port, **kw)
        made.append(p)
        return p
    yield make
    for p in made:
        p.stop()


def acme_config(ports, acme: dict, http: bool = True) -> dict:
    return {"listen": {"https": [f"127.0.0.1:{ports['https']}"], "http": [f"127.0.0.1:{ports['http']}"] if http else []},
            "admin": {"listen": f"127.0.0.1:{ports['admin']}"},
            "routes": [{"respond": {"status": 200, "body": "hello\n", "content_type": "text/plain"}}],
            "log": {"access": "off"}}  | {"acme": acme}


def acme_status(admin: Admin) -> dict:
    status, body = admin.json("GET", "/acme")
    assert status == 200, body
    return body


def wait_issued(admin: Admin, count: int = 1, timeout: float = ISSUE_TIMEOUT) -> dict:
    def done():
        s = acme_status(admin)
        return s if all(c["issued"] >= count for c in s["certificates"]) else None
    return wait_until(done, timeout, interval=0.1, what=f"every ACME certificate issued {count} time(s)")


def verified_cert(port: int, name: str, root_file) -> dict:
    """Handshake verifying the chain against Pebble's root and the host name."""
    return handshake_cert(port, name, ctx=client_context(cafile=root_file))


def write_root(pebble: Pebble, tmp_path):
    path = tmp_path / "pebble-root.pem"
    path.write_bytes(pebble.root_pem())
    return path


def test_http01_issues_several_certificates_and_serves_them(proxies, pebble_factory, ports, tmp_path):
    pebble = pebble_factory(ports["http"], ports["https"])
    names = [["web.acme.test", "www.acme.test"], "api.acme.test"]
    started = time.monotonic()
    p = proxies(acme_config(ports, pebble.acme_section(names, challenges=["http-01"])), standard_certs=False)
    admin = Admin(ports["admin"])
    status = wait_issued(admin)
    first_cert = time.monotonic() - started
    root = write_root(pebble, tmp_path)
    for name, primary in [("web.acme.test", "web.acme.test"), ("www.acme.test", "web.acme.test"), ("api.acme.test", "api.acme.test")]:
        cert = verified_cert(p.https_port, name, root)
        entry = next(c for c in status["certificates"] if c["name"] == primary)
        assert cert["serial"] == int(entry["serial"], 16), (name, cert, entry)
        assert name in cert["names"]
    assert status["pending_challenges"] == {"http-01": 0, "tls-alpn-01": 0}
    # The certificates are in the store like any other: listed, with expiry metrics.
    _, listed = admin.json("GET", "/certificates")
    acme_items = [c for c in listed if c["source"] == "acme"]
    assert sorted(c["name"] for c in acme_items) == ["api.acme.test", "web.acme.test"]
    text = admin.metrics()
    assert metric(text, "edgeproxy_acme_certificates_issued_total", name="web.acme.test") == 1
    assert metric(text, "edgeproxy_acme_consecutive_failures", name="api.acme.test") == 0
    assert metric(text, "edgeproxy_acme_challenges_pending", type="http-01") == 0
    assert metric(text, "edgeproxy_certificate_expiry_seconds", name="web.acme.test", serial=status["certificates"][0]["serial"]) > 0
    nxt = datetime.fromisoformat(status["certificates"][0]["next_attempt"].replace("Z", "+00:00"))
    assert nxt > datetime.now(timezone.utc)
    requests = [int(m) for m in re.findall(r"after (\d+) CA requests", p.stderr())]
    assert len(requests) == 2, p.stderr()
    record_result("acme_http01", {"seconds_to_all_certificates": round(first_cert, 2), "ca_requests_per_issuance": requests})


def test_tls_alpn01_is_answered_inside_the_handshake(proxies, pebble_factory, ports, tmp_path):
    pebble = pebble_factory(free_port(), ports["https"])   # nothing answers HTTP-01
    p = proxies(acme_config(ports, pebble.acme_section(["alpn.acme.test"], challenges=["tls-alpn-01"]), http=False),
                standard_certs=False)
    admin = Admin(ports["admin"])
    started = time.monotonic()
    status = wait_issued(admin)
    root = write_root(pebble, tmp_path)
    cert = verified_cert(p.https_port, "alpn.acme.test", root)
    assert cert["serial"] == int(status["certificates"][0]["serial"], 16)
    assert metric(admin.metrics(), "edgeproxy_acme_challenge_handshakes_total") >= 1
    assert status["pending_challenges"]["tls-alpn-01"] == 0
    # With no challenge pending, a client offering only acme-tls/1 gets the real certificate and
    # no application protocol: the challenge certificate is never served outside a validation.
    with tls_connect(p.https_port, "alpn.acme.test", ctx=client_context(alpn=("acme-tls/1",))) as s:
        assert s.selected_alpn_protocol() is None
        from httpclient import peer_cert
        assert peer_cert(s)["serial"] == cert["serial"]
    record_result("acme_tls_alpn01", {"seconds_to_certificate": round(time.monotonic() - started, 2)})


def test_external_account_binding(proxies, pebble_factory, ports, tmp_path):
    pebble = pebble_factory(ports["http"], ports["https"], eab_required=True)
    # Without EAB the CA refuses the account; the problem is visible and the attempt backs off.
    p = proxies(acme_config(ports, pebble.acme_section(["eab.acme.test"], challenges=["http-01"])),
                standard_certs=False, name="no-eab")
    admin = Admin(ports["admin"])
    failed = wait_until(lambda: (s := acme_status(admin))["certificates"][0]["failures"] >= 1 and s, 30,
                        what="a failed attempt without EAB")
    entry = failed["certificates"][0]
    assert entry["last_problem"]["type"] == "urn:ietf:params:acme:error:externalAccountRequired", entry
    assert datetime.fromisoformat(entry["next_attempt"].replace("Z", "+00:00")) > datetime.now(timezone.utc)
    p.stop()

    kid, key = next(iter(EAB_KEYS.items()))
    p = proxies(acme_config(ports, pebble.acme_section(["eab.acme.test"], challenges=["http-01"],
                                                       eab={"key_id": kid, "hmac_key": key})),
                standard_certs=False, name="eab")
    status = wait_issued(admin)
    root = write_root(pebble, tmp_path)
    assert verified_cert(p.https_port, "eab.acme.test", root)["serial"] == int(status["certificates"][0]["serial"], 16)


def test_renewal_window_longer_than_lifetime_renews_without_restart(proxies, pebble_factory, ports, tmp_path):
    pebble = pebble_factory(ports["http"], ports["https"])
    acme = pebble.acme_section(["renew.acme.test"], challenges=["http-01"],
                               renewal={"renew_before": "100000h", "check_interval": "2s"})
    p = proxies(acme_config(ports, acme), standard_certs=False)
    admin = Admin(ports["admin"])
    first = wait_issued(admin, 1)["certificates"][0]["serial"]
    root = write_root(pebble, tmp_path)
    assert verified_cert(p.https_port, "renew.acme.test", root)["serial"] == int(first, 16)
    second = wait_issued(admin, 2)["certificates"][0]["serial"]
    assert second != first
    # The same process serves the renewed certificate to the next handshake.
    wait_until(lambda: verified_cert(p.https_port, "renew.acme.test", root)["serial"] != int(first, 16), 10,
               what="a handshake seeing a renewed certificate")
    assert "renewing every check_interval" in p.stderr()
    assert p.alive()


class WrongAnswers(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = b"not-the-key-authorization"
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


def test_failed_validation_reports_the_problem_and_backs_off(proxies, pebble_factory, ports):
    wrong = http.server.ThreadingHTTPServer(("127.0.0.1", 0), WrongAnswers)
    threading.Thread(target=wrong.serve_forever, daemon=True).start()
    try:
        pebble = pebble_factory(wrong.server_address[1], ports["https"])
        acme = pebble.acme_section(["wrong.acme.test"], challenges=["http-01"],
                                   renewal={"backoff_base": "2s", "backoff_cap": "4s"})
        p = proxies(acme_config(ports, acme), standard_certs=False)
        admin = Admin(ports["admin"])
        status = wait_until(lambda: (s := acme_status(admin))["certificates"][0]["failures"] >= 2 and s, 40,
                            what="two failed attempts")
        entry = status["certificates"][0]
        problem = entry["last_problem"]
        assert problem["type"] in ("urn:ietf:params:acme:error:unauthorized",
                                   "urn:ietf:params:acme:error:incorrectResponse"), entry
        assert problem["detail"], entry
        assert "wrong.acme.test" in entry["last_error"], entry
        assert entry["issued"] == 0 and entry["serial"] is None
        assert datetime.fromisoformat(entry["next_attempt"].replace("Z", "+00:00")) > datetime.now(timezone.utc)
        # Every answer was taken down when its authorization ended.
        assert status["pending_challenges"] == {"http-01": 0, "tls-alpn-01": 0}
        text = admin.metrics()
        assert metric(text, "edgeproxy_acme_consecutive_failures", name="wrong.acme.test") >= 2
        # Serving goes on: the fallback certificate answers and requests work.
        with tls_connect(p.https_port, "wrong.acme.test") as s:
            s.sendall(b"GET / HTTP/1.1\r\nHost: wrong.acme.test\r\nConnection: close\r\n\r\n")
            assert s.recv(100).startswith(b"HTTP/1.1 200")
        # Backoff, not a tight loop: consecutive failures are at least half the base (1 s) apart.
        stamps = [datetime.fromisoformat(m.replace("Z", "+00:00"))
                  for m in re.findall(r"^(\S+) \[error\] ACME: wrong\.acme\.test: .*attempt \d+ failed", p.stderr(), re.M)]
        assert len(stamps) >= 2, p.stderr()
        gaps = [(b - a).total_seconds() for a, b in zip(stamps, stamps[1:])]
        assert min(gaps) >= 0.95, gaps
    finally:
        wrong.shutdown()


def test_account_and_certificate_survive_a_restart(proxies, pebble_factory, ports, tmp_path):
    pebble = pebble_factory(ports["http"], ports["https"])
    acme = pebble.acme_section(["keep.acme.test"], challenges=["http-01"], storage=str(tmp_path / "acme-state"))
    p = proxies(acme_config(ports, acme), standard_certs=False, name="first")
    admin = Admin(ports["admin"])
    serial = wait_issued(admin)["certificates"][0]["serial"]
    accounts = pebble.requests("/sign-me-up")
    assert accounts >= 1
    assert p.stop() == 0

    # Restart with one more name: the stored certificate serves at once, and the new name is
    # issued under the same account (no second newAccount).
    acme["certificates"] = ["keep.acme.test", "more.acme.test"]
    p = proxies(acme_config(ports, acme), standard_certs=False, name="second")
    root = write_root(pebble, tmp_path)
    assert verified_cert(p.https_port, "keep.acme.test", root)["serial"] == int(serial, 16)
    status = wait_until(lambda: (s := acme_status(admin)) and all(c["serial"] for c in s["certificates"]) and s,
                        ISSUE_TIMEOUT, what="the new name issued")
    assert [c["issued"] for c in status["certificates"]] == [0, 1]
    assert pebble.requests("/sign-me-up") == accounts
    account_file = next((tmp_path / "acme-state" / "accounts").glob("*/account.key"))
    assert oct(account_file.stat().st_mode & 0o777) == "0o600"
    key_file = tmp_path / "acme-state" / "certificates" / "keep.acme.test.key"
    assert oct(key_file.stat().st_mode & 0o777) == "0o600"


class Gate:
    """Pebble's way to the proxy's port 80: held (connections accepted, nothing answered) until
    opened, then forwarded. Lets a test stop the proxy while the CA is validating."""

    def __init__(self, target_port: int):
        self.target, self.open = target_port, threading.Event()
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                client, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(client,), daemon=True).start()

    def _serve(self, client):
        self.open.wait(60)
        try:
            upstream = socket.create_connection(("127.0.0.1", self.target), timeout=10)
        except OSError:
            client.close()
            return
        for a, b in ((client, upstream), (upstream, client)):
            threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    @staticmethod
    def _pipe(a, b):
        try:
            while data := a.recv(65536):
                b.sendall(data)
        except OSError:
            pass
        finally:
            for s in (a, b):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def close(self):
        self.sock.close()


def test_killed_in_the_middle_of_an_order_starts_cleanly(proxies, pebble_factory, ports, tmp_path):
    gate = Gate(ports["http"])
    try:
        pebble = pebble_factory(gate.port, ports["https"])
        acme = pebble.acme_section(["crash.acme.test"], challenges=["http-01"], storage=str(tmp_path / "acme-state"))
        p = proxies(acme_config(ports, acme), standard_certs=False, name="killed")
        admin = Admin(ports["admin"])
        # The answer is up and the CA is validating (held at the gate): kill the proxy right there.
        wait_until(lambda: acme_status(admin)["pending_challenges"]["http-01"] == 1, 30, what="a challenge being validated")
        p.kill()                                   # SIGKILL: no clean-up of any kind
        gate.open.set()
        p = proxies(acme_config(ports, acme), standard_certs=False, name="restarted")
        status = wait_issued(admin)
        root = write_root(pebble, tmp_path)
        serial = status["certificates"][0]["serial"]
        assert verified_cert(p.https_port, "crash.acme.test", root)["serial"] == int(serial, 16)
        assert status["pending_challenges"] == {"http-01": 0, "tls-alpn-01": 0}
        assert not list((tmp_path / "acme-state").rglob("*.tmp-*")), "a half-written file was left behind"
        assert p.stop() == 0

        # A stored pair that does not match (a key from elsewhere) cannot be served: it is replaced.
        key = tmp_path / "acme-state" / "certificates" / "crash.acme.test.key"
        subprocess.run([need_tool("openssl", "openssl"), "ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", str(key)], check=True)
        p = proxies(acme_config(ports, acme), standard_certs=False, name="mismatched")
        assert "cannot be served" in p.stderr() or wait_until(lambda: "cannot be served" in p.stderr(), 10)
        status = wait_issued(admin)
        assert status["certificates"][0]["serial"] != serial
        assert verified_cert(p.https_port, "crash.acme.test", root)["serial"] == int(status["certificates"][0]["serial"], 16)
    finally:
        gate.close()


def test_a_ca_that_is_down_changes_nothing_for_serving(proxies, ports):
    dead = free_port()                         # nothing listens here
    acme = {"directory": f"https://127.0.0.1:{dead}/dir", "certificates": ["down.acme.test"],
            "renewal": {"backoff_base": "1s", "backoff_cap": "2s"}}
    p = proxies(acme_config(ports, acme), standard_certs=False)
    admin = Admin(ports["admin"])
    status = wait_until(lambda: (s := acme_status(admin))["certificates"][0]["failures"] >= 2 and s, 30,
                        what="two failed attempts against the dead CA")
    entry = status["certificates"][0]
    assert "transport" in entry["last_error"] and entry["last_problem"] is None, entry
    with tls_connect(p.https_port, "down.acme.test") as s:   # the self-signed fallback answers
        s.sendall(b"GET / HTTP/1.1\r\nHost: down.acme.test\r\nConnection: close\r\n\r\n")
        assert s.recv(100).startswith(b"HTTP/1.1 200")
    assert p.alive()


def test_bootstraps_with_an_empty_certificate_directory_and_follows_sighup(proxies, pebble_factory, ports, tmp_path):
    pebble = pebble_factory(ports["http"], ports["https"])
    (tmp_path / "empty-certs").mkdir()
    config = acme_config(ports, pebble.acme_section(["one.acme.test", "two.acme.test"], challenges=["http-01"]))
    config["tls"] = {"certificate_dir": str(tmp_path / "empty-certs")}
    p = proxies(config, standard_certs=False)          # nothing to serve yet: the fallback answers
    assert "no certificate loaded yet" in p.stderr()
    admin = Admin(ports["admin"])
    wait_issued(admin)
    _, listed = admin.json("GET", "/certificates")
    assert {c["name"] for c in listed if c["source"] == "acme"} == {"one.acme.test", "two.acme.test"}

    # SIGHUP with one name dropped: it leaves the store and the schedule; the other stays.
    config["acme"]["certificates"] = ["one.acme.test"]
    p.write_config(config)
    p.reload()
    wait_until(lambda: {c["name"] for c in admin.json("GET", "/certificates")[1] if c["source"] == "acme"} == {"one.acme.test"},
               10, what="two.acme.test removed")
    assert [c["name"] for c in acme_status(admin)["certificates"]] == ["one.acme.test"]
    assert p.alive()


def test_tls_alpn01_answer_is_only_for_acme_tls_clients(proxies, pebble_factory, ports, tmp_path):
    """While the CA's validation is held at the gate, the answer is up: a client offering
    acme-tls/1 for the name gets the challenge certificate (critical acmeIdentifier = SHA-256 of
    the key authorization) and acme-tls/1; an ordinary client for the same name does not."""
    from cryptography import x509 as cx509
    gate = Gate(ports["https"])
    try:
        pebble = pebble_factory(free_port(), gate.port)
        p = proxies(acme_config(ports, pebble.acme_section(["held.acme.test"], challenges=["tls-alpn-01"]), http=False),
                    standard_certs=False)
        admin = Admin(ports["admin"])
        wait_until(lambda: acme_status(admin)["pending_challenges"]["tls-alpn-01"] == 1, 30, what="a challenge being validated")

        with tls_connect(p.https_port, "held.acme.test", ctx=client_context(alpn=("acme-tls/1",))) as s:
            assert s.selected_alpn_protocol() == "acme-tls/1"
            cert = cx509.load_der_x509_certificate(s.getpeercert(binary_form=True))
        ext = cert.extensions.get_extension_for_oid(cx509.ObjectIdentifier("1.3.6.1.5.5.7.1.31"))
        assert ext.critical
        assert ext.value.value[:2] == b"\x04\x20" and len(ext.value.value) == 34
        assert cert.extensions.get_extension_for_class(cx509.SubjectAlternativeName).value.get_values_for_type(cx509.DNSName) \
            == ["held.acme.test"]

        for alpn in (("h2", "http/1.1"), ("http/1.1",), ()):
            with tls_connect(p.https_port, "held.acme.test", ctx=client_context(alpn=alpn)) as s:
                seen = cx509.load_der_x509_certificate(s.getpeercert(binary_form=True))
                assert seen.serial_number != cert.serial_number, alpn
                assert s.selected_alpn_protocol() != "acme-tls/1"
        # Another name offering acme-tls/1 has nothing pending: no challenge certificate for it.
        with tls_connect(p.https_port, "other.acme.test", ctx=client_context(alpn=("acme-tls/1",))) as s:
            assert s.selected_alpn_protocol() is None

        gate.open.set()
        status = wait_issued(admin)
        assert status["pending_challenges"]["tls-alpn-01"] == 0
    finally:
        gate.close()
