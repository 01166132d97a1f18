"""The cluster (issue #9) end to end: several real edgeproxy nodes share certificates through a
real 3-member etcd cluster (etcd.py), with private keys sealed, a local cache for outages, and
every node serving what any node stored.

One etcd cluster serves the whole module; each test writes under a prefix of its own.
"""

from __future__ import annotations

import base64
import hashlib
import re
import json
import os
import signal
import subprocess
import threading
import time
import uuid

import pytest

from conftest import free_port, to_yaml, wait_for_port
from etcd import EtcdCluster, new_sealing_key, node_config
from httpclient import client_context, handshake_cert, tls_connect
from blackhole import Blackhole
from watchgate import WatchGate
from reload_support import Admin, metric, record_result, wait_until
from tools import need_tool

SYNC_TIMEOUT = 10


@pytest.fixture(scope="module")
def etcd(tmp_path_factory):
    cluster = EtcdCluster(tmp_path_factory.mktemp("etcd"), members=3)
    yield cluster
    cluster.stop()


@pytest.fixture
def sealing_key(tmp_path):
    return new_sealing_key(tmp_path)


class Node:
    """One edgeproxy node of a test cluster: its proxy, admin API and ports."""

    def __init__(self, proxy, admin_port: int, name: str):
        self.proxy, self.admin, self.name = proxy, Admin(admin_port), name

    @property
    def port(self) -> int:
        return self.proxy.https_port

    def serial(self, sni: str) -> int | None:
        """The serial served for `sni` (None when the handshake fails)."""
        try:
            return handshake_cert(self.port, sni, timeout=2)["serial"]
        except OSError:
            return None

    def cluster(self) -> dict:
        status, body = self.admin.json("GET", "/cluster")
        assert status == 200, body
        return body


@pytest.fixture
def fleet(proxies, etcd, sealing_key):
    """fleet(n) → n started nodes on a fresh prefix sharing one sealing key."""
    prefix = f"/t-{uuid.uuid4().hex[:8]}/"

    def make(n: int = 3, keys=None, names=None, **cluster) -> list[Node]:
        nodes = []
        for i in range(n):
            name = (names or ["a", "b", "c", "d"])[i]
            admin = free_port()
            p = proxies(node_config(etcd, prefix, name, keys or [sealing_key], admin, **cluster),
                        standard_certs=False, name=f"node-{name}-{uuid.uuid4().hex[:4]}")
            nodes.append(Node(p, admin, name))
        for node in nodes:
            wait_until(lambda: node.cluster()["etcd_connected"], SYNC_TIMEOUT, what=f"node {node.name} in sync with etcd")
        return nodes
    make.prefix = prefix
    return make


def put_certificate(node: Node, name: str, leaf) -> dict:
    status, _, body = node.admin.request("PUT", f"/certificates/{name}", leaf.chain_pem + leaf.key_pem)
    assert status == 200, body
    return json.loads(body)


def wait_served(nodes, sni: str, serial: int, timeout: float = SYNC_TIMEOUT) -> None:
    for node in nodes:
        wait_until(lambda: node.serial(sni) == serial, timeout, interval=0.005,
                   what=f"node {node.name} serving serial {serial:x} for {sni}")


def test_a_certificate_stored_on_one_node_serves_on_every_node(fleet, pki, etcd):
    a, b, c = fleet(3)
    leaf = pki.issue(["shared.cluster.test"])
    put_certificate(a, "shared.cluster.test", leaf)
    wait_served([a, b, c], "shared.cluster.test", leaf.serial)
    for node in (a, b, c):
        listed = node.admin.json("GET", "/certificates")[1]
        entry = next(e for e in listed if e["name"] == "shared.cluster.test")
        assert entry["source"] == "cluster" and entry["serial"] == f"{leaf.serial:X}".lstrip("0") or entry["serial"], entry

    # 100 updates, each stored on a node in turn: every node serves each new serial.
    lags = []
    for i in range(100):
        leaf = pki.issue(["shared.cluster.test"])
        writer = (a, b, c)[i % 3]
        t0 = time.monotonic()
        put_certificate(writer, "shared.cluster.test", leaf)
        stored = time.monotonic()
        others = [n for n in (a, b, c) if n is not writer]
        wait_served(others, "shared.cluster.test", leaf.serial)
        lags.append(time.monotonic() - stored)
        assert writer.serial("shared.cluster.test") == leaf.serial
    lags.sort()
    record_result("cluster_store_to_served", {"updates": len(lags), "p50_ms": round(lags[49] * 1000, 1),
                                              "p99_ms": round(lags[98] * 1000, 1), "max_ms": round(lags[-1] * 1000, 1)})
    # Every node knows the others and how far they synced.
    members = a.cluster()["nodes"]
    assert sorted(m["node"] for m in members) == ["a", "b", "c"], members
    text = b.admin.metrics()
    assert metric(text, "edgeproxy_cluster_etcd_connected") == 1
    assert metric(text, "edgeproxy_cluster_revision_applied") >= etcd.revision() - 5


