"""Revocation end to end (RFC 8555 §7.6): the real binary revokes the certificate it serves at a
real Pebble, through its admin API and through `edgeproxy acme revoke`, and serves a replacement
at once. Pebble's management interface says whether (and why) a serial is revoked.
"""

from __future__ import annotations

import json
import ssl
import subprocess
import urllib.request

from reload_support import Admin, wait_until
from test_acme_events import SECRET, Receiver
from test_acme import acme_config, acme_status, pebble_factory, ports, require_pebble, wait_issued, verified_cert, write_root  # noqa: F401

ISSUE_TIMEOUT = 30


def pebble_status(pebble, serial_hex: str) -> dict:
    """Pebble's record of one certificate: {"Status": "Valid"|"Revoked", "Reason": code, ...}."""
    ctx = ssl.create_default_context(cafile=str(pebble.api_cert))
    url = f"https://127.0.0.1:{pebble.mgmt_port}/cert-status-by-serial/{serial_hex.lower().lstrip('0')}"
    with urllib.request.urlopen(url, context=ctx, timeout=10) as r:
        return json.loads(r.read())


def test_revoke_with_a_reason_then_serve_a_replacement(proxies, pebble_factory, ports, tmp_path, edgeproxy_bin):
    pebble = pebble_factory(ports["http"], ports["https"])
    receiver = Receiver().start()
    acme = pebble.acme_section(["rev.acme.test"], challenges=["http-01"],
                               events={"webhooks": [{"url": receiver.url, "secret": SECRET}]})
    p = proxies(acme_config(ports, acme), standard_certs=False)
    admin = Admin(ports["admin"])
    first = wait_issued(admin)["certificates"][0]["serial"]
    root = write_root(pebble, tmp_path)
    assert verified_cert(p.https_port, "rev.acme.test", root)["serial"] == int(first, 16)
    assert pebble_status(pebble, first)["Status"] == "Valid"

    # The command asks the running proxy; keyCompromise is signed with the certificate's own key.
    r = subprocess.run([str(edgeproxy_bin), "acme", "revoke", "rev.acme.test", "--reason", "keyCompromise",
                        "--config", str(p.config_path), "--json"], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    answer = json.loads(r.stdout)
    assert answer["revoked"] == first and answer["reason"] == "keyCompromise"
    status = pebble_status(pebble, first)
    assert status["Status"] == "Revoked" and status["Reason"] == 1, status
    # Consumers hear of it: a signed `revoked` event for that serial.
    revoked = receiver.wait("revoked")[0]
    assert revoked["name"] == "rev.acme.test" and int(revoked["serial"], 16) == int(first, 16), revoked
    # A replacement is obtained at once and served by the same process.
    second = wait_issued(admin, 2, timeout=ISSUE_TIMEOUT)["certificates"][0]["serial"]
    assert second != first
    wait_until(lambda: verified_cert(p.https_port, "rev.acme.test", root)["serial"] == int(second, 16), 10,
               what="the replacement served")

    # Through the admin API, signed by the account: the reason is kept.
    code, _, body = admin.request("POST", "/acme/revoke/rev.acme.test?reason=superseded")
    assert code == 200, body
    status = pebble_status(pebble, second)
    assert status["Status"] == "Revoked" and status["Reason"] == 4, status
    wait_issued(admin, 3, timeout=ISSUE_TIMEOUT)

    # Mistakes get a clear answer and change nothing.
    code, _, body = admin.request("POST", "/acme/revoke/rev.acme.test?reason=cACompromise")
    assert code == 400 and b"keyCompromise" in body, body
    code, _, body = admin.request("POST", "/acme/revoke/other.acme.test")
    assert code == 404 and b"not managed" in body, body
    assert acme_status(admin)["certificates"][0]["issued"] == 3
    r = subprocess.run([str(edgeproxy_bin), "acme", "revoke", "other.acme.test", "--config", str(p.config_path)],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 1 and "not managed" in r.stderr, r.stderr
    receiver.assert_well_formed()
    receiver.stop()
