"""The cluster fixtures themselves, against the real servers: etcd.EtcdCluster (etcd 3.4) and
loadbalancer.LoadBalancer (HAProxy 2.6). No edgeproxy binary needed. A missing etcd/haproxy fails
these tests with what to install (nothing is skipped)."""

from __future__ import annotations

import http.client
import json
import os
import socket
import ssl
import subprocess
import threading
import time
import urllib.error
import urllib.request

import pytest

import etcd as etcd_mod
import loadbalancer as lb_mod
from conftest import free_port, port_refuses
from etcd import EtcdCluster, EtcdError
from loadbalancer import LoadBalancer, LoadBalancerError
from reload_support import wait_until
from tools import need_tool


def _cluster(path, **kw) -> EtcdCluster:
    try:
        return EtcdCluster(path, **kw)
    except EtcdError as e:
        pytest.fail(str(e), pytrace=False)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    t0 = time.monotonic()
    c = _cluster(tmp_path_factory.mktemp("etcd"), members=3)
    c.startup_s = time.monotonic() - t0
    yield c
    c.stop()


@pytest.fixture
def all_running(cluster):
    """Whatever a test stops, the next test gets all three members back, healthy."""
    yield cluster
    if len(cluster.running()) != len(cluster.members):
        cluster.start_all()


# ----- etcd: plain cluster ---------------------------------------------------------------------

def test_three_members_start_healthy(cluster):
    print(f"\n3-member start-up: {cluster.startup_s:.2f}s")
    assert cluster.startup_s < 10, cluster.describe()
    assert len(set(cluster.endpoints)) == 3 and all(u.startswith("http://127.0.0.1:") for u in cluster.endpoints)
    assert [cluster.health(i) for i in range(3)] == [{"health": "true"}] * 3
    assert cluster.member_endpoint(1) == cluster.endpoints[1]
    r = cluster.etcdctl("endpoint", "health")
    assert r.stderr.count("is healthy") == 3, r.stderr
    members = json.loads(cluster.etcdctl("member", "list", "-w", "json").stdout)["members"]
    assert sorted((m["name"], m["clientURLs"][0]) for m in members) == sorted(
        (f"m{i + 1}", u) for i, u in enumerate(cluster.endpoints))
    assert cluster.leader() in (0, 1, 2)


def test_put_get_round_trip(all_running):
    c = all_running
    rev0 = c.revision()
    c.put("/rt/plain", b"hello")
    assert c.etcdctl("get", "--print-value-only", "/rt/plain").stdout == "hello\n"
    c.etcdctl("put", "/rt/by-etcdctl", "from the CLI")
    assert c.get("/rt/by-etcdctl") == b"from the CLI"
    assert c.get("/rt/missing") is None
    c.put("--looks-like-a-flag", b"still a key")
    assert c.get("--looks-like-a-flag") == b"still a key"
    assert c.revision() == rev0 + 3
    assert c.delete("/rt/plain") == 1 and c.get("/rt/plain") is None
    assert c.delete("/rt/", prefix=True) == 1
    assert c.get_prefix("/rt/") == {}


def test_binary_values_survive_get_prefix(all_running):
    c = all_running
    values = {"/bin/nul": b"a\x00b", "/bin/high": bytes(range(256)), "/bin/newlines": b"\n\r\nend\n\n",
              "/bin/empty": b"", "/bin/big": os.urandom(64 * 1024), "/bin/utf8": "é→✓".encode()}
    for k, v in values.items():
        c.put(k, v)
    c.put("/binary-sibling", b"not under /bin/")
    assert c.get_prefix("/bin/") == values
    c.compact(c.revision())                      # history goes, current values stay
    assert c.get_prefix("/bin/") == values
    r = c.etcdctl("get", "--rev", "2", "/bin/nul", check=False)
    assert r.returncode != 0 and "compacted" in r.stderr, r.stderr


def test_one_member_down_leaves_the_other_two_serving(all_running):
    c = all_running
    leader = c.leader()
    t0 = time.monotonic()
    c.stop_member(leader)                        # SIGTERM: leadership moves to a live peer
    stop_s = time.monotonic() - t0
    assert not c.members[leader].running() and port_refuses(int(c.endpoints[leader].rsplit(":", 1)[1]))
    others = [i for i in range(3) if i != leader]
    wait_until(lambda: all(c.healthy(i) for i in others), 5, what="two members healthy without the leader")
    assert c.leader() in others
    c.put("/quorum/written-with-one-down", b"yes")          # etcdctl still lists the dead endpoint
    for i in others:
        r = c.etcdctl("get", "--print-value-only", "/quorum/written-with-one-down", endpoints=[c.endpoints[i]])
        assert r.stdout == "yes\n"
    c.start_member(leader)                        # same ports and data dir, --initial-cluster-state existing
    # a serializable (local) read on the restarted member: it caught up with what it missed
    wait_until(lambda: c.etcdctl("get", "--consistency=s", "--print-value-only", "/quorum/written-with-one-down",
                                 endpoints=[c.endpoints[leader]]).stdout == "yes\n", 5, what="restarted member caught up")
    print(f"\nstop leader: {stop_s:.2f}s")

    follower = next(i for i in range(3) if i != c.leader())
    c.kill_member(follower)                       # SIGKILL: no clean shutdown
    assert c.members[follower].proc.returncode == -9
    c.put("/quorum/written-while-killed", b"k")
    c.start_member(follower)
    wait_until(lambda: c.etcdctl("get", "--consistency=s", "--print-value-only", "/quorum/written-while-killed",
                                 endpoints=[c.endpoints[follower]]).stdout == "k\n", 5, what="killed member caught up")


