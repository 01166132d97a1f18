"""Process lifecycle: graceful shutdown (SIGTERM/SIGINT), SIGHUP reload of certificates and
configuration, bad certificates at start, `edgeproxy check` diagnostics, the access log."""

from __future__ import annotations

import re
import signal
import subprocess
import threading
import time
from pathlib import Path

import pytest

from conftest import free_port, port_refuses, run_check, standard_tls
from httpclient import handshake_cert, https_get
from reload_support import wait_until

HELLO = {"respond": {"status": 200, "body": "hello\n", "content_type": "text/plain"}}


def proxied_config(origin, **extra) -> dict:
    cfg = {"workers": 2, "tls": standard_tls(), "upstreams": {"app": {"servers": [origin.addr]}},
           "routes": [{"upstream": "app"}]}
    cfg.update(extra)
    return cfg


class InFlight(threading.Thread):
    """Runs one request in a thread; .response or .error afterwards."""

    def __init__(self, port: int, target: str, sni: str = "a.test"):
        super().__init__(daemon=True)
        self.port, self.target, self.sni = port, target, sni
        self.response = self.error = None

    def run(self):
        try:
            self.response = https_get(self.port, self.target, sni=self.sni, timeout=60)
        except Exception as e:       # reported by the test
            self.error = e


# ----- graceful shutdown -----------------------------------------------------------------------

def test_sigterm_drains_in_flight_request_and_refuses_new_connections(proxies, origins):
    """SIGTERM while a 2 s request is in flight: new connections are refused, the request still completes
    with 200, and the process exits 0 soon after."""
    o = origins("G")
    p = proxies(proxied_config(o, timeouts={"shutdown": "15s"}))
    req = InFlight(p.https_port, "/slow?ms=2000")
    req.start()
    wait_until(lambda: any(h.startswith("GET /slow") for h in o.stats()["heads"]), 10,
               what="the slow request to reach the origin")
    p.send_signal(signal.SIGTERM)
    refused_at = wait_until(lambda: port_refuses(p.https_port) and time.monotonic(), 1.5,
                            what="the listener to close after SIGTERM")
    assert req.is_alive(), "the in-flight request finished before the refusal check; it should still be running"
    req.join(20)
    assert req.error is None, req.error
    assert req.response.status == 200
    assert req.response.body == b"slept 2000\n"
    rc = p.wait(10)
    assert rc is not None, "process still running 10 s after the in-flight request finished"
    assert rc == 0
    assert refused_at


def test_sigint_is_graceful_too(proxies):
    """SIGINT stops the proxy like SIGTERM: exit status 0."""
    p = proxies({"workers": 2, "tls": standard_tls(), "routes": [HELLO]})
    assert https_get(p.https_port, "/").status == 200
    p.send_signal(signal.SIGINT)
    assert p.wait(15) == 0


def test_idle_keepalive_connections_do_not_delay_shutdown(proxies):
    """Idle keep-alive client connections are closed on SIGTERM; the process does not wait for them."""
    p = proxies({"workers": 2, "tls": standard_tls(), "timeouts": {"idle": "120s", "shutdown": "60s"},
                 "routes": [HELLO]})
    c = p.conn("a.test")
    try:
        assert c.request("GET", "/").status == 200
        p.send_signal(signal.SIGTERM)
        assert c.closed_by_peer(timeout=10), "idle keep-alive connection was not closed"
        assert p.wait(10) == 0
    finally:
        c.close()


def test_connection_without_its_first_request_is_served_through_the_drain(proxies):
    """A connection whose handshake is done but which has sent nothing yet is not idle: after SIGTERM
    its first request is still answered (with Connection: close), as its client could not retry it
    elsewhere; then the connection closes and the process exits."""
    p = proxies({"workers": 1, "tls": standard_tls(), "timeouts": {"idle": "120s", "shutdown": "30s"},
                 "routes": [HELLO]})
    c = p.conn("a.test")
    try:
        p.send_signal(signal.SIGTERM)
        wait_until(lambda: port_refuses(p.https_port), 5, what="the listener to close after SIGTERM")
        time.sleep(0.3)   # the drain has reached the connection
        r = c.request("GET", "/")
        assert r.status == 200 and r.body == b"hello\n"
        assert (r.header("Connection") or "").lower() == "close"
        assert c.closed_by_peer(timeout=10), "the connection stayed open after its last response"
        assert p.wait(10) == 0
    finally:
        c.close()


