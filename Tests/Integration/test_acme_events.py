"""Certificate events end to end: the real binary, a real Pebble, and consumers started here: a
webhook receiver (a real HTTP server checking the HMAC-SHA256 signature) and an exec hook. Events
for obtained, renewed, failed and expiring-soon certificates arrive with their JSON fields; a
receiver that is down at first gets the event after retries while TLS keeps serving.
"""

from __future__ import annotations

import hashlib
import hmac
import http.server
import json
import threading
import time
from datetime import datetime

from conftest import free_port
from httpclient import client_context, handshake_cert
from reload_support import Admin, metric, wait_until
from test_acme import (WrongAnswers, acme_config, acme_status, pebble_factory, ports, require_pebble,  # noqa: F401 (fixtures)
                       wait_issued, write_root)

EVENT_TIMEOUT = 60
SECRET = "test-webhook-secret"
FIELDS = {"id", "event", "name", "names", "serial", "not_after", "issuer", "node", "error", "problem", "attempt", "time"}


class Receiver:
    """A webhook consumer on `port`: records every POST with its parsed JSON and whether the
    signature header is the HMAC-SHA256 of the body under `secret`; answers 204. Not listening
    until `start` (a connect before it is refused)."""

    def __init__(self, port: int | None = None, secret: str = SECRET):
        self.port = port or free_port()
        self.secret = secret
        self.url = f"http://127.0.0.1:{self.port}/hooks/certs"
        self.received: list[dict] = []
        self.server = None

    def start(self) -> "Receiver":
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers["Content-Length"]))
                expected = "sha256=" + hmac.new(outer.secret.encode(), body, hashlib.sha256).hexdigest()
                outer.received.append({"path": self.path, "headers": dict(self.headers), "body": json.loads(body),
                                       "signed": hmac.compare_digest(self.headers.get("X-Edgeproxy-Signature", ""), expected)})
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def stop(self):
        if self.server:
            self.server.shutdown()
            self.server.server_close()

    def events(self, kind: str | None = None) -> list[dict]:
        return [r["body"] for r in list(self.received) if kind is None or r["body"]["event"] == kind]

    def wait(self, kind: str, count: int = 1, timeout: float = EVENT_TIMEOUT) -> list[dict]:
        return wait_until(lambda: len(self.events(kind)) >= count and self.events(kind), timeout, interval=0.1,
                          what=f"{count} {kind} event(s) at the receiver")

    def assert_well_formed(self):
        """Every request: POSTed to the configured path, signed, with the id and kind in headers too."""
        for r in list(self.received):
            assert r["signed"], r
            assert r["path"] == "/hooks/certs"
            assert set(r["body"]) == FIELDS, r["body"]
            assert r["headers"]["X-Edgeproxy-Event-Id"] == r["body"]["id"]
            assert r["headers"]["X-Edgeproxy-Event"] == r["body"]["event"]
            assert r["headers"]["Content-Type"] == "application/json"
            assert abs(int(r["headers"]["X-Edgeproxy-Timestamp"]) - time.time()) < 120


