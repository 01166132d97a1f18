"""The default configuration's TLS, scanned by testssl.sh (Debian package testssl.sh): no finding of
severity MEDIUM or above, and protocols, ciphers and the certificate chain as the README says. The
certificate is the test CA's (testssl is given the CA), so the chain can be judged; everything else is
conf/edgeproxy.yaml as shipped, but for the addresses."""

from __future__ import annotations

import json
import shutil
import subprocess

import yaml

from conftest import REPO, free_port


def test_default_configuration_passes_testssl(proxies, pki, tmp_path):
    testssl = shutil.which("testssl")
    assert testssl, "testssl is missing: apt-get install testssl.sh (make test installs it)"
    config = yaml.safe_load((REPO / "conf" / "edgeproxy.yaml").read_text())
    port = free_port()
    config["listen"] = {"https": [f"127.0.0.1:{port}"], "http": []}
    config["workers"] = 1
    leaf = pki.issue(["localhost"], days=90, ocsp_url="http://127.0.0.1:9/ocsp")
    crt, key = leaf.write(tmp_path / "cert", "localhost")
    config["tls"]["certificates"] = [{"cert": str(crt), "key": str(key)}]
    proxy = proxies(config, standard_certs=False)

    report = tmp_path / "testssl.json"
    run = subprocess.run([testssl, "--quiet", "--color", "0", "--warnings", "off", "--add-ca", str(pki.ca_path),
                          "--jsonfile", str(report), f"localhost:{port}"],
                         capture_output=True, text=True, timeout=600)
    assert report.exists(), f"testssl wrote no report (exit {run.returncode}): {run.stdout[-2000:]}{run.stderr[-2000:]}"
    findings = {f["id"]: f for f in json.loads(report.read_text())}
    serious = {i: f"{f['severity']}: {f['finding']}" for i, f in findings.items()
               if f["severity"] in ("MEDIUM", "HIGH", "CRITICAL")}
    assert not serious, f"testssl findings of severity MEDIUM or above: {serious}"

    # What the README says: TLS 1.2 and 1.3 only, forward-secret AEAD suites, a trusted chain.
    for old in ("SSLv2", "SSLv3", "TLS1", "TLS1_1"):
        assert findings[old]["finding"] == "not offered", findings[old]
    assert findings["TLS1_2"]["finding"] == "offered", findings["TLS1_2"]
    assert findings["TLS1_3"]["finding"].startswith("offered"), findings["TLS1_3"]
    assert findings["cert_chain_of_trust"]["finding"].startswith("passed"), findings["cert_chain_of_trust"]
    assert findings["PFS"]["severity"] == "OK", findings["PFS"]
    assert proxy.alive()
