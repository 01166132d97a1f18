"""The admin dashboard (issue #14) in a real browser: headless Chromium signs in with the token
(`?token=` sets the session cookie), runs the page's script against a running node, and the
rendered DOM is checked: certificates with the right days left and colour, upstream servers and
their health, live counters that move while a client makes requests, cluster nodes with a
cluster. A screenshot is kept in Tests/Integration/artifacts/ (git-ignored) to look at."""

from __future__ import annotations

import datetime
import math
import re
import shutil
import subprocess
import threading
from pathlib import Path

import pytest

from conftest import free_port, standard_tls, wait_for_port
from httpclient import HTTPConn, client_context
from reload_support import Admin, wait_until

TOKEN = "dashboard-test-token-0123456789"
ARTIFACTS = Path(__file__).resolve().parent / "artifacts"


def chromium() -> str:
    path = shutil.which("chromium")
    if not path:
        pytest.fail("chromium is missing: apt-get install chromium (make test installs it)", pytrace=False)
    return path


class Browser:
    """One fresh headless Chromium per visit (own profile: no cookie carried over). The virtual
    time budget lets the page's 2 s polls run a few times before the DOM is taken."""

    def __init__(self, tmp_path: Path):
        self.binary, self.tmp, self.visits = chromium(), tmp_path, 0

    def run(self, url: str, *args: str, budget_ms: int = 5000) -> str:
        self.visits += 1
        r = subprocess.run([self.binary, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                            "--no-first-run", "--hide-scrollbars", f"--user-data-dir={self.tmp / f'chromium-{self.visits}'}",
                            f"--virtual-time-budget={budget_ms}", *args, url],
                           capture_output=True, text=True, timeout=120)
        assert r.returncode == 0, f"chromium exited {r.returncode}:\n{r.stderr[-3000:]}"
        return r.stdout

    def dom(self, url: str, **kw) -> str:
        dom = self.run(url, "--dump-dom", **kw)
        assert 'id="certs"' in dom, f"not the dashboard:\n{dom[:2000]}"
        polls = re.search(r'data-polls="(\d+)"', dom)
        assert polls and int(polls[1]) >= 2, "the page's script did not poll the API twice:\n" + text_of(dom, "live")
        return dom


def text_of(dom: str, element_id: str) -> str:
    m = re.search(rf'id="{element_id}"[^>]*>(.*?)</', dom, re.S)
    assert m, f"no #{element_id} in the page"
    return m[1].strip()


def number(dom: str, element_id: str) -> float:
    return float(text_of(dom, element_id).replace(",", ""))


def row(dom: str, attribute: str, value: str) -> str:
    m = re.search(rf'<tr data-{attribute}="{re.escape(value)}">(.*?)</tr>', dom, re.S)
    assert m, f"no row for {attribute} {value}"
    return m[1]


def days_left(not_after: str) -> int:
    """As the CLI's `certs list` counts them: whole days from now, rounded down."""
    end = datetime.datetime.fromisoformat(not_after.replace("Z", "+00:00"))
    return math.floor((end - datetime.datetime.now(datetime.timezone.utc)).total_seconds() / 86400)


class Client(threading.Thread):
    """Keep-alive HTTPS requests until stopped, to move the counters while the page watches."""

    def __init__(self, port: int):
        super().__init__(daemon=True)
        self.port, self.halt, self.done = port, threading.Event(), 0

    def run(self):
        with HTTPConn.tls(self.port, "a.test", ctx=client_context()) as c:
            while not self.halt.is_set():
                assert c.request("GET", "/status?code=200", host="a.test").status == 200
                self.done += 1

    def stop(self):
        self.halt.set()
        self.join(15)


