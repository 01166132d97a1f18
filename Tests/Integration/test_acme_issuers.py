"""Several CAs end to end: an ordered `acme.issuers` list of real Pebble instances. A name whose
issuance keeps failing at the first CA moves to the next after `fallback_after` attempts, and each
CA has an account of its own.
"""

from __future__ import annotations

import http.server
import ssl
import threading

import pytest

from conftest import free_port
from reload_support import Admin
from test_acme import WrongAnswers, acme_config, pebble_factory, ports, require_pebble, wait_issued, verified_cert  # noqa: F401

ISSUE_TIMEOUT = 40


def issuer(pebble) -> dict:
    return {"directory": pebble.directory_url, "ca_root": str(pebble.api_cert), "challenges": ["http-01"]}


def config(ports, issuers: list[dict], **extra) -> dict:
    acme = {"issuers": issuers, "email": "ops@example.test", "certificates": ["multi.acme.test"], "fallback_after": 1,
            "renewal": {"backoff_base": "1s", "backoff_cap": "2s"}} | extra
    return acme_config(ports, acme)


def root_file(pebble, tmp_path, name: str):
    path = tmp_path / f"{name}-root.pem"
    path.write_bytes(pebble.root_pem())
    return path


def test_with_the_first_ca_down_the_second_issues(proxies, pebble_factory, ports, tmp_path):
    down = pebble_factory(free_port(), free_port(), nonce_reject=0)
    down_directory = issuer(down)
    down.stop()                                       # nothing answers at the first CA's address
    second = pebble_factory(ports["http"], ports["https"], nonce_reject=0)
    p = proxies(config(ports, [down_directory, issuer(second)]), standard_certs=False)
    admin = Admin(ports["admin"])
    entry = wait_issued(admin, timeout=ISSUE_TIMEOUT)["certificates"][0]
    assert entry["issued_by"] == second.directory_url
    assert entry["failures"] == 0 and entry["issuer"] == down.directory_url   # the next renewal starts at the first again
    cert = verified_cert(p.https_port, "multi.acme.test", root_file(second, tmp_path, "second"))
    assert cert["serial"] == int(entry["serial"], 16)
    assert "at the next CA, " + second.directory_url in p.stderr()


def test_a_failing_first_ca_hands_over_and_each_ca_keeps_its_own_account(proxies, pebble_factory, ports, tmp_path):
    wrong = http.server.ThreadingHTTPServer(("127.0.0.1", 0), WrongAnswers)
    threading.Thread(target=wrong.serve_forever, daemon=True).start()
    try:
        # The first CA validates against a server giving wrong answers: every order there fails.
        first = pebble_factory(wrong.server_address[1], free_port(), nonce_reject=0)
        second = pebble_factory(ports["http"], ports["https"], nonce_reject=0)
        p = proxies(config(ports, [issuer(first), issuer(second)]), standard_certs=False)
        admin = Admin(ports["admin"])
        entry = wait_issued(admin, timeout=ISSUE_TIMEOUT)["certificates"][0]
        assert entry["issued_by"] == second.directory_url
        cert = verified_cert(p.https_port, "multi.acme.test", root_file(second, tmp_path, "second"))
        assert cert["serial"] == int(entry["serial"], 16)
        with pytest.raises(ssl.SSLCertVerificationError):
            verified_cert(p.https_port, "multi.acme.test", root_file(first, tmp_path, "first"))
        # One account at each CA, under keys of their own.
        assert first.requests("/order-plz") >= 1 and second.requests("/order-plz") == 1
        for pebble in (first, second):
            assert "There are now 1 accounts in memory" in pebble.log() and "There are now 2 accounts" not in pebble.log()
        keys = sorted((p.dir / "acme" / "accounts").glob("*/account.key"))
        assert len(keys) == 2 and keys[0].read_bytes() != keys[1].read_bytes(), keys
    finally:
        wrong.shutdown()
        wrong.server_close()