def test_delete_on_any_node_removes_the_certificate_everywhere(fleet, pki):
    a, b, c = fleet(3)
    keep, gone = pki.issue(["keep.cluster.test"]), pki.issue(["gone.cluster.test"])
    put_certificate(a, "keep.cluster.test", keep)
    put_certificate(a, "gone.cluster.test", gone)
    wait_served([a, b, c], "gone.cluster.test", gone.serial)
    status, _, body = c.admin.request("DELETE", "/certificates/gone.cluster.test")
    assert status == 200, body
    for node in (a, b, c):
        wait_until(lambda: node.serial("gone.cluster.test") != gone.serial, SYNC_TIMEOUT,
                   what=f"node {node.name} no longer serving the deleted certificate")
        assert node.serial("keep.cluster.test") == keep.serial
        assert not any(e["name"] == "gone.cluster.test" for e in node.admin.json("GET", "/certificates")[1])


def test_no_private_key_in_etcd_and_bad_records_are_refused(fleet, pki, etcd, tmp_path, sealing_key):
    a, b = fleet(2)
    leaf = pki.issue(["sealed.cluster.test"])
    put_certificate(a, "sealed.cluster.test", leaf)
    wait_served([a, b], "sealed.cluster.test", leaf.serial)
    everything = etcd.get_prefix("/")
    assert everything, "nothing in etcd"
    for key, value in everything.items():
        assert b"PRIVATE KEY" not in value, key
        assert leaf.key_pem.split(b"\n")[1] not in value, key   # not even a line of the key's base64
    prefix = fleet.prefix
    record = everything[f"{prefix}certificates/sealed.cluster.test"]
    assert json.loads(record)["names"] == ["sealed.cluster.test"]

    # A record copied to another key does not open there (the key is the seal's associated data).
    etcd.put(f"{prefix}certificates/moved.cluster.test", record)
    # A corrupt record over a good one: refused, the good certificate keeps serving.
    etcd.put(f"{prefix}certificates/sealed.cluster.test", b"{not json")
    for node in (a, b):
        wait_until(lambda: f"{prefix}certificates/moved.cluster.test refused" in node.proxy.stderr()
                   and f"{prefix}certificates/sealed.cluster.test refused" in node.proxy.stderr(),
                   SYNC_TIMEOUT, what=f"node {node.name} refusing both bad records")
        assert node.serial("sealed.cluster.test") == leaf.serial
        assert not any(e["name"] == "moved.cluster.test" for e in node.admin.json("GET", "/certificates")[1])
        assert metric(node.admin.metrics(), "edgeproxy_cluster_records_refused_total") >= 2
        assert node.cluster()["refused"] >= 2

    # A record whose sealed key (properly sealed, with the fleet's key) does not match its chain.
    other = pki.issue(["mismatch.cluster.test"])
    mismatch_key = f"{prefix}certificates/mismatch.cluster.test"
    bad = json.loads(record)
    bad["names"], bad["chain"] = ["mismatch.cluster.test"], other.chain_pem.decode()
    bad["sealed_key"] = base64.b64encode(seal(sealing_key.read_bytes(), leaf.key_pem, mismatch_key)).decode()
    etcd.put(mismatch_key, json.dumps(bad).encode())
    for node in (a, b):
        wait_until(lambda: f"{mismatch_key} refused" in node.proxy.stderr(), SYNC_TIMEOUT,
                   what=f"node {node.name} refusing a record whose key does not match its chain")
        assert node.serial("mismatch.cluster.test") != other.serial

    # A node with another sealing key cannot open the fleet's records: refused, logged.
    other_key = tmp_path / "other.key"
    other_key.write_bytes(os.urandom(32))
    etcd.put(f"{prefix}certificates/sealed.cluster.test", record)
    (stranger,) = fleet(1, keys=[other_key], names=["d"])
    wait_until(lambda: f"{prefix}certificates/sealed.cluster.test refused" in stranger.proxy.stderr(), SYNC_TIMEOUT,
               what="the node with a foreign sealing key refusing the record")
    assert stranger.serial("sealed.cluster.test") != leaf.serial


