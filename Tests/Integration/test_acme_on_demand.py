"""On-demand TLS end to end: a handshake for a name that has no certificate is held while the real
binary obtains one from a real Pebble, when the name is allowed by `names` patterns and by an `ask`
endpoint (a real HTTP server started here). Denied names, an `ask` outage and a flood of random
names never disturb what is already served.
"""

from __future__ import annotations

import http.server
import ssl
import threading
import time
import uuid
from urllib.parse import parse_qs, urlparse

import pytest

from conftest import free_port
from httpclient import client_context, handshake_cert
from blackhole import Blackhole
from reload_support import Admin, metric, record_result, wait_until
from test_acme import acme_config, acme_status, pebble_factory, ports, require_pebble, write_root  # noqa: F401 (fixtures)

ISSUE_TIMEOUT = 30


class AskServer:
    """Answers GET /check?domain=NAME with 200 for allowed names, 404 for others; counts the asks."""

    def __init__(self, allowed: set[str]):
        self.allowed = allowed
        self.asked: list[str] = []
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                name = parse_qs(urlparse(self.path).query).get("domain", [""])[0]
                outer.asked.append(name)
                status = 200 if name in outer.allowed else 404
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/check"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def ask():
    made = []

    def make(allowed):
        s = AskServer(set(allowed))
        made.append(s)
        return s
    yield make
    for s in made:
        s.stop()


def on_demand_config(ports, pebble, **on_demand) -> dict:
    acme = pebble.acme_section([], challenges=["http-01"], on_demand=on_demand)
    del acme["certificates"]
    # One event loop: a held handshake shares it with every other connection.
    return acme_config(ports, acme) | {"workers": 1}


def served(port: int, name: str, root) -> dict:
    """The certificate a verifying client gets for `name` (raises when it is not one for `name`)."""
    return handshake_cert(port, name, ctx=client_context(cafile=root))


def unverified(port: int, name: str) -> dict:
    return handshake_cert(port, name)


def test_an_allowed_name_is_issued_during_its_first_handshake(proxies, pebble_factory, ports, ask, tmp_path):
    asker = ask({"shop.od.test"})
    pebble = pebble_factory(ports["http"], ports["https"], nonce_reject=0)   # one request per order
    p = proxies(on_demand_config(ports, pebble, ask=asker.url, names=["*.od.test"]), standard_certs=False)
    root = write_root(pebble, tmp_path)
    started = time.monotonic()
    cert = served(p.https_port, "shop.od.test", root)   # verified: Pebble's chain for this very name
    first_handshake = time.monotonic() - started
    assert "shop.od.test" in cert["names"]
    assert asker.asked == ["shop.od.test"]
    admin = Admin(ports["admin"])
    status = acme_status(admin)
    entry = next(c for c in status["certificates"] if c["name"] == "shop.od.test")
    assert int(entry["serial"], 16) == cert["serial"]
    # Served from now on without asking again or ordering again.
    assert served(p.https_port, "shop.od.test", root)["serial"] == cert["serial"]
    assert asker.asked == ["shop.od.test"]
    assert pebble.requests("/order-plz") == 1
    assert status["on_demand"]["held"] >= 1 and status["on_demand"]["waiting"] == 0
    assert metric(admin.metrics(), "edgeproxy_acme_on_demand_handshakes_held_total") >= 1
    record_result("acme_on_demand", {"first_handshake_seconds": round(first_handshake, 2)})


def test_denied_names_and_an_ask_outage_leave_issued_names_serving(proxies, pebble_factory, ports, ask, tmp_path):
    asker = ask({"kept.od.test"})
    pebble = pebble_factory(ports["http"], ports["https"], nonce_reject=0)   # one request per order
    config = on_demand_config(ports, pebble, ask=asker.url, ask_cache="1h")
    p = proxies(config, standard_certs=False)
    root = write_root(pebble, tmp_path)
    kept = served(p.https_port, "kept.od.test", root)["serial"]
    # Denied: the handshake goes on at once with the default certificate; the answer is cached.
    started = time.monotonic()
    assert "denied.od.test" not in unverified(p.https_port, "denied.od.test")["names"]
    assert time.monotonic() - started < 5
    assert "denied.od.test" not in unverified(p.https_port, "denied.od.test")["names"]
    assert asker.asked.count("denied.od.test") == 1
    # The ask endpoint goes away: issued names still serve, new names get the default.
    asker.stop()
    assert served(p.https_port, "kept.od.test", root)["serial"] == kept
    assert "new.od.test" not in unverified(p.https_port, "new.od.test")["names"]
    assert pebble.requests("/order-plz") == 1
    assert "asking http://" in p.stderr() and "failed" in p.stderr()
    # A restart with the endpoint still down serves the name issued on demand from storage.
    p.stop()
    p.start()
    assert served(p.https_port, "kept.od.test", root)["serial"] == kept
    assert pebble.requests("/order-plz") == 1


def test_a_burst_of_random_names_stays_within_the_rate_limit(proxies, pebble_factory, ports, tmp_path):
    pebble = pebble_factory(ports["http"], ports["https"], nonce_reject=0)   # one request per order
    p = proxies(on_demand_config(ports, pebble, names=["*.burst.od.test"], rate_limit=3, rate_interval="1h", wait="5s"),
                standard_certs=False)
    results = {"ok": 0, "failed": []}
    lock = threading.Lock()

    def client(names):
        for name in names:
            try:
                unverified(p.https_port, name)
                with lock:
                    results["ok"] += 1
            except (OSError, ssl.SSLError) as e:
                with lock:
                    results["failed"].append(f"{name}: {e}")
    names = [f"{uuid.uuid4().hex[:12]}.burst.od.test" for _ in range(200)]
    threads = [threading.Thread(target=client, args=(names[i::20],)) for i in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    # Every handshake completed (with a new certificate or the default); at most 3 orders.
    assert results["failed"] == [], results["failed"][:5]
    assert results["ok"] == 200
    wait_until(lambda: acme_status(Admin(ports["admin"]))["on_demand"]["looking_up"] == [], 10, what="lookups done")
    assert pebble.requests("/order-plz") <= 3
    status = acme_status(Admin(ports["admin"]))
    assert len(status["certificates"]) <= 3
    assert status["on_demand"]["rate_limited"] >= 1
    assert p.alive()


def test_other_clients_are_served_while_a_handshake_waits(proxies, pebble_factory, ports, tmp_path):
    hole = Blackhole()
    try:
        pebble = pebble_factory(hole.port, ports["https"])   # validations never finish
        p = proxies(on_demand_config(ports, pebble, names=["*.slow.od.test"], wait="3s"), standard_certs=False)
        outcome = {}

        def waiting_client():
            started = time.monotonic()
            outcome["cert"] = unverified(p.https_port, "held.slow.od.test")
            outcome["seconds"] = time.monotonic() - started
        t = threading.Thread(target=waiting_client)
        t.start()
        admin = Admin(ports["admin"])
        wait_until(lambda: acme_status(admin)["on_demand"]["waiting"] == 1, 5, what="a handshake held")
        # Meanwhile the loop that holds the handshake serves everyone else.
        others = 0
        while t.is_alive() and others < 20:
            unverified(p.https_port, "localhost")
            others += 1
        t.join()
        assert others >= 5
        # The wait is bounded: the held client goes on with the default certificate.
        assert 2.5 <= outcome["seconds"] < 8, outcome
        assert "held.slow.od.test" not in outcome["cert"]["names"]
        assert acme_status(admin)["on_demand"]["waiting"] == 0
    finally:
        hole.close()
