"""Active health checks (upstreams.NAME.health_check): a stopped origin is taken out after `fall`
failed checks and put back after `rise` passed ones, requests never reach a server marked down,
every server down answers 503 at once, a check expecting another status marks a live origin down,
a reload changes the checks; GET /upstreams and the per-server metrics show it all."""

from __future__ import annotations

import signal
import time

import pytest

from blackhole import Blackhole
from conftest import free_port, standard_tls
from httpclient import HTTPConn, curl
from reload_support import Admin, metric, wait_until

CHECK_PATH = "/status?code=200"
RISE, FALL = 2, 2


def check(**overrides) -> dict:
    c = {"path": CHECK_PATH, "interval": "200ms", "timeout": "1s", "rise": RISE, "fall": FALL}
    c.update(overrides)
    return c


def config(admin_port: int, upstreams: dict, routes: list | None = None, **extra) -> dict:
    cfg = {"workers": 2, "tls": standard_tls(), "admin": {"listen": f"127.0.0.1:{admin_port}"},
           "upstreams": upstreams,
           "routes": routes or [{"upstream": next(iter(upstreams))}]}
    cfg.update(extra)
    return cfg


def servers(admin: Admin, upstream: str) -> dict:
    """address -> that server's entry in GET /upstreams."""
    status, doc = admin.json("GET", "/upstreams")
    assert status == 200
    for u in doc["upstreams"]:
        if u["name"] == upstream:
            return {s["address"]: s for s in u["servers"]}
    raise AssertionError(f"upstream {upstream} not in {doc}")


def proxied(origin) -> int:
    """Requests the proxy forwarded to this origin (health checks excluded)."""
    return sum(1 for h in origin.stats()["heads"] if not h.endswith(CHECK_PATH))


def get(proxy, n: int, path: str = "/echo") -> list[tuple[int, str | None]]:
    """n requests on one keep-alive connection: (status, X-Origin) each."""
    out = []
    with proxy.conn() as c:
        for _ in range(n):
            r = c.request("GET", path)
            out.append((r.status, r.header("x-origin")))
    return out


class Watch:
    """Polls one server's entry and checks the rise/fall rule on every observation: while up it
    has failed fewer than `fall` checks in a row, while down passed fewer than `rise`."""

    def __init__(self, admin: Admin, upstream: str, address: str):
        self.admin, self.upstream, self.address = admin, upstream, address
        self.seen: list[dict] = []

    def poll(self) -> dict:
        s = servers(self.admin, self.upstream)[self.address]
        self.seen.append(s)
        if s["state"] == "up":
            assert s["consecutive_failures"] < FALL, s
        else:
            assert s["consecutive_passes"] < RISE, s
        return s

    def until(self, state: str, timeout: float = 15) -> dict:
        return wait_until(lambda: (s := self.poll())["state"] == state and s, timeout, interval=0.02,
                          what=f"{self.address} {state}")


def test_stopped_origin_is_taken_out_after_fall_checks_and_put_back_after_rise(proxies, origins):
    a, b = origins("A"), origins("B")
    admin_port = free_port()
    p = proxies(config(admin_port, {"app": {"servers": [a.addr, b.addr], "health_check": check()}}))
    admin = Admin(admin_port)
    watch = Watch(admin, "app", a.addr)
    wait_until(lambda: all(s["checks"] >= 1 and s["state"] == "up" for s in servers(admin, "app").values()), 15,
               what="first checks passed")
    assert {o for _, o in get(p, 10)} == {"A", "B"}

    port = a.port
    a.stop()
    down = watch.until("down")
    assert down["consecutive_failures"] >= FALL and down["check_failures"] >= FALL
    assert down["last_check"]["passed"] is False and "status" not in down["last_check"]   # no response at all
    sent_to_a = servers(admin, "app")[a.addr]["requests"]
    results = get(p, 20)
    assert results == [(200, "B")] * 20
    assert servers(admin, "app")[a.addr]["requests"] == sent_to_a     # not even tried
    text = admin.metrics()
    assert metric(text, "edgeproxy_upstream_server_up", upstream="app", server=a.addr) == 0
    assert metric(text, "edgeproxy_upstream_server_up", upstream="app", server=b.addr) == 1
    assert metric(text, "edgeproxy_upstream_health_checks_total", upstream="app", server=a.addr, result="failed") >= FALL
    assert metric(text, "edgeproxy_upstream_requests_total", upstream="app", server=b.addr) >= 25
    assert "upstream app server " + a.addr + " is down after 2 failed health check(s)" in p.stderr()

    a2 = origins("A2", port=port)                          # the same address again
    up = watch.until("up")
    assert up["consecutive_passes"] >= RISE
    assert proxied(a2) == 0                                # only checks until then
    assert {o for _, o in get(p, 20)} == {"A2", "B"}
    assert proxied(a2) > 0
    assert "is up again after 2 passed health check(s)" in p.stderr()
    # Some observations on the way down and back up (the rule was checked on each).
    assert any(s["state"] == "down" for s in watch.seen) and watch.seen[-1]["state"] == "up"


