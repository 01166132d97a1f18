"""OCSP stapling against a real `openssl ocsp` responder on a free loopback port: the handshake
carries a verified good staple (TLS 1.3 and 1.2), it survives the responder going away and a
restart (cache), it is refreshed before nextUpdate and dropped after it, and nothing is stapled
for a responder signing for another issuer, a revoked certificate, or a certificate whose leaf
names no responder (which is never asked about at all)."""

from __future__ import annotations

import datetime
import subprocess
import time
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization

from conftest import free_port
from httpclient import openssl_s_client
from pki import TestPKI
from reload_support import Admin, metric, wait_until
from tools import need_tool


def _key_pem(key) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


class Responder:
    """`openssl ocsp -index ... -port ...` answering for `pki`'s CA (it cannot be told to bind to
    loopback only: the port is one free on loopback). `entries`: (leaf, "V"|"R");
    `signer`: the PKI whose CA certificate and key sign the answers (default: `pki` itself)."""

    def __init__(self, workdir: Path, pki: TestPKI, entries: list, port: int | None = None,
                 signer: TestPKI | None = None, validity: list[str] = ("-ndays", "1")):
        self.dir = workdir
        self.dir.mkdir(parents=True, exist_ok=True)
        self.port = port or free_port()
        signer = signer or pki
        (self.dir / "signer.pem").write_bytes(signer.ca_pem)
        (self.dir / "signer.key").write_bytes(_key_pem(signer.ca_key))
        lines = []
        for i, (leaf, status) in enumerate(entries):
            serial = format(leaf.serial, "X")
            serial = "0" + serial if len(serial) % 2 else serial
            revoked = "240101000000Z" if status == "R" else ""
            lines.append(f"{status}\t391231235959Z\t{revoked}\t{serial}\tunknown\t/CN=leaf{i}")
        (self.dir / "index.txt").write_text("\n".join(lines) + "\n")
        self.log = open(self.dir / "responder.log", "ab")
        self.proc = subprocess.Popen(
            [need_tool("openssl", "openssl"), "ocsp", "-index", str(self.dir / "index.txt"), "-port", str(self.port),
             "-CA", str(pki.ca_path), "-rsigner", str(self.dir / "signer.pem"), "-rkey", str(self.dir / "signer.key"),
             "-ignore_err", *validity],
            stdin=subprocess.DEVNULL, stdout=self.log, stderr=self.log)
        # Not a connect probe: an empty connection leaves this responder stuck on it.
        deadline = time.monotonic() + 10
        while b"waiting for OCSP client connections" not in (self.dir / "responder.log").read_bytes():
            assert self.proc.poll() is None and time.monotonic() < deadline, (self.dir / "responder.log").read_text()
            time.sleep(0.05)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/"

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)
        self.log.close()


@pytest.fixture
def responders(tmp_path):
    started: list[Responder] = []

    def start(*args, **kw) -> Responder:
        r = Responder(tmp_path / f"responder{len(started)}", *args, **kw)
        started.append(r)
        return r
    yield start
    for r in started:
        r.stop()


def serve(proxies, leaves: dict, admin_port: int, name: str | None = None):
    """A proxy serving `leaves` (basename → Leaf, chain files with the CA after the leaf)."""
    config = {"tls": {"certificates": [{"cert": f"{n}.crt", "key": f"{n}.key"} for n in leaves]},
              "admin": {"listen": f"127.0.0.1:{admin_port}"},
              "routes": [{"respond": {"status": 200, "body": "ok\n", "content_type": "text/plain"}}],
              "log": {"access": "off"}}
    p = proxies(config, start=False, standard_certs=False, name=name)
    for basename, leaf in leaves.items():
        leaf.write(p.dir, basename)
    return p.start()


def handshake(p, name: str, *extra: str) -> str:
    """s_client asking for OCSP status; fails the test when the handshake itself fails."""
    out = openssl_s_client(p.https_port, ["-servername", name, "-status", *extra])
    assert "Cipher is" in out and "Cipher is (NONE)" not in out, out
    return out


def stapled_good(out: str) -> bool:
    return "OCSP Response Status: successful" in out and "Cert Status: good" in out


def assert_no_staple(p, name: str) -> None:
    out = handshake(p, name)
    assert "OCSP response: no response sent" in out and not stapled_good(out)


def serve_until_fetched(proxies, name: str, leaf, result: str):
    """A proxy serving `leaf`, once a responder answer counted as `result`; it staples nothing."""
    admin = Admin(free_port())
    p = serve(proxies, {name.split(".")[0]: leaf}, admin.port)
    wait_until(lambda: metric(admin.metrics(), "edgeproxy_ocsp_fetches_total", result=result) >= 1, 20, 0.2, f"a fetch ({result})")
    assert_no_staple(p, name)
    return p, admin


def ocsp_of(admin: Admin, name: str):
    status, listing = admin.json("GET", "/certificates")
    assert status == 200
    entry = next(c for c in listing if name in c["names"])
    return entry.get("ocsp")


def next_update(admin: Admin, name: str) -> datetime.datetime:
    return datetime.datetime.fromisoformat(ocsp_of(admin, name)["next_update"].replace("Z", "+00:00"))