def seal(key: bytes, plaintext: bytes, context: str) -> bytes:
    """The sealed-record format (Sources/Cluster/Sealer.swift): "eps", version 1, the key's id
    (first 8 bytes of its SHA-256), a 12-byte nonce, AES-256-GCM ciphertext + tag, with the header
    and the record's etcd key as associated data."""
    import hashlib
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM
    header = b"eps\x01" + hashlib.sha256(key).digest()[:8]
    nonce = os.urandom(12)
    return header + nonce + AESGCM(key).encrypt(nonce, plaintext, header + context.encode())


def test_sealing_key_rotation_opens_old_records(fleet, pki, tmp_path, sealing_key):
    (a,) = fleet(1)
    leaf = pki.issue(["rotate.cluster.test"])
    put_certificate(a, "rotate.cluster.test", leaf)
    a.proxy.stop()
    # A node whose first key is new still opens what the old key sealed.
    new_key = tmp_path / "new.key"
    new_key.write_bytes(os.urandom(32))
    (b,) = fleet(1, keys=[new_key, sealing_key], names=["b"])
    wait_served([b], "rotate.cluster.test", leaf.serial)
    # Re-seal everything under the new key; then a node with the new key alone opens it all.
    r = subprocess.run([str(b.proxy.binary), "cluster", "reseal", "--config", str(b.proxy.config_path)],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0 and "re-sealed" in r.stdout, r.stdout + r.stderr
    b.proxy.stop()
    (c,) = fleet(1, keys=[new_key], names=["c"])
    wait_served([c], "rotate.cluster.test", leaf.serial)
    assert "refused" not in c.proxy.stderr(), c.proxy.stderr()


def test_import_moves_a_single_node_into_the_cluster(fleet, proxies, pki, etcd, sealing_key, tmp_path):
    # A single node's certificate directory, imported into etcd: the fleet serves it, no re-issue.
    single = tmp_path / "single"
    first, second = pki.issue(["one.import.test"]), pki.issue(["two.import.test"])
    first.write(single / "certs", "one.import.test")
    second.write(single / "certs", "two.import.test")
    config = node_config(etcd, fleet.prefix, "importer", [sealing_key], free_port())
    config["tls"] = {"certificate_dir": str(single / "certs")}
    (single / "config.yaml").write_text(to_yaml(config) + "\n")
    from conftest import edgeproxy_path
    r = subprocess.run([str(edgeproxy_path()), "cluster", "import", "--config", str(single / "config.yaml")],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0 and "imported 2 certificate(s)" in r.stdout, r.stdout + r.stderr
    a, b = fleet(2)
    wait_served([a, b], "one.import.test", first.serial)
    wait_served([a, b], "two.import.test", second.serial)


def test_etcd_down_keeps_serving_and_a_restarted_node_serves_from_its_cache(fleet, pki, etcd, proxies):
    a, b = fleet(2)
    leaf = pki.issue(["outage.cluster.test"])
    put_certificate(a, "outage.cluster.test", leaf)
    wait_served([a, b], "outage.cluster.test", leaf.serial)

    # Stopping one member of three changes nothing.
    etcd.stop_member(2)
    try:
        late = pki.issue(["late.cluster.test"])
        put_certificate(b, "late.cluster.test", late)
        wait_served([a, b], "late.cluster.test", late.serial)
    finally:
        etcd.start_member(2)

    failures, done = [], threading.Event()
    count = [0]

    def hammer():   # node a serves throughout: every handshake must get the certificate
        while not done.is_set():
            if a.serial("outage.cluster.test") != leaf.serial:
                failures.append(time.monotonic())
            count[0] += 1

    etcd.stop_all()
    try:
        t = threading.Thread(target=hammer)
        t.start()
        wait_until(lambda: not a.cluster()["etcd_connected"] and not b.cluster()["etcd_connected"], SYNC_TIMEOUT,
                   what="both nodes noticing the outage")
        status, _, body = a.admin.request("GET", "/healthz")
        assert status == 200 and b"etcd unreachable" in body, body
        assert metric(a.admin.metrics(), "edgeproxy_cluster_etcd_connected") == 0
        # Storing needs etcd: a clear refusal, nothing changed.
        x = pki.issue(["x.cluster.test"])
        status, _, body = a.admin.request("PUT", "/certificates/x.cluster.test", x.chain_pem + x.key_pem)
        assert status == 503 and b"nothing changed" in body, body
        # A node restarted during the outage serves what it had, from its cache.
        b.proxy.stop()
        b.proxy.start()
        assert b.serial("outage.cluster.test") == leaf.serial
        assert b.serial("late.cluster.test") == late.serial
        time.sleep(1)
        done.set()
        t.join()
    finally:
        done.set()
        etcd.start_all()
    assert count[0] > 20
    assert failures == [], f"{len(failures)} of {count[0]} handshakes failed while etcd was down"
    wait_until(lambda: b.cluster()["etcd_connected"], 20, what="node b back in sync after the outage")
    again = pki.issue(["outage.cluster.test"])
    put_certificate(b, "outage.cluster.test", again)
    wait_served([a, b], "outage.cluster.test", again.serial)


# ----- ACME across the fleet -------------------------------------------------------------------

from loadbalancer import LoadBalancer  # noqa: E402
from pebble import Pebble  # noqa: E402

ISSUE_TIMEOUT = 60


@pytest.fixture
def acme_fleet(proxies, etcd, sealing_key, tmp_path):
    """acme_fleet(names, nodes=3, behind=None) → (nodes, pebble, lb): every node manages the same
    names; Pebble validates through HAProxy, whose backends are the nodes listed in `behind`
    (default: all of them)."""
    made = {"pebble": [], "lb": []}
    prefix = f"/acme-{uuid.uuid4().hex[:8]}/"

    def make(names, n: int = 3, behind=None, managers=None, challenges=("http-01",), validation=None, node_cluster=None, **acme):
        http_lb, tls_lb = free_port(), free_port()
        # No nonce rejections here, so Pebble's log counts every account and order exactly once.
        pebble = Pebble(tmp_path / "pebble", http_lb, tls_lb, nonce_reject=0)
        made["pebble"].append(pebble)
        ports = [{"https": free_port(), "http": free_port(), "admin": free_port()} for _ in range(n)]
        members = [ports[i] for i in (behind if behind is not None else range(n))]
        lb = LoadBalancer(tmp_path / "lb", {
            "http01": (http_lb, validation or [f"127.0.0.1:{p['http']}" for p in members]),
            "tlsalpn01": (tls_lb, validation or [f"127.0.0.1:{p['https']}" for p in members])},
            # The nodes start with the test and order at once: no health checks that would mark
            # them down for their first moments; a refused connect goes to the next node.
            check_inter_ms=None)
        made["lb"].append(lb)
        nodes = []
        for i, p in enumerate(ports):
            name = "abcd"[i]
            config = node_config(etcd, prefix, name, [sealing_key], p["admin"])
            config["listen"] = {"https": [f"127.0.0.1:{p['https']}"], "http": [f"127.0.0.1:{p['http']}"]}
            config["cluster"].update((node_cluster or {}).get(i, {}))   # e.g. {1: {"endpoints": [...]}}
            if managers is None or i in managers:
                config["acme"] = pebble.acme_section(names, challenges=list(challenges), **acme)
            proxy = proxies(config, standard_certs=False, start=False, name=f"acme-{name}-{uuid.uuid4().hex[:4]}")
            nodes.append(Node(proxy, p["admin"], name))
        for node in nodes:        # as close to the same instant as the test can
            node.proxy.start(wait=False)
        for node in nodes:
            wait_for_port(node.port, proc=node.proxy.proc)
            wait_for_port(node.proxy.admin_port, proc=node.proxy.proc)   # binds after the listeners
        return nodes, pebble, lb
    make.prefix = prefix
    yield make
    for lb in made["lb"]:
        lb.stop()
    for p in made["pebble"]:
        p.stop()


def acme_entry(node: Node, name: str) -> dict:
    status, body = node.admin.json("GET", "/acme")
    assert status == 200, body
    return next(c for c in body["certificates"] if c["name"] == name)


def acme_serial(node: Node, name: str):
    return acme_entry(node, name)["serial"]


def test_nodes_started_together_share_one_account_and_one_order_per_name(acme_fleet, etcd):
    names = ["one.fleet.test", ["two.fleet.test", "www.two.fleet.test"]]
    nodes, pebble, _ = acme_fleet(names)
    served = {}
    for primary in ("one.fleet.test", "two.fleet.test"):
        wait_until(lambda: acme_serial(nodes[0], primary), ISSUE_TIMEOUT, what=f"{primary} issued")
        serial = int(acme_serial(nodes[0], primary), 16)
        wait_served(nodes, primary, serial)
        served[primary] = serial
    wait_served(nodes, "www.two.fleet.test", served["two.fleet.test"])
    log = pebble.log()
    accounts = [int(n) for n in re.findall(r"There are now (\d+) accounts in memory", log)]
    assert accounts == [1], "not exactly one account:\n" + log[-3000:]
    assert pebble.requests("/order-plz") == 2, "more than one order per name:\n" + log[-3000:]
    # Every node's ACME schedule follows the same certificate (the others found it under the lock),
    # and the same renewal time: the first node's draw, agreed through etcd.
    for node in nodes:
        for primary, serial in served.items():
            wait_until(lambda: acme_serial(node, primary) and int(acme_serial(node, primary), 16) == serial, SYNC_TIMEOUT,
                       what=f"node {node.name}'s ACME status for {primary}")
    for primary in served:
        plans = {node.name: acme_entry(node, primary)["renew_at"] for node in nodes}
        assert len(set(plans.values())) == 1 and None not in plans.values(), plans
    # The answers and the nodes' acknowledgements are gone from etcd once the orders are done.
    leftovers = [k for k in etcd.get_prefix(acme_fleet.prefix + "acme/") if "/challenges/" in k or "/acks/" in k]
    assert leftovers == [], leftovers


def test_validation_reaching_only_nodes_that_did_not_order(acme_fleet):
    # Node a alone manages the name; the CA's validation can only reach b and c.
    nodes, pebble, _ = acme_fleet(["far.fleet.test"], n=3, behind=[1, 2], managers=[0])
    a, b, c = nodes
    wait_until(lambda: acme_serial(a, "far.fleet.test"), ISSUE_TIMEOUT, what="far.fleet.test issued through b and c")
    serial = int(acme_serial(a, "far.fleet.test"), 16)
    wait_served([a, b, c], "far.fleet.test", serial)
    assert pebble.requests("/order-plz") == 1


def test_a_node_killed_holding_the_lock_is_taken_over_after_its_lease(acme_fleet, etcd):
    hole = Blackhole()
    try:
        nodes, pebble, lb = acme_fleet(["kill.fleet.test"], n=3, validation=[hole.addr])
        holder = wait_until(lambda: next((v.decode() for k, v in etcd.get_prefix("/").items()
                                          if k.endswith("/locks/certificate-kill.fleet.test")), None),
                            ISSUE_TIMEOUT, interval=0.02, what="a node holding the name's lock")
        victim = next(n for n in nodes if n.name == holder)
        # The CA is validating (held at the black hole): the holder dies with the lock.
        wait_until(lambda: "kill.fleet.test" in pebble.log() and "Attempting to validate" in pebble.log(), ISSUE_TIMEOUT,
                   what="Pebble validating")
        victim.proxy.kill()
        survivors = [n for n in nodes if n is not victim]
        lb.set_backends("http01", [f"127.0.0.1:{n.proxy.http_port}" for n in survivors])
        lb.set_backends("tlsalpn01", [f"127.0.0.1:{n.port}" for n in survivors])
        killed_at = time.monotonic()
        wait_until(lambda: any(acme_entry(n, "kill.fleet.test")["serial"] for n in survivors), ISSUE_TIMEOUT,
                   what="another node completing the certificate")
        taken_over = time.monotonic() - killed_at
        serial = int(next(acme_serial(n, "kill.fleet.test") for n in survivors if acme_serial(n, "kill.fleet.test")), 16)
        wait_served(survivors, "kill.fleet.test", serial)
        assert taken_over >= 2, f"taken over after {taken_over:.1f}s, before the dead node's 3 s lease could expire"
        assert pebble.requests("/order-plz") == 2
        record_result("cluster_lock_takeover", {"seconds_after_kill": round(taken_over, 2)})
    finally:
        hole.close()


def test_issuance_waits_for_etcd_and_completes_when_it_is_back(acme_fleet, etcd):
    etcd.stop_all()
    try:
        nodes, pebble, _ = acme_fleet(["late.fleet.test"], n=2, renewal={"backoff_base": "1s", "backoff_cap": "2s"})
        # With etcd down the nodes serve (their self-signed fallback) and ACME backs off.
        wait_until(lambda: all(acme_entry(n, "late.fleet.test")["failures"] >= 1 for n in nodes), 30,
                   what="ACME attempts failing while etcd is down")
        assert all(not n.cluster()["etcd_connected"] for n in nodes)
        assert pebble.requests("/order-plz") == 0
    finally:
        etcd.start_all()
    wait_until(lambda: acme_serial(nodes[0], "late.fleet.test"), ISSUE_TIMEOUT, what="issuance once etcd is back")
    serial = int(acme_serial(nodes[0], "late.fleet.test"), 16)
    wait_served(nodes, "late.fleet.test", serial)
    assert pebble.requests("/order-plz") == 1


def test_tls_alpn01_answered_by_any_node(acme_fleet):
    nodes, pebble, _ = acme_fleet(["alpn.fleet.test"], n=2, challenges=("tls-alpn-01",))
    wait_until(lambda: acme_serial(nodes[0], "alpn.fleet.test"), ISSUE_TIMEOUT, what="alpn.fleet.test issued")
    serial = int(acme_serial(nodes[0], "alpn.fleet.test"), 16)
    wait_served(nodes, "alpn.fleet.test", serial)
    assert pebble.requests("/order-plz") == 1


def alpn_validation(port: int, name: str) -> tuple[str | None, bytes | None]:
    """What a TLS-ALPN-01 validator offering only acme-tls/1 gets for `name`: the protocol
    negotiated and the acmeIdentifier extension's value (None: not a challenge certificate)."""
    from cryptography import x509 as cx509
    with tls_connect(port, name, ctx=client_context(alpn=("acme-tls/1",)), timeout=10) as s:
        cert = cx509.load_der_x509_certificate(s.getpeercert(binary_form=True))
        alpn = s.selected_alpn_protocol()
    try:
        ext = cert.extensions.get_extension_for_oid(cx509.ObjectIdentifier("1.3.6.1.5.5.7.1.31"))
    except cx509.ExtensionNotFound:
        return alpn, None
    assert ext.critical
    return alpn, ext.value.value


def test_a_tls_alpn01_answer_the_watch_has_not_delivered_is_read_from_etcd(fleet, etcd):
    # The node reaches etcd only through a relay that can hold its watch back: its reads and
    # writes go through, what its watch would deliver does not (a watch a moment behind).
    gate = WatchGate(etcd.member_endpoint(0))
    try:
        (node,) = fleet(1, endpoints=[gate.endpoint])
        answers = fleet.prefix + "acme/challenges/tls-alpn-01/"
        etcd.put(answers + "early.alpn.test", "early.thumbprint")
        stored = etcd.revision()
        wait_until(lambda: node.cluster()["revision"] >= stored, SYNC_TIMEOUT, what="the watch delivering through the relay")
        assert alpn_validation(node.port, "early.alpn.test")[1] == b"\x04\x20" + hashlib.sha256(b"early.thumbprint").digest()

        gate.hold()
        key_authorization = f"{uuid.uuid4().hex}.thumbprint"
        etcd.put(answers + "late.alpn.test", key_authorization)
        stored = etcd.revision()
        alpn, identifier = alpn_validation(node.port, "late.alpn.test")
        assert alpn == "acme-tls/1" and identifier == b"\x04\x20" + hashlib.sha256(key_authorization.encode()).digest(), \
            (alpn, identifier, node.proxy.stderr()[-2000:])
        # Read from etcd while the watch was held, not delivered by it.
        assert node.cluster()["revision"] < stored
        assert "TLS-ALPN-01 answer for late.alpn.test read from etcd" in node.proxy.stderr()
        # Nothing stored for a name: the ordinary certificate after one short look, as before.
        started = time.monotonic()
        assert alpn_validation(node.port, "none.alpn.test") == (None, None)
        assert time.monotonic() - started < 2.5
        # Each held handshake and lookup counted: late found, none missed (early came through the watch).
        text = node.admin.metrics()
        assert metric(text, "edgeproxy_cluster_tls_alpn_holds_total") == 2, text
        assert metric(text, "edgeproxy_cluster_tls_alpn_lookups_total", result="found") == 1
        assert metric(text, "edgeproxy_cluster_tls_alpn_lookups_total", result="missed") == 1
        assert metric(text, "edgeproxy_cluster_tls_alpn_lookups_refused_total") == 0
        # Taken down in etcd: gone from the node once its watch delivers the deletion.
        etcd.delete(answers + "late.alpn.test")
        gate.release()
        wait_until(lambda: alpn_validation(node.port, "late.alpn.test") == (None, None), SYNC_TIMEOUT,
                   what="the answer taken down by the watch")
        assert gate.watches >= 1
    finally:
        gate.close()


def test_tls_alpn01_validation_reaching_a_node_whose_watch_is_behind(acme_fleet, etcd):
    # Node a orders; the CA's validation reaches only node b, whose watch is held back: b never
    # confirms the answer (a asks the CA after its wait), and answers from what it reads in etcd.
    gate = WatchGate(etcd.member_endpoint(0))
    gate.hold()
    try:
        nodes, pebble, _ = acme_fleet(["behind.fleet.test"], n=2, behind=[1], managers=[0], challenges=("tls-alpn-01",),
                                      node_cluster={1: {"endpoints": [gate.endpoint]}})
        a, b = nodes
        wait_until(lambda: acme_serial(a, "behind.fleet.test"), ISSUE_TIMEOUT, what="behind.fleet.test validated through b")
        assert pebble.requests("/order-plz") == 1
        assert "TLS-ALPN-01 answer for behind.fleet.test read from etcd" in b.proxy.stderr()
        gate.release()
        wait_served([a, b], "behind.fleet.test", int(acme_serial(a, "behind.fleet.test"), 16))
    finally:
        gate.close()


def test_on_demand_one_node_issues_and_every_node_serves(acme_fleet, etcd, tmp_path):
    # Handshakes for a new name reach both nodes at once: one order, and both clients get it.
    nodes, pebble, _ = acme_fleet([], n=2, on_demand={"names": ["*.od.fleet.test"], "wait": "20s"})
    root = tmp_path / "pebble-root.pem"
    root.write_bytes(pebble.root_pem())
    from httpclient import client_context
    got, errors = {}, []

    def client(node):
        try:
            got[node.name] = handshake_cert(node.port, "shop.od.fleet.test", ctx=client_context(cafile=root), timeout=30)["serial"]
        except Exception as e:  # noqa: BLE001 (reported below)
            errors.append(f"{node.name}: {e!r}")
    threads = [threading.Thread(target=client, args=(n,)) for n in nodes]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == [] and len(set(got.values())) == 1, (errors, got)
    assert pebble.requests("/order-plz") == 1
    # The fleet keeps the name, so every node manages (renews) it from now on.
    assert any(k.endswith("/acme/on-demand/shop.od.fleet.test") for k in etcd.get_prefix(acme_fleet.prefix + "acme/"))


# ----- session tickets and etcd over TLS -------------------------------------------------------


def s_client(port: int, sni: str, *args: str) -> str:
    request = f"GET / HTTP/1.1\r\nHost: {sni}\r\nConnection: close\r\n\r\n"
    r = subprocess.run([need_tool("openssl", "openssl"), "s_client", "-connect", f"127.0.0.1:{port}", "-servername", sni, "-tls1_3", "-ign_eof", *args],
                       input=request, capture_output=True, text=True, timeout=20)
    return r.stdout + r.stderr


def test_a_session_ticket_from_one_node_resumes_on_another(fleet, pki, tmp_path):
    a, b = fleet(2)
    leaf = pki.issue(["resume.cluster.test"])
    put_certificate(a, "resume.cluster.test", leaf)
    wait_served([a, b], "resume.cluster.test", leaf.serial)
    wait_until(lambda: a.cluster()["leader"] is not None, SYNC_TIMEOUT, what="a ticket-key leader")
    session = tmp_path / "session.pem"

    def resumes() -> bool:
        first = s_client(a.port, "resume.cluster.test", "-sess_out", str(session))
        assert "hello from a" in first, first[-2000:]
        second = s_client(b.port, "resume.cluster.test", "-sess_in", str(session))
        assert "hello from b" in second, second[-2000:]
        return "Reused, TLSv1.3" in second
    # The leader's first key reaches both nodes within moments; from then on every ticket resumes.
    wait_until(resumes, SYNC_TIMEOUT, interval=0.2, what="a ticket issued by node a resuming on node b")
    assert resumes()


@pytest.fixture(scope="module")
def etcd_tls(tmp_path_factory):
    cluster = EtcdCluster(tmp_path_factory.mktemp("etcd-tls"), members=1, tls=True)
    yield cluster
    cluster.stop()


def test_etcd_over_tls_with_client_certificates(proxies, etcd_tls, pki, sealing_key):
    prefix = f"/tls-{uuid.uuid4().hex[:8]}/"
    tls = {"ca": str(etcd_tls.ca_file), "client_certificate": str(etcd_tls.client_cert), "client_key": str(etcd_tls.client_key)}
    nodes = []
    for name in ("a", "b"):
        admin = free_port()
        p = proxies(node_config(etcd_tls, prefix, name, [sealing_key], admin, **tls), standard_certs=False, name=f"tls-{name}")
        nodes.append(Node(p, admin, name))
    for node in nodes:
        wait_until(lambda: node.cluster()["etcd_connected"], SYNC_TIMEOUT, what=f"node {node.name} connected over TLS")
    leaf = pki.issue(["tls.cluster.test"])
    put_certificate(nodes[0], "tls.cluster.test", leaf)
    wait_served(nodes, "tls.cluster.test", leaf.serial)
    # Without a client certificate etcd refuses the node: it says so, and serves what it has.
    admin = free_port()
    p = proxies(node_config(etcd_tls, prefix, "c", [sealing_key], admin, ca=str(etcd_tls.ca_file)), standard_certs=False, name="tls-c")
    lonely = Node(p, admin, "c")
    wait_until(lambda: lonely.cluster()["last_error"], SYNC_TIMEOUT, what="node c reporting that etcd refuses it")
    assert not lonely.cluster()["etcd_connected"]
    assert lonely.serial("tls.cluster.test") != leaf.serial


def test_certificate_events_are_delivered_once_by_the_fleet(acme_fleet, etcd):
    # Every node manages the name and looks at it every second; every certificate counts as
    # expiring soon, so each node sees `expiring_soon` (and the nodes that waited for the lock
    # may see `obtained`): the fleet delivers each fact once.
    from test_acme_events import Receiver
    receiver = Receiver().start()
    try:
        name = "events.fleet.test"
        nodes, _, _ = acme_fleet([name], n=3, renewal={"check_interval": "1s"},
                                 events={"webhooks": [{"url": receiver.url, "secret": receiver.secret}], "expiring_within": "100000h"})
        serial = wait_until(lambda: acme_serial(nodes[0], name), ISSUE_TIMEOUT, what=f"{name} issued")
        for node in nodes:
            wait_until(lambda: acme_serial(node, name) == serial, SYNC_TIMEOUT, what=f"node {node.name} following {serial}")
        receiver.wait("obtained")
        receiver.wait("expiring_soon")
        time.sleep(4)   # several more looks by every node
        assert [e["serial"] for e in receiver.events("obtained")] == [serial]
        assert [e["serial"] for e in receiver.events("expiring_soon")] == [serial]
        assert len(receiver.received) == 2, receiver.events()
        receiver.assert_well_formed()
        assert {e["node"] for e in receiver.events()} <= {n.name for n in nodes}
        statuses = [node.admin.json("GET", "/acme")[1]["events"] for node in nodes]
        assert sum(s["delivered"] for s in statuses) == 2, statuses
        # The two nodes that did not deliver expiring_soon saw it too, and left it to the claimant.
        assert sum(s["claimed_elsewhere"] for s in statuses) >= 2, statuses
        assert len(etcd.get_prefix(acme_fleet.prefix + "acme/events/")) == 2
    finally:
        receiver.stop()


def test_failed_attempts_are_delivered_once_each_by_the_fleet(acme_fleet):
    import http.server
    from test_acme import WrongAnswers
    from test_acme_events import Receiver
    wrong = http.server.ThreadingHTTPServer(("127.0.0.1", 0), WrongAnswers)
    threading.Thread(target=wrong.serve_forever, daemon=True).start()
    receiver = Receiver().start()
    try:
        name = "failing.fleet.test"
        nodes, _, _ = acme_fleet([name], n=3, validation=[f"127.0.0.1:{wrong.server_address[1]}"],
                                 renewal={"backoff_base": "2s", "backoff_cap": "4s"},
                                 events={"webhooks": [{"url": receiver.url, "secret": receiver.secret}]})
        # Each node fails on its own (the others wait for the lock, then order again and fail too).
        wait_until(lambda: all(acme_entry(n, name)["failures"] >= 2 for n in nodes), ISSUE_TIMEOUT, interval=0.2,
                   what="two failed attempts on every node")
        time.sleep(1)   # the last claims and deliveries
        failures = sum(acme_entry(n, name)["failures"] for n in nodes)
        attempts = [e["attempt"] for e in receiver.events("failed")]
        assert sorted(attempts) == list(range(1, len(attempts) + 1)), attempts   # each attempt number once
        assert 2 <= len(attempts) < failures, (attempts, failures)
        assert all(e["problem"] and name in e["error"] for e in receiver.events("failed"))
        receiver.assert_well_formed()
    finally:
        receiver.stop()
        wrong.shutdown()