def test_every_server_down_answers_503_and_logs_it(proxies, origins):
    a, b = origins("A"), origins("B")
    admin_port = free_port()
    p = proxies(config(admin_port, {"app": {"servers": [a.addr, b.addr], "health_check": check()}},
                       log={"access": "stdout"}))
    admin = Admin(admin_port)
    wait_until(lambda: all(s["checks"] >= 1 for s in servers(admin, "app").values()), 15, what="first checks")
    a.stop()
    b.stop()
    wait_until(lambda: all(s["state"] == "down" for s in servers(admin, "app").values()), 15, what="both down")
    with p.conn() as c:
        for _ in range(3):
            r = c.request("GET", "/echo")
            assert r.status == 503
            assert b'every server of upstream "app" is down' in r.body
    # HTTP/2 clients get the same answer.
    h2 = curl(p.url("/echo"), resolve=p.resolve(), extra=["--http2", "-k"])
    assert h2.status == 503
    assert "upstream app: every server is down; its routes answer 503" in p.stderr()
    # Written off the loops within a flush interval: three HTTP/1.1 requests and one HTTP/2.
    log = wait_until(lambda: len(echo := [r for r in p.access_log() if r.get("path") == "/echo"]) >= 4 and echo,
                     5, what="access log lines")
    assert all(r["status"] == 503 for r in log)
    assert metric(admin.metrics(), "edgeproxy_upstream_server_up", upstream="app", server=a.addr) == 0


def test_a_server_that_never_answers_is_taken_out_instead_of_holding_requests(proxies):
    """A check that times out fails: the requests that follow get 503 at once, where trying the
    server would have held each one until upstream_response (longer than the client waits)."""
    hole = Blackhole()
    try:
        admin_port = free_port()
        p = proxies(config(admin_port, {"app": {"servers": [hole.addr], "health_check": check(timeout="300ms")}},
                           timeouts={"upstream_response": "60s"}))
        admin = Admin(admin_port)
        s = wait_until(lambda: (s := servers(admin, "app")[hole.addr])["state"] == "down" and s, 15, what="down")
        assert "timed out" in s["last_check"]["detail"] or "timeout" in s["last_check"]["detail"]
        with HTTPConn.tls(p.https_port, "a.test", timeout=10) as c:
            r = c.request("GET", "/echo")
        assert r.status == 503
    finally:
        hole.close()