def test_handshakes_carry_the_staple_kept_through_a_responder_outage_and_a_restart(pki, proxies, responders):
    port = free_port()
    leaf = pki.issue(["ocsp.test"], ocsp_url=f"http://127.0.0.1:{port}/ocsp")
    responder = responders(pki, [(leaf, "V")], port=port)
    admin = Admin(free_port())
    p = serve(proxies, {"ocsp": leaf}, admin.port, name="first")
    state = wait_until(lambda: (o := ocsp_of(admin, "ocsp.test")) and o["status"] == "good" and o, 20, 0.2, "a good staple")
    assert state["responder"] == f"http://127.0.0.1:{port}/ocsp" and state["error"] is None
    assert stapled_good(handshake(p, "ocsp.test"))
    assert stapled_good(handshake(p, "ocsp.test", "-tls1_2"))
    text = admin.metrics()
    assert metric(text, "edgeproxy_ocsp_fetches_total", result="good") == 1
    assert metric(text, "edgeproxy_ocsp_staples", state="good") == 1

    # The responder goes away: serving and the staple (valid for a day) are unaffected.
    responder.stop()
    for _ in range(5):
        assert stapled_good(handshake(p, "ocsp.test"))

    # A restart staples at once from the cache, without the responder.
    assert p.stop() == 0
    assert list((p.dir / "ocsp-cache").glob("*.der")), "no cached response"
    p.start()
    assert stapled_good(handshake(p, "ocsp.test"))
    assert ocsp_of(admin, "ocsp.test")["status"] == "good"
    assert metric(admin.metrics(), "edgeproxy_ocsp_fetches_total", result="good") == 0


def test_a_responder_down_at_start_leaves_serving_unaffected_and_is_retried(pki, proxies, responders):
    port = free_port()
    leaf = pki.issue(["down.test"], ocsp_url=f"http://127.0.0.1:{port}/")
    p, admin = serve_until_fetched(proxies, "down.test", leaf, "error")
    state = ocsp_of(admin, "down.test")
    assert state["status"] == "failed" and "no answer" in state["error"]
    # Retried with backoff (first retry after 30 s ± 20 %): once the responder answers, it staples.
    responders(pki, [(leaf, "V")], port=port)
    wait_until(lambda: ocsp_of(admin, "down.test")["status"] == "good", 50, 0.5, "the retry's good staple")
    assert stapled_good(handshake(p, "down.test"))


def test_refreshed_before_next_update_and_dropped_once_it_passes(pki, proxies, responders):
    port = free_port()
    leaf = pki.issue(["short.test"], ocsp_url=f"http://127.0.0.1:{port}/")
    responder = responders(pki, [(leaf, "V")], port=port, validity=["-nmin", "1"])  # nextUpdate = thisUpdate + 60 s
    admin = Admin(free_port())
    p = serve(proxies, {"short": leaf}, admin.port)
    wait_until(lambda: (o := ocsp_of(admin, "short.test")) and o["status"] == "good", 20, 0.2, "a good staple")
    first = next_update(admin, "short.test")
    # Half way through the minute (± 10 %), a new response replaces it before it expires.
    wait_until(lambda: metric(admin.metrics(), "edgeproxy_ocsp_fetches_total", result="good") >= 2, 45, 0.5, "a refresh")
    assert datetime.datetime.now(datetime.timezone.utc) < first
    second = next_update(admin, "short.test")
    assert second > first
    # The responder goes: the last good response is stapled until its nextUpdate, never after.
    responder.stop()
    assert stapled_good(handshake(p, "short.test"))
    wait = (second - datetime.datetime.now(datetime.timezone.utc)).total_seconds()
    assert 0 < wait < 60
    time.sleep(wait + 1.5)
    assert_no_staple(p, "short.test")
    assert ocsp_of(admin, "short.test")["status"] in ("expired", "failed")
    assert metric(admin.metrics(), "edgeproxy_ocsp_staples", state="good") == 0


def test_a_responder_signing_for_another_issuer_is_not_stapled(pki, proxies, responders, tmp_path):
    port = free_port()
    leaf = pki.issue(["foreign.test"], ocsp_url=f"http://127.0.0.1:{port}/")
    responders(pki, [(leaf, "V")], port=port, signer=TestPKI(tmp_path / "other-ca"))
    p, admin = serve_until_fetched(proxies, "foreign.test", leaf, "invalid")
    state = ocsp_of(admin, "foreign.test")
    assert state["status"] == "failed" and "issuer" in state["error"]
    assert "response from" in p.stderr() and "refused" in p.stderr()


def test_a_revoked_certificate_is_not_stapled(pki, proxies, responders):
    port = free_port()
    leaf = pki.issue(["revoked.test"], ocsp_url=f"http://127.0.0.1:{port}/")
    responders(pki, [(leaf, "R")], port=port)
    p, admin = serve_until_fetched(proxies, "revoked.test", leaf, "revoked")
    assert ocsp_of(admin, "revoked.test")["status"] == "revoked"
    assert metric(admin.metrics(), "edgeproxy_ocsp_staples", state="revoked") == 1
    assert "REVOKED" in p.stderr()


def test_a_certificate_without_an_ocsp_url_has_no_staple_and_no_fetch(pki, proxies):
    leaf = pki.issue(["plain.test"])
    admin = Admin(free_port())
    p = serve(proxies, {"plain": leaf}, admin.port)
    assert_no_staple(p, "plain.test")
    time.sleep(2)  # the stapler has long looked at it
    assert ocsp_of(admin, "plain.test") is None
    text = admin.metrics()
    for result in ("good", "revoked", "invalid", "error"):
        assert metric(text, "edgeproxy_ocsp_fetches_total", result=result) == 0
    assert sum(metric(text, "edgeproxy_ocsp_staples", state=s) for s in ("good", "pending", "failed", "revoked", "expired")) == 0
    assert not (p.dir / "ocsp-cache").exists()