def test_dashboard_in_a_real_browser(proxies, origins, pki, tmp_path):
    origin = origins("app")
    port = free_port()
    p = proxies({"tls": standard_tls(), "admin": {"listen": f"127.0.0.1:{port}", "token": TOKEN},
                 "upstreams": {"app": {"servers": [origin.addr, "127.0.0.1:9"],
                                       "health_check": {"path": "/status?code=200", "interval": "200ms", "timeout": "1s",
                                                        "rise": 1, "fall": 1}}},
                 "routes": [{"upstream": "app"}], "log": {"access": "off"}})
    wait_for_port(port)
    admin = Admin(port, TOKEN)
    # Three colours: a week or less left is red, under three weeks amber, the rest green.
    for name, days in [("soon.test", 5), ("later.test", 15)]:
        leaf = pki.issue([name], days=days)
        assert admin.request("PUT", f"/certificates/{name}", leaf.chain_pem + leaf.key_pem)[0] == 200
    wait_until(lambda: all(c["checked"] for c in admin.json("GET", "/certificates")[1]), 20, what="certificates checked")
    wait_until(lambda: {s["state"] for s in admin.json("GET", "/upstreams")[1]["upstreams"][0]["servers"]} == {"up", "down"}, 15,
               what="one server up, the dead one down")
    listing = {c["name"]: c for c in admin.json("GET", "/certificates")[1]}

    browser = Browser(tmp_path)
    # Without the token the browser gets the login form, never the data.
    login = browser.run(f"http://127.0.0.1:{port}/dashboard", "--dump-dom", budget_ms=1000)
    assert 'action="/dashboard/login"' in login and 'id="certs"' not in login

    url = f"http://127.0.0.1:{port}/dashboard?token={TOKEN}"
    first = browser.dom(url)
    for name, colour in [("a.test", "ok"), ("later.test", "warn"), ("soon.test", "bad")]:
        cells = row(first, "cert", name)
        shown = re.search(r'data-days="(-?\d+)"><span class="badge (\w+)">', cells)
        assert shown, cells
        expected = days_left(listing[name]["not_after"])
        assert int(shown[1]) in (expected, expected - 1), (name, shown[1], expected)  # a day may turn between the two
        assert shown[2] == colour, (name, cells)
    assert "Test CA" in row(first, "cert", "a.test") or listing["a.test"]["issuer"] in row(first, "cert", "a.test")
    assert 'badge ok">up<' in row(first, "server", origin.addr)
    assert 'badge bad">down<' in row(first, "server", "127.0.0.1:9")
    assert 'id="cluster" hidden' in first  # no cluster here

    # Requests made between two visits show in the totals; during the second visit, in the rates.
    before = number(first, "requests-total")
    client = Client(p.https_port)
    client.start()
    try:
        wait_until(lambda: client.done >= 20, 30, what="20 requests")
        second = browser.dom(url, budget_ms=7000)
        shot = tmp_path / "dashboard.png"
        browser.run(url, f"--screenshot={shot}", "--window-size=1280,900", budget_ms=7000)
    finally:
        client.stop()
    assert number(second, "requests-total") >= before + 20, (before, text_of(second, "requests-total"))
    assert number(second, "rps") > 0, text_of(second, "rps")
    assert number(second, "open-connections") >= 1
    assert "2xx" in text_of(second, "classes-text") or re.search(r'class="class-rate">2xx [0-9.,]+/s', second)
    assert shot.stat().st_size > 10_000 and shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    ARTIFACTS.mkdir(exist_ok=True)
    shutil.copy(shot, ARTIFACTS / "dashboard.png")


def test_dashboard_lists_cluster_nodes(proxies, tmp_path):
    from etcd import EtcdCluster, new_sealing_key, node_config
    etcd = EtcdCluster(tmp_path / "etcd", members=1)
    try:
        port = free_port()
        proxies(node_config(etcd, "/dashboard-test/", "dash-node", [new_sealing_key(tmp_path)], port), standard_certs=False)
        wait_for_port(port)
        wait_until(lambda: Admin(port).json("GET", "/cluster")[1]["nodes"], 15, what="the node registered in etcd")
        # No token: loopback clients see the page directly.
        dom = Browser(tmp_path).dom(f"http://127.0.0.1:{port}/")
        assert 'id="cluster" hidden' not in dom
        assert "dash-node (this node)" in row(dom, "node", "dash-node")
        assert "etcd connected" in text_of(dom, "cluster-summary")
    finally:
        etcd.stop()