def test_shutdown_timeout_bounds_the_drain(proxies, origins):
    """An in-flight request longer than timeouts.shutdown does not keep the process alive past that deadline."""
    o = origins("G")
    p = proxies(proxied_config(o, timeouts={"shutdown": "1s"}))
    req = InFlight(p.https_port, "/slow?ms=30000")
    req.start()
    wait_until(lambda: o.stats()["heads"], 10, what="the slow request to reach the origin")
    t0 = time.monotonic()
    p.send_signal(signal.SIGTERM)
    rc = p.wait(15)
    assert rc is not None, "still running 15 s after SIGTERM with shutdown: 1s"
    assert time.monotonic() - t0 < 15
    assert rc == 0


# ----- SIGHUP reload ---------------------------------------------------------------------------

def test_sighup_reloads_certificate_and_keeps_connections(proxies, pki):
    """A certificate file rewritten with a new serial is served after SIGHUP on new handshakes,
    while a keep-alive connection opened before the reload keeps working."""
    p = proxies({"workers": 2, "tls": standard_tls(), "routes": [HELLO]})
    old_serial = pki.leaves["a_ec"].serial
    assert handshake_cert(p.https_port, "a.test")["serial"] == old_serial
    keep = p.conn("a.test")
    try:
        assert keep.request("GET", "/before").status == 200
        fresh = pki.issue(["a.test"], "ec")
        fresh.write(p.dir / "certs", "a.test")
        p.reload()
        wait_until(lambda: handshake_cert(p.https_port, "a.test")["serial"] == fresh.serial, 10,
                   what="new handshakes to present the new serial")
        for _ in range(6):         # every worker serves the new certificate
            assert handshake_cert(p.https_port, "a.test")["serial"] == fresh.serial
        r = keep.request("GET", "/after")
        assert r.status == 200 and r.body == b"hello\n"
        assert p.alive()
        # names that did not change are still served
        assert handshake_cert(p.https_port, "b.test")["serial"] == pki.leaves["b"].serial
    finally:
        keep.close()


def test_sighup_reloads_configuration(proxies):
    """SIGHUP applies a changed configuration (a route's fixed response) without restarting."""
    p = proxies({"workers": 2, "tls": standard_tls(), "routes": [HELLO]})
    pid = p.pid
    assert https_get(p.https_port, "/").body == b"hello\n"
    p.write_config({"workers": 2, "tls": standard_tls(),
                    "routes": [{"respond": {"status": 200, "body": "reloaded\n", "content_type": "text/plain"}}]})
    p.reload()
    wait_until(lambda: https_get(p.https_port, "/").body == b"reloaded\n", 10, what="the new route")
    assert p.alive() and p.pid == pid


def test_sighup_with_bad_configuration_keeps_old_one(proxies):
    """A broken configuration on SIGHUP is logged and the old configuration keeps serving; a later good
    configuration is still picked up."""
    p = proxies({"workers": 2, "tls": standard_tls(), "routes": [HELLO]})
    good = p.config_text
    c = p.conn("a.test")
    try:
        assert c.request("GET", "/").status == 200
        err_before = len(p.stderr())
        p.write_config(good + "routes: [\n")            # YAML syntax error
        p.reload()
        wait_until(lambda: len(p.stderr()) > err_before, 10, what="an error to be logged")
        time.sleep(0.5)
        assert p.alive()
        assert https_get(p.https_port, "/").body == b"hello\n"
        assert c.request("GET", "/").body == b"hello\n"      # existing connection unaffected
        p.write_config(good.replace('"hello\\n"', '"again\\n"'))
        p.reload()
        wait_until(lambda: https_get(p.https_port, "/").body == b"again\n", 10, what="the later good config")
    finally:
        c.close()


def test_sighup_with_broken_certificate_keeps_serving(proxies, pki):
    """If a certificate file is corrupted before SIGHUP, the proxy keeps serving (that name keeps its old
    certificate or falls back to the default; the handshake still succeeds)."""
    p = proxies({"workers": 2, "tls": standard_tls(), "routes": [HELLO]})
    (p.dir / "certs" / "a.test.crt").write_text("-----BEGIN CERTIFICATE-----\nnot base64!\n-----END CERTIFICATE-----\n")
    p.reload()
    time.sleep(1.0)
    assert p.alive()
    got = handshake_cert(p.https_port, "a.test")
    assert got["serial"] in (pki.leaves["a_ec"].serial, pki.leaves["a_rsa"].serial, pki.leaves["default"].serial)
    assert handshake_cert(p.https_port, "b.test")["serial"] == pki.leaves["b"].serial
    assert https_get(p.https_port, "/", sni="b.test").status == 200


