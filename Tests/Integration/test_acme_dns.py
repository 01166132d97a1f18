"""DNS-01 (RFC 8555 §8.4) end to end: the real binary writes the challenge TXT record into a real
BIND with signed RFC 2136 UPDATEs, a real Pebble validates it by asking that BIND, and the proxy
serves the wildcard certificate it obtained. Nothing answers HTTP-01 or TLS-ALPN-01 here.
"""

from __future__ import annotations

import re

import pytest

from conftest import free_port
from named import Named
from named import KEY_NAME, SECRET
from pebble import Pebble
from reload_support import Admin, wait_until
from test_acme import acme_config, acme_status, require_pebble, wait_issued, verified_cert, write_root  # noqa: F401 (autouse)

ISSUE_TIMEOUT = 20


@pytest.fixture
def ports():
    return {"https": free_port(), "http": free_port(), "admin": free_port()}


@pytest.fixture
def dns_ca(tmp_path, request):
    """A BIND for dns.test (with the records the test's `zone_records` mark gives) and a Pebble
    resolving through it."""
    mark = request.node.get_closest_marker("zone_records")
    named = Named(tmp_path / "named", extra_records=mark.args[0] if mark else "")
    try:
        pebble = Pebble(tmp_path / "pebble", free_port(), free_port(), dns_server=named.address)
    except BaseException:
        named.stop()
        raise
    yield named, pebble
    pebble.stop()
    named.stop()


def updates(named: Named) -> list[tuple[str, str]]:
    """(verb, owner name) of each TXT change BIND logged for an UPDATE: ("adding", name) / ("deleting", name)."""
    return re.findall(r"updating zone 'dns\.test/IN': (adding|deleting) an RR at '?([^' ]+?)'? TXT", named.log())


def test_dns01_wildcard_certificate_from_bind(proxies, dns_ca, ports, tmp_path):
    named, pebble = dns_ca
    acme = pebble.acme_section([["*.wild.dns.test", "wild.dns.test"]], challenges=["dns-01"], dns=named.dns_section())
    p = proxies(acme_config(ports, acme, http=False), standard_certs=False)
    status = wait_issued(Admin(ports["admin"]), timeout=ISSUE_TIMEOUT)
    root = write_root(pebble, tmp_path)
    for name in ("x.wild.dns.test", "wild.dns.test"):
        cert = verified_cert(p.https_port, name, root)
        assert cert["serial"] == int(status["certificates"][0]["serial"], 16), (name, cert)
        assert set(cert["names"]) >= {"*.wild.dns.test", "wild.dns.test"}
    # Two authorizations for one name (the wildcard's and the apex's): two values, both removed.
    changes = updates(named)
    assert changes.count(("adding", "_acme-challenge.wild.dns.test")) == 2, named.log()
    assert changes.count(("deleting", "_acme-challenge.wild.dns.test")) == 2, named.log()
    assert named.dig("_acme-challenge.wild.dns.test", "TXT") == []
    # GET /acme tells the provider and the propagation wait; nothing is left present.
    dns = acme_status(Admin(ports["admin"]))["dns"]
    assert dns["provider"] == "rfc2136" and dns["presented"] == 2 and dns["records_present"] == 0, dns
    assert dns["last_propagation_seconds"] is not None and dns["failed"] == 0, dns


@pytest.mark.zone_records("_acme-challenge.deleg IN CNAME _acme-challenge.delegated.dns.test.")
def test_dns01_follows_a_cname_delegation(proxies, dns_ca, ports, tmp_path):
    named, pebble = dns_ca
    acme = pebble.acme_section(["deleg.dns.test"], challenges=["dns-01"], dns=named.dns_section())
    p = proxies(acme_config(ports, acme, http=False), standard_certs=False)
    status = wait_issued(Admin(ports["admin"]), timeout=ISSUE_TIMEOUT)
    cert = verified_cert(p.https_port, "deleg.dns.test", write_root(pebble, tmp_path))
    assert cert["serial"] == int(status["certificates"][0]["serial"], 16)
    # The TXT record went to the CNAME's target, never to the delegated name itself, and is gone again.
    assert updates(named) == [("adding", "_acme-challenge.delegated.dns.test"),
                              ("deleting", "_acme-challenge.delegated.dns.test")], named.log()
    assert named.dig("_acme-challenge.delegated.dns.test", "TXT") == []
    assert named.dig("_acme-challenge.deleg.dns.test", "CNAME") == ["_acme-challenge.delegated.dns.test."]


def test_dns01_reports_the_check_server_that_never_answers(proxies, dns_ca, ports):
    named, pebble = dns_ca
    silent = f"127.0.0.1:{free_port()}"           # nothing listens there
    acme = pebble.acme_section(["late.dns.test"], challenges=["dns-01"],
                               dns=named.dns_section(check_servers=[named.address, silent], propagation_timeout="1s"))
    proxies(acme_config(ports, acme, http=False), standard_certs=False)
    admin = Admin(ports["admin"])
    failed = wait_until(lambda: (s := acme_status(admin))["certificates"][0]["failures"] >= 1 and s, ISSUE_TIMEOUT,
                        what="a failed attempt")
    error = failed["certificates"][0]["last_error"]
    assert silent in error and "_acme-challenge.late.dns.test" in error, error
    # The value was written, then taken down again although the CA was never told.
    assert updates(named) == [("adding", "_acme-challenge.late.dns.test"), ("deleting", "_acme-challenge.late.dns.test")], named.log()
    assert named.dig("_acme-challenge.late.dns.test", "TXT") == []


def test_dns01_through_an_operators_program(proxies, dns_ca, ports, tmp_path):
    """provider exec: the proxy runs `command present|cleanup FQDN VALUE` (lego's convention); this
    one writes the record with nsupdate, and the proxy checks it arrived before telling the CA."""
    named, pebble = dns_ca
    host, port = named.address.rsplit(":", 1)
    script = tmp_path / "dns-hook"
    calls = tmp_path / "calls.log"
    script.write_text(f"""#!/bin/sh
set -e
echo "$1 $2 $3" >> {calls}
if [ "$1" = present ]; then change="update add $2 60 TXT \\"$3\\""; else change="update delete $2 TXT \\"$3\\""; fi
printf 'server {host} {port}\\nzone dns.test\\n%s\\nsend\\n' "$change" | nsupdate -y hmac-sha256:{KEY_NAME}:{SECRET}
""")
    script.chmod(0o755)
    acme = pebble.acme_section(["hook.dns.test"], challenges=["dns-01"],
                               dns={"provider": "exec", "command": str(script), "check_servers": [named.address]})
    p = proxies(acme_config(ports, acme, http=False), standard_certs=False)
    status = wait_issued(Admin(ports["admin"]), timeout=ISSUE_TIMEOUT)
    cert = verified_cert(p.https_port, "hook.dns.test", write_root(pebble, tmp_path))
    assert cert["serial"] == int(status["certificates"][0]["serial"], 16)
    lines = calls.read_text().splitlines()
    assert [l.split()[:2] for l in lines] == [["present", "_acme-challenge.hook.dns.test."],
                                              ["cleanup", "_acme-challenge.hook.dns.test."]], lines
    assert lines[0].split()[2] == lines[1].split()[2]           # the same value taken down
    assert named.dig("_acme-challenge.hook.dns.test", "TXT") == []