def test_stop_all_then_start_all_keeps_the_data(all_running):
    c = all_running
    c.put("/persist/a", b"\x00one")
    c.put("/persist/b", b"two")
    before = c.get_prefix("/persist/")
    rev = c.revision()
    t0 = time.monotonic()
    c.stop_all()
    stop_s = time.monotonic() - t0
    assert c.running() == []
    assert all(port_refuses(int(u.rsplit(":", 1)[1])) for u in c.endpoints)
    r = c.etcdctl("--dial-timeout=1s", "--command-timeout=1s", "get", "/persist/a", check=False, timeout=15)
    assert r.returncode != 0
    t0 = time.monotonic()
    c.start_all()
    start_s = time.monotonic() - t0
    assert c.get_prefix("/persist/") == before
    assert c.revision() == rev
    print(f"\nstop_all {stop_s:.2f}s, start_all {start_s:.2f}s")
    assert stop_s < 5 and start_s < 10, c.describe()


def test_start_up_failure_stops_every_member_and_shows_the_log(tmp_path, monkeypatch):
    spawned: list[subprocess.Popen] = []
    real_popen = subprocess.Popen

    def recording_popen(*a, **kw):
        p = real_popen(*a, **kw)
        spawned.append(p)
        return p

    monkeypatch.setattr(etcd_mod.subprocess, "Popen", recording_popen)
    with pytest.raises(EtcdError) as e:           # etcd refuses the flag and exits
        EtcdCluster(tmp_path / "bad-flag", members=3, extra_args=["--snapshot-count", "lots"])
    assert "not running" in str(e.value) and "lots" in str(e.value), str(e.value)
    monkeypatch.setattr(EtcdCluster, "healthy", lambda self, i: False)
    with pytest.raises(EtcdError) as e:           # running, never healthy: the deadline passes
        EtcdCluster(tmp_path / "never-healthy", members=3, timeout=1.0)
    assert "not healthy within 1.0s" in str(e.value) and "m1.log tail" in str(e.value)
    assert len(spawned) == 6 and all(p.poll() is not None for p in spawned)


def test_missing_binaries_fail_naming_the_package(monkeypatch, tmp_path):
    monkeypatch.setattr(etcd_mod, "ETCD", "/nonexistent/etcd")
    with pytest.raises(EtcdError, match="etcd-server"):
        EtcdCluster(tmp_path / "e")
    monkeypatch.setattr(lb_mod, "HAPROXY", "/nonexistent/haproxy")
    with pytest.raises(LoadBalancerError, match="Debian package haproxy"):
        LoadBalancer(tmp_path / "lb", {"x": (free_port(), ["127.0.0.1:1"])})


# ----- etcd: TLS and auth ----------------------------------------------------------------------

def test_tls_cluster_requires_a_client_certificate(tmp_path):
    with _cluster(tmp_path / "etcd-tls", members=3, tls=True) as c:
        assert all(u.startswith("https://127.0.0.1:") for u in c.endpoints)
        assert c.ca_file.exists() and c.client_cert.exists() and c.client_key.exists()
        c.put("/tls/k", b"\x00secret")                      # etcdctl --cacert --cert --key
        assert c.get_prefix("/tls/") == {"/tls/k": b"\x00secret"}
        url = c.member_endpoint(0) + "/health"

        with_cert = ssl.create_default_context(cafile=str(c.ca_file))
        with_cert.load_cert_chain(str(c.client_cert), str(c.client_key))
        with urllib.request.urlopen(url, context=with_cert, timeout=5) as r:
            assert json.loads(r.read())["health"] == "true"

        without = ssl.create_default_context(cafile=str(c.ca_file))     # verifies the server, no client cert
        with pytest.raises((ssl.SSLError, ConnectionError, urllib.error.URLError)):
            urllib.request.urlopen(url, context=without, timeout=5).read()

        r = subprocess.run([need_tool("curl", "curl"), "-sS", "--max-time", "5", "--cacert", str(c.ca_file), url],
                           capture_output=True, text=True, timeout=15)
        assert r.returncode != 0 and "health" not in r.stdout, (r.returncode, r.stdout, r.stderr)

        r = subprocess.run([etcd_mod.ETCDCTL, "--endpoints", ",".join(c.endpoints), "--cacert", str(c.ca_file),
                            "--dial-timeout", "1s", "--command-timeout", "1s", "get", "/tls/k"],
                           capture_output=True, text=True, timeout=20, env=c.etcdctl_env())
        assert r.returncode != 0 and "secret" not in r.stdout, r.stdout

        with pytest.raises((urllib.error.URLError, ConnectionError, http.client.HTTPException)):  # plain HTTP: nothing
            urllib.request.urlopen(url.replace("https://", "http://"), timeout=5).read()

        c.stop_member(1)                                 # peer traffic is TLS too: a restart rejoins
        c.start_member(1)
        assert c.etcdctl("get", "--consistency=s", "--print-value-only", "/tls/k",
                         endpoints=[c.endpoints[1]]).stdout.startswith("\x00secret")