def test_a_check_expecting_another_status_keeps_requests_off_a_live_origin(proxies, origins):
    a = origins("A")
    admin_port = free_port()
    p = proxies(config(admin_port, {
        "strict": {"servers": [a.addr], "health_check": check(expect="204")},
        "plain": {"servers": [a.addr], "health_check": check()},
    }, routes=[{"path": "/echo", "upstream": "strict"}, {"upstream": "plain"}]))
    admin = Admin(admin_port)
    down = wait_until(lambda: (s := servers(admin, "strict")[a.addr])["state"] == "down" and s, 15, what="strict down")
    assert down["last_check"]["status"] == 200
    assert down["last_check"]["detail"] == "status 200, expected 204"
    assert down["check"]["expect"] == "204"
    assert servers(admin, "plain")[a.addr]["state"] == "up"      # the same origin, checked as it answers
    assert [s for s, _ in get(p, 5, "/echo")] == [503] * 5
    assert proxied(a) == 0
    assert [s for s, _ in get(p, 3, "/status?code=201")] == [201] * 3   # through "plain"
    assert proxied(a) == 3


def test_reload_changes_the_checks(proxies, origins):
    a = origins("A")
    admin_port = free_port()
    upstream = {"servers": [a.addr], "health_check": check()}
    p = proxies(config(admin_port, {"app": upstream}))
    admin = Admin(admin_port)
    wait_until(lambda: servers(admin, "app")[a.addr]["checks"] >= 1, 15, what="first check")
    assert get(p, 1) == [(200, "A")]

    # SIGHUP with a check the origin fails: down, and the new check is what /upstreams shows.
    p.write_config(config(admin_port, {"app": {**upstream, "health_check": check(path="/missing")}}))
    p.send_signal(signal.SIGHUP)
    down = wait_until(lambda: (s := servers(admin, "app")[a.addr])["state"] == "down" and s, 15, what="down after reload")
    assert down["check"]["path"] == "/missing" and down["last_check"]["status"] == 404
    assert get(p, 2) == [(503, None)] * 2

    # Without a health check the server is used again at once.
    p.write_config(config(admin_port, {"app": {"servers": [a.addr]}}))
    status, _ = admin.json("POST", "/reload")
    assert status == 200
    s = servers(admin, "app")[a.addr]
    assert s["state"] == "up" and s["checked"] is False and "check" not in s
    assert get(p, 1) == [(200, "A")]
    checks_then = s["checks"]
    time.sleep(0.6)                                          # three intervals of the old check
    assert servers(admin, "app")[a.addr]["checks"] == checks_then   # no longer checked


def test_upstreams_lists_unchecked_servers_and_counts_their_requests(proxies, origins):
    a = origins("A")
    admin_port = free_port()
    p = proxies(config(admin_port, {"app": {"servers": [a.addr]}}))
    admin = Admin(admin_port)
    assert get(p, 4) == [(200, "A")] * 4
    s = servers(admin, "app")[a.addr]
    assert s["state"] == "up" and s["checked"] is False and s["checks"] == 0 and s["requests"] == 4
    text = admin.metrics()
    assert metric(text, "edgeproxy_upstream_requests_total", upstream="app", server=a.addr) == 4
    assert metric(text, "edgeproxy_upstream_server_up", upstream="app", server=a.addr) == 1
    assert f'edgeproxy_upstream_health_checks_total{{upstream="app",server="{a.addr}"' not in text
    assert proxied(a) == 4


@pytest.mark.parametrize("version, header", [("v1", b"PROXY UNKNOWN\r\n"),
                                             ("v2", b"\r\n\r\n\x00\r\nQUIT\n\x20\x00\x00\x00")])
def test_checks_of_an_origin_behind_proxy_protocol_open_with_a_header_naming_no_client(proxies, version, header):
    """Such an origin expects a header on every connection: checks send the one meant for them
    (v2 LOCAL, v1 UNKNOWN)."""
    from test_proxy_protocol import ProxyOrigin
    origin = ProxyOrigin()
    try:
        admin_port = free_port()
        proxies(config(admin_port, {"app": {"servers": [origin.addr], "proxy_protocol": version,
                                            "health_check": check(path="/")}}))
        admin = Admin(admin_port)
        s = wait_until(lambda: (s := servers(admin, "app")[origin.addr])["checks"] >= 2 and s, 15, what="two checks")
        assert s["state"] == "up" and s["check_failures"] == 0
        assert len(origin.headers) >= 2 and set(origin.headers) == {header}
    finally:
        origin.close()