# ----- bad certificates at start ---------------------------------------------------------------

def _write_bad_certs(pki, certs: Path) -> dict:
    certs.mkdir(parents=True, exist_ok=True)
    (certs / "broken.crt").write_text("-----BEGIN CERTIFICATE-----\nAAAA!!!!garbage\n-----END CERTIFICATE-----\n")
    (certs / "broken.key").write_bytes(pki.issue(["broken.test"]).key_pem)
    mism_cert = pki.issue(["mismatch.test"])
    other_key = pki.issue(["other.test"])
    (certs / "mismatch.crt").write_bytes(mism_cert.chain_pem)
    (certs / "mismatch.key").write_bytes(other_key.key_pem)            # key does not match the cert
    trunc = pki.issue(["trunc.test"])
    (certs / "trunc.pem").write_bytes(trunc.combined_pem[: len(trunc.combined_pem) // 2])
    return {"mismatch": mism_cert, "trunc": trunc}


def test_bad_certificate_files_do_not_prevent_start(proxies, pki):
    """Corrupt PEM, a key that does not match its certificate and a truncated .pem in certificate_dir:
    the good certificates still load and the process serves."""
    p = proxies({"workers": 2, "tls": standard_tls(), "routes": [HELLO]}, start=False)
    bad = _write_bad_certs(pki, p.dir / "certs")
    p.start()
    assert handshake_cert(p.https_port, "a.test")["serial"] == pki.leaves["a_ec"].serial
    assert handshake_cert(p.https_port, "b.test")["serial"] == pki.leaves["b"].serial
    assert handshake_cert(p.https_port, "x.wild.test")["serial"] == pki.leaves["wild"].serial
    # the mismatched pair is not used for its name: that name gets the default certificate
    got = handshake_cert(p.https_port, "mismatch.test")
    assert got["serial"] != bad["mismatch"].serial
    assert got["serial"] == pki.leaves["default"].serial
    assert handshake_cert(p.https_port, "trunc.test")["serial"] == pki.leaves["default"].serial
    assert https_get(p.https_port, "/").status == 200


def test_bad_certificate_files_are_logged(proxies, pki):
    """Each certificate file that fails to load is named in the error log (stderr)."""
    p = proxies({"workers": 1, "tls": standard_tls(), "routes": [HELLO]}, start=False)
    _write_bad_certs(pki, p.dir / "certs")
    p.start()
    assert https_get(p.https_port, "/").status == 200
    err = p.stderr()
    for name in ("broken", "mismatch", "trunc"):
        assert name in err, f"{name} not mentioned in stderr:\n{err[-3000:]}"


# ----- edgeproxy check -------------------------------------------------------------------------

def test_check_accepts_valid_configuration(proxies, edgeproxy_bin, origins):
    """`edgeproxy check` exits 0 on a valid configuration (relative certificate paths included)."""
    p = proxies({"workers": 2, "listen": {"https": ["127.0.0.1:8443"], "http": ["127.0.0.1:8080"],
                                          "redirect_port": 443},
                 "tls": standard_tls(session_tickets=2, min_version="1.2", strict_sni=False),
                 "timeouts": {"handshake": "10s", "header": "15s", "idle": "60s", "upstream_connect": "5s",
                              "upstream_response": "60s", "shutdown": "30s"},
                 "limits": {"max_header_bytes": "16k", "max_headers": 100, "max_body": 0,
                            "max_connections_per_worker": 10000},
                 "upstreams": {"app": {"servers": ["127.0.0.1:9000", "127.0.0.1:9001"], "balance": "least_conn",
                                       "keepalive": 32, "keepalive_timeout": "60s", "fail_timeout": "10s"}},
                 "routes": [{"host": "*.example.test", "path": "/api/", "upstream": "app", "max_body": "10m",
                             "forwarded_headers": True}, HELLO],
                 "log": {"access": "stdout", "level": "info"}}, start=False)
    r = run_check(edgeproxy_bin, p.config_path)
    assert r.returncode == 0, r.stderr


CHECK_CASES = {
    # name: (config text, line, column) — column of the offending value, 1-based
    "bad-duration": ('workers: 2\nlisten:\n  https: ["127.0.0.1:8443"]\ntimeouts:\n  idle: forever\n', 5, 9),
    "bad-workers": ("workers: lots\n", 1, 10),
    "unknown-upstream": ('upstreams:\n  app:\n    servers: ["127.0.0.1:9000"]\nroutes:\n  - host: a.test\n'
                         '    upstream: nope\n', 6, 15),
    "bad-balance": ('upstreams:\n  app:\n    servers: ["127.0.0.1:9000"]\n    balance: random\n', 4, 14),
    "bad-port": ('listen:\n  https: ["127.0.0.1:99999"]\n', 2, 11),
    "bad-min-version": ('tls:\n  self_signed: [localhost]\n  min_version: "1.1"\n', 3, 16),
}


@pytest.mark.parametrize("case", list(CHECK_CASES))
def test_check_reports_error_position(edgeproxy_bin, tmp_path, case):
    """`edgeproxy check` exits 1 and prints FILE:LINE:COLUMN: message pointing at the offending value."""
    text, line, col = CHECK_CASES[case]
    if "tls:" not in text:           # give it a certificate source so the only error is the intended one
        text += "tls:\n  self_signed: [localhost]\n"
    cfg = tmp_path / "config.yaml"
    cfg.write_text(text)
    r = subprocess.run([str(edgeproxy_bin), "check", "--config", "config.yaml"], cwd=tmp_path,
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 1, (r.returncode, r.stderr)
    assert re.search(rf"config\.yaml:{line}:{col}: \S", r.stderr), r.stderr


def test_check_refuses_an_endless_file(edgeproxy_bin):
    """A path that never ends (/dev/zero) is refused with its name once past the size limit, not read forever."""
    r = subprocess.run([str(edgeproxy_bin), "check", "--config", "/dev/zero"], capture_output=True, text=True, timeout=30)
    assert r.returncode == 1, (r.returncode, r.stderr)
    assert "/dev/zero" in r.stderr and "not a configuration file" in r.stderr, r.stderr


def test_check_reports_yaml_syntax_error_line(edgeproxy_bin, tmp_path):
    """A YAML syntax error is reported with its file and line."""
    cfg = tmp_path / "config.yaml"
    cfg.write_text('workers: 2\nlisten:\n  https: ["127.0.0.1:8443"\nroutes: []\n')
    r = run_check(edgeproxy_bin, cfg)
    assert r.returncode == 1
    m = re.search(r"config\.yaml:(\d+):(\d+): \S", r.stderr)
    assert m, r.stderr
    assert int(m.group(1)) in (3, 4), r.stderr      # the unterminated flow sequence (line 3) or where it is noticed


def test_check_does_not_start_serving(edgeproxy_bin, proxies):
    """`check` validates and exits; it never binds the listen port."""
    p = proxies({"workers": 1, "tls": standard_tls(), "routes": [HELLO]}, start=False)
    r = run_check(edgeproxy_bin, p.config_path)
    assert r.returncode == 0, r.stderr
    assert port_refuses(p.https_port)


# ----- access log ------------------------------------------------------------------------------

ACCESS_KEYS = {"time", "client", "sni", "host", "method", "path", "status", "bytes_in", "bytes_out",
               "upstream", "duration_ms", "upstream_ms", "protocol"}


def _traffic(p, origin_addr):
    https_get(p.https_port, "/bytes?n=5000", sni="a.test")                       # proxied 200
    https_get(p.https_port, "/sha256", sni="a.test", method="POST", body=b"p" * 300)
    https_get(p.https_port, "/status?code=404", sni="a.test")                    # origin 404
    https_get(p.https_port, "/static", sni="b.test")                             # fixed response
    https_get(p.https_port, "/echo", sni="down.wild.test")                       # 502
    https_get(p.https_port, "/static", sni="x.wild.test", host="other.wild.test")  # sni != host


def _access_config(o, dead, **log):
    return {"workers": 2, "tls": standard_tls(),
            "upstreams": {"app": {"servers": [o.addr]}, "down": {"servers": [dead]}},
            "routes": [{"host": "a.test", "upstream": "app"}, {"host": "down.wild.test", "upstream": "down"}, HELLO],
            "log": {"level": "info", **log}}


def test_access_log_one_json_line_per_request(proxies, origins):
    """stdout carries exactly one JSON object per request, with all fields and correct status/host/sni."""
    o = origins("L")
    dead = f"127.0.0.1:{free_port()}"
    p = proxies(_access_config(o, dead, access="stdout"))
    _traffic(p, o.addr)
    assert p.stop() == 0
    recs = p.access_log()
    assert len(recs) == 6, recs
    for r in recs:
        assert ACCESS_KEYS <= set(r), f"missing {ACCESS_KEYS - set(r)} in {r}"
        assert r["client"].startswith("127.0.0.1")
        assert isinstance(r["duration_ms"], (int, float)) and r["duration_ms"] >= 0
        if r["path"] != "/static":             # proxied: the origin round trip alone takes time
            assert r["duration_ms"] > 0, r
        assert "1.1" in str(r["protocol"])
        assert r["time"]
    by_path = {r["path"].split("?")[0]: r for r in recs if r["path"].split("?")[0] != "/static"}
    # Local responses are timed too (with the clock read when the line is written).
    assert any(r["duration_ms"] > 0 for r in recs if r["path"] == "/static"), recs
    dl = by_path["/bytes"]
    assert (dl["status"], dl["method"], dl["host"], dl["sni"]) == (200, "GET", "a.test", "a.test")
    assert dl["bytes_out"] >= 5000
    assert str(o.port) in str(dl["upstream"])
    assert isinstance(dl["upstream_ms"], (int, float))
    up = by_path["/sha256"]
    assert (up["status"], up["method"]) == (200, "POST")
    assert up["bytes_in"] >= 300
    assert by_path["/status"]["status"] == 404
    bad = by_path["/echo"]
    assert (bad["status"], bad["sni"], bad["host"]) == (502, "down.wild.test", "down.wild.test")
    statics = [r for r in recs if r["path"] == "/static"]
    assert {(r["sni"], r["host"], r["status"]) for r in statics} == {("b.test", "b.test", 200),
                                                                     ("x.wild.test", "other.wild.test", 200)}


def test_access_log_to_file(proxies, origins):
    """log.access naming a file (relative to the config) receives the JSON lines instead of stdout."""
    o = origins("L")
    dead = f"127.0.0.1:{free_port()}"
    p = proxies(_access_config(o, dead, access="access.log"))
    _traffic(p, o.addr)
    assert p.stop() == 0
    recs = p.access_log(p.dir / "access.log")
    assert len(recs) == 6
    assert all(ACCESS_KEYS <= set(r) for r in recs)
    assert p.access_log() == [], "access lines must not also go to stdout"


def test_access_log_keeps_every_line_under_load(proxies):
    """Lines are buffered per loop and written off the loops: many requests from several clients
    on both loops all arrive, each a whole JSON line, without waiting for shutdown."""
    p = proxies({"workers": 2, "tls": standard_tls(), "routes": [HELLO], "log": {"access": "access.log"}})
    clients, per_client = 8, 150
    errors = []

    def client(n):
        try:
            with p.conn("b.test") as c:
                for i in range(per_client):
                    assert c.request("GET", f"/load?c={n}&i={i}", "b.test").status == 200
        except Exception as e:  # noqa: BLE001 - reported below
            errors.append(e)

    threads = [threading.Thread(target=client, args=(n,)) for n in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    log = p.dir / "access.log"
    wait_until(lambda: log.exists() and log.read_text().count("\n") >= clients * per_client, 10, what="every access line")
    recs = p.access_log(log)
    assert sorted(r["path"] for r in recs) == sorted(f"/load?c={n}&i={i}" for n in range(clients) for i in range(per_client))
    assert all(r["status"] == 200 and ACCESS_KEYS <= set(r) for r in recs)
    assert p.stop() == 0


def test_clean_shutdown_writes_the_last_access_lines(proxies):
    """Lines still in a loop's buffer when SIGTERM arrives are written before the process exits."""
    p = proxies({"workers": 2, "tls": standard_tls(), "routes": [HELLO], "log": {"access": "access.log"}})
    for i in range(5):
        assert https_get(p.https_port, f"/last?i={i}", sni="b.test").status == 200
    assert p.stop() == 0  # at once: well within the loops' flush interval
    recs = p.access_log(p.dir / "access.log")
    # Each loop keeps its own order; lines from two loops come in the order their buffers were handed over.
    assert sorted(r["path"] for r in recs) == [f"/last?i={i}" for i in range(5)]
