"""Start-up with a certificate directory (issue #3): the certificates the start-up index can read
serve at once while OpenSSL builds and checks them in the background; files it cannot vouch for
(RSA keys, corrupt PEM, a key that does not match) are loaded by OpenSSL at once. A bad file is
refused either way, with its path and the reason, and never serves."""

from __future__ import annotations

from conftest import free_port
from httpclient import handshake_cert
from pki import TestPKI
from reload_support import Admin, metric, wait_until

GOOD = [f"good{i}.test" for i in range(6)]


def startup_config(admin_port: int) -> dict:
    return {"tls": {"certificate_dir": "certs", "default": "default.test", "watch": False},
            "admin": {"listen": f"127.0.0.1:{admin_port}"},
            "routes": [{"respond": {"status": 200, "body": "ok\n", "content_type": "text/plain"}}],
            "log": {"access": "off"}}


def refusal(stderr: str, path) -> str:
    """The log line that refuses `path`."""
    lines = [line for line in stderr.splitlines() if "certificate refused" in line and f"{path}:" in line]
    assert lines, f"no refusal logged for {path}:\n{stderr[-3000:]}"
    return lines[-1]


def test_startup_serves_the_good_certificates_and_refuses_the_bad_ones(proxies, pki):
    admin_port = free_port()
    p = proxies(startup_config(admin_port), start=False, standard_certs=False)
    certs = p.dir / "certs"
    pki.leaves["default"].write(certs, "default")
    good = {name: pki.issue([name]) for name in GOOD}
    for name, leaf in good.items():
        leaf.write(certs, name)
    combined = pki.issue(["combined.test", "www.combined.test"])
    combined.write(certs, "combined.test", combined=True)
    rsa = pki.issue(["rsa.test"], key_type="rsa")  # not the index's to read: loaded by OpenSSL at once
    rsa.write(certs, "rsa.test")

    # Corrupt: the base64 of a certificate block decodes to no certificate.
    (certs / "corrupt.test.crt").write_bytes(
        b"-----BEGIN CERTIFICATE-----\nbm90IGEgY2VydGlmaWNhdGU=\n-----END CERTIFICATE-----\n")
    (certs / "corrupt.test.key").write_bytes(pki.issue(["corrupt.test"]).key_pem)
    # Truncated in the middle of the certificate.
    cut = pki.issue(["truncated.test"])
    (certs / "truncated.test.crt").write_bytes(cut.cert_pem[: len(cut.cert_pem) // 2])
    (certs / "truncated.test.key").write_bytes(cut.key_pem)
    # A certificate with the key of another one.
    (certs / "mismatch.test.crt").write_bytes(pki.issue(["mismatch.test"]).chain_pem)
    (certs / "mismatch.test.key").write_bytes(pki.issue(["mismatch.test"]).key_pem)
    # A leaf followed by a CA that did not issue it: the index reads the leaf and its key and
    # serves it; OpenSSL's chain check refuses it in the background, and then it leaves.
    stranger = TestPKI(p.dir / "other-ca")
    disorder = pki.issue(["disorder.test"])
    (certs / "disorder.test.crt").write_bytes(disorder.cert_pem + stranger.ca_pem)
    (certs / "disorder.test.key").write_bytes(disorder.key_pem)

    p.start()
    # A handshake may build it before the background pass does: it must not serve, and its
    # refusal is reported all the same.
    try:
        assert handshake_cert(p.https_port, "disorder.test")["serial"] != disorder.serial
    except OSError:  # refused in the handshake (ssl.SSLError is an OSError)
        pass
    wait_until(lambda: "certificate warm-up done" in p.stderr(), 60, interval=0.1,
               what="the background build of the start-up certificates")
    err = p.stderr()

    for name, leaf in good.items():
        assert handshake_cert(p.https_port, name)["serial"] == leaf.serial, name
    assert handshake_cert(p.https_port, "www.combined.test")["serial"] == combined.serial
    assert handshake_cert(p.https_port, "rsa.test")["serial"] == rsa.serial

    assert "no certificate found" in refusal(err, certs / "corrupt.test.crt")
    assert "corrupt or truncated" in refusal(err, certs / "truncated.test.crt")
    assert "the private key does not belong to the certificate" in refusal(err, certs / "mismatch.test.crt")
    line = refusal(err, certs / "disorder.test.crt")
    assert "chain out of order" in line and "no longer serves" in line
    assert "certificate warm-up done: 8 built and checked by OpenSSL" in err and ", 1 refused" in err, err[-3000:]

    default = pki.leaves["default"].serial
    for name in ["corrupt.test", "truncated.test", "mismatch.test", "disorder.test"]:
        assert handshake_cert(p.https_port, name)["serial"] == default, f"{name} must not serve"

    admin = Admin(admin_port)
    status, listing = admin.json("GET", "/certificates")
    assert status == 200
    listed = {c["name"]: c for c in listing}
    assert set(listed) == set(GOOD) | {"default", "combined.test", "rsa.test"}
    assert int(listed["good0.test"]["serial"], 16) == good["good0.test"].serial
    assert listed["good0.test"]["subject"] == "/CN=good0.test"
    assert metric(admin.metrics(), "edgeproxy_certificate_refusals_total", source="startup") == 4

    # The refused file, fixed, loads on the next reload (and is checked by OpenSSL first).
    fixed = pki.issue(["disorder.test"])
    fixed.write(certs, "disorder.test")
    status, report = admin.json("POST", "/reload")
    assert status == 200 and report["applied"] == 1, report
    assert handshake_cert(p.https_port, "disorder.test")["serial"] == fixed.serial