def when(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def events_section(*receivers: Receiver, **extra) -> dict:
    return {"webhooks": [{"url": r.url, "secret": r.secret} for r in receivers]} | extra


def test_obtained_and_renewed_events_reach_a_webhook_signed(proxies, pebble_factory, ports, tmp_path):
    receiver = Receiver().start()
    try:
        pebble = pebble_factory(ports["http"], ports["https"])
        acme = pebble.acme_section(["ev.acme.test"], challenges=["http-01"],
                                   renewal={"renew_before": "100000h", "check_interval": "2s"}, events=events_section(receiver))
        proxies(acme_config(ports, acme), standard_certs=False)
        admin = Admin(ports["admin"])
        first = wait_issued(admin, 1)["certificates"][0]["serial"]
        obtained = receiver.wait("obtained")[0]
        assert obtained["serial"] == first and obtained["name"] == "ev.acme.test" and obtained["names"] == ["ev.acme.test"]
        assert "Pebble" in obtained["issuer"] and obtained["error"] is None and obtained["problem"] is None
        root = write_root(pebble, tmp_path)
        cert = handshake_cert(ports["https"], "ev.acme.test", ctx=client_context(cafile=root))
        assert cert["serial"] == int(first, 16)
        renewed = receiver.wait("renewed")[0]
        assert renewed["serial"] != first and renewed["name"] == "ev.acme.test"
        assert when(renewed["not_after"]) > when(renewed["time"]) and renewed["node"]
        receiver.assert_well_formed()
        ids = [e["id"] for e in receiver.events()]
        assert len(ids) == len(set(ids)), ids
        assert receiver.events("obtained") == [obtained]   # the renewals are `renewed`, never `obtained` again
        events = wait_until(lambda: (e := acme_status(admin)["events"])["delivered"] >= 2 and e, 10, what="/acme events")
        assert events["failed"] == 0 and events["dropped"] == 0 and events["last_error"] is None
        assert metric(admin.metrics(), "edgeproxy_acme_events_total", outcome="delivered") >= 2
    finally:
        receiver.stop()


def test_a_receiver_that_is_down_gets_the_event_after_retries_while_tls_serves(proxies, pebble_factory, ports, tmp_path):
    receiver = Receiver()      # not listening yet: connections are refused
    try:
        pebble = pebble_factory(ports["http"], ports["https"])
        acme = pebble.acme_section(["down.acme.test"], challenges=["http-01"],
                                   events=events_section(receiver, backoff_base="1s", backoff_cap="2s"))
        p = proxies(acme_config(ports, acme), standard_certs=False)
        admin = Admin(ports["admin"])
        serial = wait_issued(admin, 1)["certificates"][0]["serial"]
        root = write_root(pebble, tmp_path)
        handshakes = 0

        def retried_twice():
            nonlocal handshakes
            # Serving goes on meanwhile: every handshake gets the new certificate.
            assert handshake_cert(ports["https"], "down.acme.test", ctx=client_context(cafile=root))["serial"] == int(serial, 16)
            handshakes += 1
            return acme_status(admin)["events"]["retries"] >= 2
        wait_until(retried_twice, 30, interval=0.2, what="two retries against the refusing receiver")
        status = acme_status(admin)["events"]
        assert status["delivered"] == 0, status
        assert "webhook " + receiver.url in status["last_error"] and "connect" in status["last_error"], status
        assert metric(admin.metrics(), "edgeproxy_acme_event_retries_total") >= 2
        assert handshakes >= 2
        receiver.start()
        obtained = receiver.wait("obtained")[0]
        assert obtained["serial"] == serial
        receiver.assert_well_formed()
        wait_until(lambda: acme_status(admin)["events"]["queued"] == 0, 10, what="the queue emptied")
        assert acme_status(admin)["events"]["delivered"] == 1
        assert "attempt 2 failed" in p.stderr()
        assert p.alive()
    finally:
        receiver.stop()


def test_a_failed_validation_is_an_event_with_the_problem(proxies, pebble_factory, ports):
    wrong = http.server.ThreadingHTTPServer(("127.0.0.1", 0), WrongAnswers)
    threading.Thread(target=wrong.serve_forever, daemon=True).start()
    receiver = Receiver().start()
    try:
        pebble = pebble_factory(wrong.server_address[1], ports["https"])
        acme = pebble.acme_section(["wrong.acme.test"], challenges=["http-01"],
                                   renewal={"backoff_base": "2s", "backoff_cap": "4s"}, events=events_section(receiver))
        proxies(acme_config(ports, acme), standard_certs=False)
        failures = receiver.wait("failed", 2)
        first, second = failures[0], failures[1]
        assert first["name"] == "wrong.acme.test" and first["serial"] is None and first["issuer"] is None
        assert first["attempt"] == 1 and second["attempt"] == 2 and first["id"] != second["id"]
        assert "wrong.acme.test" in first["error"]
        assert first["problem"]["type"] in ("urn:ietf:params:acme:error:unauthorized",
                                            "urn:ietf:params:acme:error:incorrectResponse"), first
        assert first["problem"]["detail"]
        assert receiver.events("obtained") == []
        receiver.assert_well_formed()
    finally:
        receiver.stop()
        wrong.shutdown()


def test_the_exec_hook_gets_obtained_and_expiring_soon_once_per_serial(proxies, pebble_factory, ports, tmp_path):
    log = tmp_path / "hook.log"
    hook = tmp_path / "hook.sh"
    hook.write_text(f'#!/bin/sh\n{{ echo "$1 $2"; cat; echo; }} >> {log}\n')
    hook.chmod(0o755)
    pebble = pebble_factory(ports["http"], ports["https"])
    # Every certificate is "expiring" within 100000 h; the manager looks at it every second.
    acme = pebble.acme_section(["hook.acme.test"], challenges=["http-01"], renewal={"check_interval": "1s"},
                               events={"command": str(hook), "expiring_within": "100000h"})
    proxies(acme_config(ports, acme), standard_certs=False)
    admin = Admin(ports["admin"])
    serial = wait_issued(admin, 1)["certificates"][0]["serial"]

    def calls():
        lines = log.read_text().splitlines() if log.exists() else []
        return [(lines[i], json.loads(lines[i + 1])) for i in range(0, len(lines) - 1, 2)]
    wait_until(lambda: len(calls()) >= 2, EVENT_TIMEOUT, interval=0.1, what="two calls of the hook")
    time.sleep(3)   # three more looks at the certificate: no second expiring_soon for this serial
    got = calls()
    assert sorted(arguments for arguments, _ in got) == ["expiring_soon hook.acme.test", "obtained hook.acme.test"], got
    obtained, expiring = (next(e for _, e in got if e["event"] == kind) for kind in ("obtained", "expiring_soon"))
    assert set(obtained) == FIELDS and obtained["event"] == "obtained" and obtained["serial"] == serial
    assert expiring["serial"] == serial and expiring["not_after"] == obtained["not_after"]
    assert acme_status(admin)["events"]["delivered"] == 2