def test_auth_mode_needs_the_root_password(tmp_path):
    with _cluster(tmp_path / "etcd-auth", members=1, auth=True) as c:
        assert c.username == "root" and c.password
        c.put("/auth/k", b"v")                            # etcdctl --user root:<password>
        assert c.get("/auth/k") == b"v"
        r = c.etcdctl("get", "/auth/k", auth=False, check=False)
        assert r.returncode != 0 and "user name is empty" in r.stderr, r.stderr
        r = c.etcdctl("--user", "root:wrong", "get", "/auth/k", auth=False, check=False)
        assert r.returncode != 0 and "authentication failed" in r.stderr, r.stderr
        assert c.healthy(0)                               # /health needs no credentials


# ----- HAProxy -----------------------------------------------------------------------------------

class NameServer:
    """A TCP server on 127.0.0.1 that writes its name to every connection and closes it."""

    def __init__(self, name: str):
        self.name = name
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(128)
        self.addr = f"127.0.0.1:{self.sock.getsockname()[1]}"
        self.accepted = 0
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.accepted += 1
            try:
                conn.sendall(self.name.encode())
            except OSError:
                pass                      # HAProxy's TCP checks connect and hang up at once
            finally:
                conn.close()

    def stop(self):
        try:
            self.sock.shutdown(socket.SHUT_RDWR)     # wakes accept() and stops listening; close() alone does not
        except OSError:
            pass
        self.sock.close()
        self.thread.join(5)


@pytest.fixture
def name_servers():
    made: list[NameServer] = []

    def make(name: str) -> NameServer:
        s = NameServer(name)
        made.append(s)
        return s

    yield make
    for s in made:
        s.stop()


def ask(port: int) -> str:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        s.settimeout(5)
        data = b""
        while chunk := s.recv(64):
            data += chunk
        return data.decode()


def _lb(path, frontends, **kw) -> LoadBalancer:
    try:
        return LoadBalancer(path, frontends, **kw)
    except LoadBalancerError as e:
        pytest.fail(str(e), pytrace=False)


def test_haproxy_round_robins_and_drops_a_stopped_backend(tmp_path, name_servers):
    a, b, c = name_servers("A"), name_servers("B"), name_servers("C")
    web, other = free_port(), free_port()
    with _lb(tmp_path / "lb", {"web": (web, [a.addr, b.addr]), "other": (other, [c.addr])}) as lb:
        assert lb.server_states("web") == {a.addr: "UP", b.addr: "UP"}
        answers = [ask(web) for _ in range(8)]
        assert sorted(answers) == ["A"] * 4 + ["B"] * 4 and answers[0] != answers[1], answers
        assert [ask(other) for _ in range(2)] == ["C", "C"]

        b.stop()
        wait_until(lambda: lb.server_states("web")[b.addr] == "DOWN", 3, what="HAProxy marking B down")
        assert [ask(web) for _ in range(6)] == ["A"] * 6

        d = name_servers("D")                             # reload with a new server list
        t0 = time.monotonic()
        lb.set_backends("web", [a.addr, d.addr])
        print(f"\nHAProxy reload: {time.monotonic() - t0:.2f}s")
        assert lb.server_states("web") == {a.addr: "UP", d.addr: "UP"}
        assert sorted(ask(web) for _ in range(4)) == ["A", "A", "D", "D"]
        assert [ask(other) for _ in range(2)] == ["C", "C"]  # the other frontend is untouched

        lb.set_backends("web", [d.addr], reload=False)    # full restart on the same ports
        assert [ask(web) for _ in range(3)] == ["D"] * 3
        master = lb.proc
    assert master.poll() is not None
    assert port_refuses(web) and port_refuses(other)


def test_haproxy_refused_config_is_reported(tmp_path):
    with pytest.raises(LoadBalancerError, match="haproxy rejected the configuration"):
        LoadBalancer(tmp_path / "lb", {"web": (free_port(), ["not-an-address"])})
