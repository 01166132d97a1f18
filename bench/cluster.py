#!/usr/bin/env python3
"""Cluster mode (issue #9) figures: real etcd 3.4 members, real edgeproxy nodes, all on 127.0.0.1.

    python3 bench/cluster.py [--bin .build/release/edgeproxy] [--workdir /tmp/cluster-bench]
                             [--updates 200] [--certs 10000] [--outage 60] [--only store,join,requests,outage]

Parts (see bench/README.md, "Cluster"):
  store     PUT on one node → the two others serve the new serial (3 etcd members, 3 nodes)
  join      `edgeproxy cluster import` of --certs certificates, a new node joining with an empty cache,
            etcd's size per certificate, the same node restarted with every etcd member stopped
  requests  etcd requests per ACME issuance (Pebble + HAProxy), 1 node then 3 nodes on one name
  outage    full handshakes + GET / on 3 nodes while every etcd member is stopped, then restarted

The fixtures are the integration tests' own (Tests/Integration: etcd.py, pebble.py, loadbalancer.py,
conftest.Proxy, test_cluster.node_config). Everything this script starts is stopped at the end, also on
failure or Ctrl-C. Results: stdout and bench/results/cluster-<date>-<time>.json.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import http.client
import json
import multiprocessing
import os
import random
import re
import resource
import shutil
import signal
import socket
import ssl
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "Tests" / "Integration"))
sys.path.insert(0, str(REPO / "bench"))

from cryptography import x509  # noqa: E402
from cryptography.hazmat.primitives import serialization  # noqa: E402

from certs100k import cpu_s, leaf_pem, make_ca, rss_mib  # noqa: E402
from conftest import Proxy, free_port, wait_for_port  # noqa: E402
from etcd import EtcdCluster  # noqa: E402
from httpclient import client_context  # noqa: E402
from loadbalancer import LoadBalancer  # noqa: E402
from parts import run_parts  # noqa: E402
from pebble import Pebble  # noqa: E402
from pki import TestPKI  # noqa: E402
from reload_support import Admin, metric, percentile  # noqa: E402
from test_cluster import node_config  # noqa: E402

PARTS = ("store", "join", "requests", "outage")
LEASE_TTL = "10s"
REQUEST_TIMEOUT = "5s"            # the product's default
CTX = client_context()            # no verification: serials are compared, not trust
REQUESTS_METRIC = "edgeproxy_cluster_etcd_requests_total"


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def r(x: float, n: int = 2) -> float:
    return round(x, n)


def dist_ms(values_s: list[float]) -> dict:
    ms = [v * 1000 for v in values_s]
    if not ms:
        return {"n": 0}
    return {"n": len(ms), "p50_ms": r(percentile(ms, 50)), "p90_ms": r(percentile(ms, 90)),
            "p99_ms": r(percentile(ms, 99)), "max_ms": r(max(ms)), "mean_ms": r(statistics.mean(ms))}


def served_der(port: int, sni: str, timeout: float = 2.0) -> bytes | None:
    """One full handshake with SNI: the leaf's DER (None when it fails)."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout) as raw:
            with CTX.wrap_socket(raw, server_hostname=sni) as s:
                return s.getpeercert(binary_form=True)
    except (OSError, ssl.SSLError):
        return None


def served_serial(port: int, sni: str) -> int | None:
    der = served_der(port, sni)
    return x509.load_der_x509_certificate(der).serial_number if der else None


def der_of(pem: bytes) -> bytes:
    return x509.load_pem_x509_certificate(pem).public_bytes(serialization.Encoding.DER)


# ----- nodes -----------------------------------------------------------------------------------

class Node:
    """One edgeproxy node: conftest.Proxy + its admin API."""

    def __init__(self, binary: Path, directory: Path, config: dict, name: str):
        self.name = name
        self.admin_port = int(config["admin"]["listen"].rsplit(":", 1)[1])
        self.admin = Admin(self.admin_port)
        self.proxy = Proxy(binary, directory, config)
        self.config = config

    @property
    def port(self) -> int:
        return self.proxy.https_port

    def start(self, wait: bool = True) -> "Node":
        self.proxy.start(wait=wait)
        return self

    def cluster(self) -> dict | None:
        try:
            status, _, body = self.admin.request("GET", "/cluster")
            return json.loads(body) if status == 200 else None
        except (OSError, ValueError, http.client.HTTPException):
            return None

    def requests(self) -> float:
        return metric(self.admin.metrics(), REQUESTS_METRIC)

    def acme_serial(self, name: str) -> str | None:
        try:
            status, _, body = self.admin.request("GET", "/acme")
        except (OSError, http.client.HTTPException):
            return None
        if status != 200:
            return None
        return next((c["serial"] for c in json.loads(body)["certificates"] if c["name"] == name), None)

    def listing(self) -> list[dict]:
        status, _, body = self.admin.request("GET", "/certificates")
        return json.loads(body) if status == 200 else []

    def put(self, name: str, chain_pem: bytes, key_pem: bytes) -> tuple[int, bytes]:
        status, _, body = self.admin.request("PUT", f"/certificates/{name}", chain_pem + key_pem)
        return status, body

    def stop(self) -> None:
        try:
            self.proxy.stop(signal.SIGTERM, timeout=10)
        except Exception:
            self.proxy.kill()

    def log_lines(self, pattern: str, limit: int = 12) -> list[str]:
        return [line for line in self.proxy.stderr().splitlines() if re.search(pattern, line)][:limit]


def wait(pred, timeout: float, interval: float = 0.02, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while True:
        v = pred()
        if v:
            return v
        if time.monotonic() >= deadline:
            raise TimeoutError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


class Bench:
    def __init__(self, args):
        self.args = args
        self.bin = Path(args.bin).resolve()
        self.work = Path(args.workdir)
        self.work.mkdir(parents=True, exist_ok=True)
        self.key = self.work / "sealing.key"
        self.key.write_bytes(os.urandom(32))
        self.pki = TestPKI(self.work / "pki")

    def fresh(self, name: str) -> Path:
        d = self.work / name
        shutil.rmtree(d, ignore_errors=True)
        d.mkdir(parents=True)
        return d

    def node(self, stack: contextlib.ExitStack, etcd: EtcdCluster, prefix: str, name: str, directory: Path,
             http: bool = False, acme: dict | None = None, extra: dict | None = None) -> Node:
        cfg = node_config(etcd, prefix, name, [self.key], free_port(), lease_ttl=LEASE_TTL,
                          request_timeout=REQUEST_TIMEOUT)
        cfg["listen"] = {"https": [f"127.0.0.1:{free_port()}"],
                         "http": [f"127.0.0.1:{free_port()}"] if http else []}
        if acme:
            cfg["acme"] = acme
        cfg.update(extra or {})
        n = Node(self.bin, directory / f"node-{name}", cfg, name)
        stack.callback(n.stop)
        return n

    def fleet(self, stack, etcd, prefix, names, directory) -> list[Node]:
        nodes = [self.node(stack, etcd, prefix, name, directory) for name in names]
        for n in nodes:
            n.start()
        for n in nodes:
            wait(lambda: (n.cluster() or {}).get("etcd_connected"), 20, what=f"node {n.name} connected to etcd")
        return nodes

    # ----- 1. store → served -------------------------------------------------------------------

    def part_store(self) -> dict:
        d = self.fresh("store")
        out: dict = {"updates": self.args.updates, "etcd_members": 3, "nodes": 3}
        sni = "shared.bench.test"
        with contextlib.ExitStack() as stack:
            etcd = stack.enter_context(EtcdCluster(d / "etcd", members=3))
            nodes = self.fleet(stack, etcd, "/bench-store/", ["a", "b", "c"], d)

            # etcd's own write latency for a value of the record's size, through the same JSON
            # gateway the nodes use (keep-alive connection, like theirs): the floor under a PUT.
            first = self.pki.issue([sni])
            status, body = nodes[0].put(sni, first.chain_pem, first.key_pem)
            assert status == 200, body
            record = etcd.get(f"/bench-store/certificates/{sni}")
            out["record_bytes"] = len(record)
            out["record_stored_at_example"] = json.loads(record).get("stored_at")
            conn = http.client.HTTPConnection("127.0.0.1", etcd.members[0].client_port, timeout=10)
            payload = json.dumps({"key": base64.b64encode(b"/bench-scratch/x").decode(),
                                  "value": base64.b64encode(record).decode()})
            lat = []
            for _ in range(50):
                t = time.perf_counter()
                conn.request("POST", "/v3/kv/put", body=payload)
                conn.getresponse().read()
                lat.append(time.perf_counter() - t)
            conn.close()
            out["etcd_put_alone"] = dist_ms(lat)
            log(f"etcd put of a {len(record)}-byte value alone (JSON gateway, leader or follower m1): "
                f"p50 {out['etcd_put_alone']['p50_ms']} ms")
            wait(lambda: all(served_der(n.port, sni) == der_of(first.cert_pem) for n in nodes), 10,
                 what="first certificate served everywhere")

            # Background etcd requests of the three idle nodes, to count the requests of a PUT.
            c0, t = sum(n.requests() for n in nodes), time.monotonic()
            time.sleep(5)
            bg = (sum(n.requests() for n in nodes) - c0) / (time.monotonic() - t)

            put_s, seen_s, seen_lo_s, hs_s, lags, timeouts, writer_stale = [], [], [], [], [], 0, 0
            req0, t_loop = sum(n.requests() for n in nodes), time.monotonic()
            for i in range(self.args.updates):
                leaf = self.pki.issue([sni])
                want = der_of(leaf.cert_pem)
                writer = nodes[i % 3]
                others = [n for n in nodes if n is not writer]
                t0 = time.perf_counter()
                status, body = writer.put(sni, leaf.chain_pem, leaf.key_pem)
                t1 = time.perf_counter()
                assert status == 200, body
                put_s.append(t1 - t0)
                results = poll_until(others, sni, want, t1, hs_s)
                for n in others:
                    if n.name in results:
                        seen_s.append(results[n.name][1])
                        seen_lo_s.append(max(0.0, results[n.name][0]))
                    else:
                        timeouts += 1
                if served_der(writer.port, sni) != want:
                    writer_stale += 1
                for n in others:      # the node's own view: stored_at in the record → applied
                    lag = metric(n.admin.metrics(), "edgeproxy_cluster_watch_lag_seconds")
                    if lag == lag:    # not NaN
                        lags.append(lag)
            loop_s = time.monotonic() - t_loop
            req = sum(n.requests() for n in nodes) - req0
            out["put"] = dist_ms(put_s)
            out["put_response_to_served_on_other_node"] = dist_ms(seen_s)
            out["put_response_to_served_lower_bound"] = dist_ms(seen_lo_s)
            out["handshake_while_polling"] = dist_ms(hs_s)
            out["not_served_within_10s"] = timeouts
            out["writer_not_serving_right_after_put"] = writer_stale
            out["nodes_last_lag_seconds"] = {"n": len(lags), "p50": r(percentile(lags, 50), 3),
                                             "p90": r(percentile(lags, 90), 3), "max": r(max(lags), 3),
                                             "min": r(min(lags), 3)} if lags else None
            out["get_cluster_last_lag_seconds"] = {n.name: (n.cluster() or {}).get("last_lag_seconds") for n in nodes}
            out["etcd_requests_per_put_all_nodes"] = r((req - bg * loop_s) / self.args.updates, 2)
            out["background_requests_per_s_3_nodes"] = r(bg, 2)

            # The same, the other nodes polled from before the PUT is sent: negative = served on
            # the other node before the writer's response arrived.
            pre_lo, pre_hi = [], []
            for i in range(min(50, self.args.updates)):
                leaf = self.pki.issue([sni])
                want = der_of(leaf.cert_pem)
                writer = nodes[i % 3]
                others = [n for n in nodes if n is not writer]
                box: dict = {}
                th = threading.Thread(target=lambda: box.update(res=poll_until(others, sni, want, None, [], box)))
                th.start()
                while "t0" not in box:
                    time.sleep(0.0005)
                status, body = writer.put(sni, leaf.chain_pem, leaf.key_pem)
                box["t1"] = time.perf_counter()
                th.join()
                for lo, hi in box["res"].values():
                    pre_lo.append(lo - box["t1"])
                    pre_hi.append(hi - box["t1"])
            out["prepolled_served_minus_put_response_upper"] = dist_ms(pre_hi)
            out["prepolled_served_minus_put_response_lower"] = dist_ms(pre_lo)

        # Local part of a PUT: the same PUT on a node without a cluster section (no etcd).
        with contextlib.ExitStack() as stack:
            cfg = node_config(etcd, "/x/", "solo", [self.key], free_port())
            cfg.pop("cluster")
            solo = Node(self.bin, d / "solo", cfg, "solo")
            stack.callback(solo.stop)
            solo.start()
            lat = []
            for _ in range(50):
                leaf = self.pki.issue([sni])
                t = time.perf_counter()
                status, body = solo.put(sni, leaf.chain_pem, leaf.key_pem)
                lat.append(time.perf_counter() - t)
                assert status == 200, body
            out["put_standalone_node_no_etcd"] = dist_ms(lat)
        return out

    # ----- 2. join at scale --------------------------------------------------------------------

    def certificates(self, count: int) -> tuple[Path, dict]:
        """count P-256 leaves c{i}.bench.test (+ serials.json), generated once per workdir."""
        directory = self.work / f"certs{count}"
        serials_path = self.work / f"certs{count}.serials.json"
        if serials_path.exists() and len(list(directory.glob("*.crt"))) == count:
            return directory, json.loads(serials_path.read_text())
        shutil.rmtree(directory, ignore_errors=True)
        directory.mkdir(parents=True)
        ca_key, ca_cert = make_ca()
        key_pem = ca_key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                       serialization.NoEncryption())
        ca_pem = ca_cert.public_bytes(serialization.Encoding.PEM)
        t = time.monotonic()
        ranges = [(i, min(count, i + 500)) for i in range(0, count, 500)]
        serials: dict = {}
        with multiprocessing.Pool(os.cpu_count(), _init, (key_pem, ca_pem, str(directory))) as pool:
            for part in pool.imap_unordered(_generate, ranges):
                serials.update(part)
        serials_path.write_text(json.dumps(serials))
        log(f"generated {count} P-256 certificates in {time.monotonic() - t:.1f} s ({directory})")
        return directory, serials

    def part_join(self) -> dict:
        n = self.args.certs
        certdir, serials = self.certificates(n)
        d = self.fresh("join")
        out: dict = {"certificates": n}
        prefix = "/bench-join/"
        first, last = "c0.bench.test", f"c{n - 1}.bench.test"
        with contextlib.ExitStack() as stack:
            etcd = stack.enter_context(EtcdCluster(d / "etcd", members=3))

            def db():
                st = json.loads(etcd.etcdctl("endpoint", "status", "-w", "json").stdout)
                return {"dbSize": max(s["Status"]["dbSize"] for s in st),
                        "dbSizeInUse": max(s["Status"].get("dbSizeInUse", 0) for s in st)}
            before = db()
            importer = Proxy(self.bin, d / "importer",
                             {**node_config(etcd, prefix, "importer", [self.key], free_port(), lease_ttl=LEASE_TTL,
                                            request_timeout=REQUEST_TIMEOUT),
                              "tls": {"certificate_dir": str(certdir), "watch": False}})
            t, ru0 = time.monotonic(), resource.getrusage(resource.RUSAGE_CHILDREN)
            p = subprocess.Popen([str(self.bin), "cluster", "import", "--config", str(importer.config_path)],
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=importer.dir)
            stdout, stderr = p.communicate(timeout=600)
            out["import_s"] = r(time.monotonic() - t)
            ru1 = resource.getrusage(resource.RUSAGE_CHILDREN)
            out["import_cpu_s"] = r(ru1.ru_utime + ru1.ru_stime - ru0.ru_utime - ru0.ru_stime)
            out["import_exit"] = p.returncode
            out["import_stdout_head"] = stdout.decode(errors="replace")[:160]
            out["import_stderr_tail"] = stderr.decode(errors="replace")[-400:]
            out["etcd_revision_after_import"] = etcd.revision()
            log(f"cluster import of {n}: {out['import_s']} s ({out['import_cpu_s']} s CPU), exit {p.returncode}")
            after = db()
            out["etcd_db_before"], out["etcd_db_after"] = before, after
            out["etcd_db_bytes_per_certificate"] = r((after["dbSize"] - before["dbSize"]) / n, 1)
            out["etcd_db_in_use_bytes_per_certificate"] = r((after["dbSizeInUse"] - before["dbSizeInUse"]) / n, 1)
            rec = etcd.get(f"{prefix}certificates/{first}")
            out["record_bytes"] = len(rec) if rec else None
            out["pem_bytes_per_certificate"] = (certdir / f"{first}.crt").stat().st_size + (certdir / f"{first}.key").stat().st_size
            out["keys_in_etcd"] = int(json.loads(etcd.etcdctl("get", "--prefix", "--keys-only", "--limit", "1", "-w", "json",
                                                              "--", f"{prefix}certificates/").stdout).get("count", 0))


            # A new node, empty cache.
            j = self.node(stack, etcd, prefix, "join", d)
            t0 = time.monotonic()
            j.start(wait=False)
            marks: dict = {}
            while True:
                now = time.monotonic() - t0
                if j.proxy.proc.poll() is not None:
                    raise RuntimeError(f"joining node exited: {j.proxy.stderr()[-2000:]}")
                if now > 120:
                    raise TimeoutError(f"join not done in 120 s: {marks}")
                c = j.cluster()
                if c is not None:
                    marks.setdefault("admin_answers_s", r(now))
                    if c.get("etcd_connected"):
                        marks.setdefault("etcd_connected_s", r(now))
                    if c.get("certificates", 0) >= n:
                        marks.setdefault("cluster_reports_all_s", r(now))
                        if (served_serial(j.port, first) == int(serials[first], 16)
                                and served_serial(j.port, last) == int(serials[last], 16)):
                            break
                time.sleep(0.02)
            out["join"] = {"ready_s": r(time.monotonic() - t0), **marks, "cpu_s": r(cpu_s(j.proxy.pid)),
                           "rss_mib": r(rss_mib(j.proxy.pid), 1)}
            ok, bad = check_listing(j, serials)
            out["join"]["listing_cluster_entries"], out["join"]["listing_serial_mismatches"] = ok, bad
            out["join"]["sample_handshakes_wrong"] = sample_check(j, serials, 200)
            time.sleep(3)
            out["join"]["after_3s"] = {"cpu_s": r(cpu_s(j.proxy.pid)), "rss_mib": r(rss_mib(j.proxy.pid), 1)}
            out["join"]["log"] = j.log_lines(r"cluster|warm-up|cache", 10)
            cache = j.proxy.dir / "cluster-cache"
            out["join"]["cache_files"] = sum(1 for _ in cache.rglob("*") if _.is_file()) if cache.exists() else None
            out["join"]["cache_bytes"] = sum(f.stat().st_size for f in cache.rglob("*") if f.is_file()) if cache.exists() else None
            log(f"join: {out['join']}")

            # The same node restarted while every etcd member is down: its cache alone.
            j.proxy.stop()
            etcd.stop_all()
            t0 = time.monotonic()
            j.proxy.start(wait=False)
            marks = {}
            while True:
                now = time.monotonic() - t0
                if j.proxy.proc.poll() is not None:
                    raise RuntimeError(f"restarted node exited: {j.proxy.stderr()[-2000:]}")
                if now > 120:
                    raise TimeoutError(f"cache restart not done in 120 s: {marks}")
                c = cluster_certificates(j)         # /metrics: GET /cluster would wait for etcd
                if c is not None:
                    marks.setdefault("admin_answers_s", r(now))
                    if c >= n:
                        marks.setdefault("metrics_report_all_s", r(now))
                    if (served_serial(j.port, first) == int(serials[first], 16)
                            and served_serial(j.port, last) == int(serials[last], 16)):
                        marks.setdefault("first_and_last_served_s", r(now))
                        ok, bad = check_listing(j, serials)
                        if ok >= n and bad == 0:
                            break
                time.sleep(0.05)
            out["restart_etcd_down"] = {"ready_s": r(time.monotonic() - t0), **marks, "cpu_s": r(cpu_s(j.proxy.pid)),
                                        "rss_mib": r(rss_mib(j.proxy.pid), 1),
                                        "cluster_certificates_metric": cluster_certificates(j),
                                        "etcd_connected": connected(j)}
            out["restart_etcd_down"]["sample_handshakes_wrong"] = sample_check(j, serials, 200)
            log(f"restart with etcd down: {out['restart_etcd_down']}")
        return out

    # ----- 3. etcd requests per issuance -------------------------------------------------------

    def part_requests(self) -> dict:
        d = self.fresh("requests")
        out: dict = {}
        with contextlib.ExitStack() as stack:
            etcd = stack.enter_context(EtcdCluster(d / "etcd", members=3))
            http_lb, tls_lb = free_port(), free_port()
            pebble = Pebble(d / "pebble", http_lb, tls_lb, nonce_reject=0)
            stack.callback(pebble.stop)
            lb = None
            for count in (1, 3):
                nodes = [self.node(stack, etcd, f"/bench-acme{count}/", name, d / f"n{count}", http=True,
                                   acme=pebble.acme_section([f"warm{count}.bench.test"], challenges=["http-01"]))
                         for name in "abc"[:count]]
                backends = {"http01": [f"127.0.0.1:{n.proxy.http_port}" for n in nodes],
                            "tlsalpn01": [f"127.0.0.1:{n.port}" for n in nodes]}
                if lb is None:
                    lb = LoadBalancer(d / "lb", {k: ((http_lb if k == "http01" else tls_lb), v) for k, v in backends.items()},
                                      check_inter_ms=None)
                    stack.callback(lb.stop)
                else:
                    for k, v in backends.items():
                        lb.set_backends(k, v)
                out[f"nodes_{count}"] = self.issuance(nodes, pebble, count)
                for n in nodes:
                    n.stop()
        return out

    def issuance(self, nodes: list[Node], pebble: Pebble, count: int) -> dict:
        res: dict = {}
        warm, name = f"warm{count}.bench.test", f"issue{count}.bench.test"
        pebble_before = pebble_requests(pebble)
        t0 = time.monotonic()
        for n in nodes:
            n.start(wait=False)
        for n in nodes:
            wait_for_port(n.port, proc=n.proxy.proc)
        # First issuance: from exec (account registration, start-up sync and the order in one).
        serial = wait(lambda: next((s for n in nodes if (s := n.acme_serial(warm))), None), 90, interval=0.05,
                      what=f"{warm} issued")
        wait(lambda: all(served_serial(n.port, warm) == int(serial, 16) for n in nodes), 30, interval=0.01,
             what=f"{warm} served")
        res["first_issuance_from_exec"] = {"s": r(time.monotonic() - t0),
                                           "etcd_requests": sum(n.requests() for n in nodes),
                                           "pebble_requests": pebble_requests(pebble) - pebble_before}
        time.sleep(3)
        # Background: the idle nodes (keep-alive, membership, watch).
        c0, t = sum(n.requests() for n in nodes), time.monotonic()
        time.sleep(10)
        bg = (sum(n.requests() for n in nodes) - c0) / (time.monotonic() - t)
        res["background_requests_per_s"] = r(bg, 3)
        # Second issuance, the account known: the name is added with SIGHUP, counters read just before.
        for n in nodes:
            n.config["acme"]["certificates"] = [warm, name]
            n.proxy.write_config(n.config)
        pebble_before = pebble_requests(pebble)
        before = [n.requests() for n in nodes]
        t = time.monotonic()
        for n in nodes:
            n.proxy.reload()
        serial = wait(lambda: next((s for n in nodes if (s := n.acme_serial(name))), None), 60, interval=0.01,
                      what=f"{name} issued")
        wait(lambda: all(served_serial(n.port, name) == int(serial, 16) for n in nodes), 30, interval=0.005,
             what=f"{name} served")
        elapsed = time.monotonic() - t
        after = [n.requests() for n in nodes]
        pebble_after = pebble_requests(pebble)
        paths: dict = {}
        for line in pebble_lines(pebble)[pebble_before:pebble_after]:
            paths[line] = paths.get(line, 0) + 1
        time.sleep(3)
        settled = [n.requests() for n in nodes]
        elapsed_settled = time.monotonic() - t
        raw = sum(after) - sum(before)
        res["issuance"] = {"sighup_to_served_everywhere_s": r(elapsed),
                           "etcd_requests_raw": raw,
                           "etcd_requests_per_node_raw": [a - b for a, b in zip(after, before)],
                           "background_in_window": r(bg * elapsed, 1),
                           "etcd_requests_net": r(raw - bg * elapsed, 1),
                           "etcd_requests_net_incl_3s_after": r(sum(settled) - sum(before) - bg * elapsed_settled, 1),
                           "pebble_requests": pebble_after - pebble_before, "pebble_paths": paths}
        res["pebble_orders_total"] = pebble.requests("/order-plz")
        log(f"{count} node(s): {res}")
        return res

    # ----- 4. etcd outage ----------------------------------------------------------------------

    def part_outage(self) -> dict:
        d = self.fresh("outage")
        sni = "outage.bench.test"
        out: dict = {"outage_s": self.args.outage}
        with contextlib.ExitStack() as stack:
            etcd = stack.enter_context(EtcdCluster(d / "etcd", members=3))
            nodes = self.fleet(stack, etcd, "/bench-outage/", ["a", "b", "c"], d)
            leaf = self.pki.issue([sni])
            status, body = nodes[0].put(sni, leaf.chain_pem, leaf.key_pem)
            assert status == 200, body
            want = der_of(leaf.cert_pem)
            wait(lambda: all(served_der(n.port, sni) == want for n in nodes), 10, what="served everywhere")
            accepted = {want}          # the certificates a handshake may present

            records: list[tuple[float, int, str | None]] = []      # (time, node, error or None)
            halt = threading.Event()
            request = f"GET / HTTP/1.1\r\nHost: {sni}\r\nConnection: close\r\n\r\n".encode()

            def client():
                i = 0
                while not halt.is_set():
                    n = nodes[i % 3]
                    i += 1
                    err = None
                    try:
                        with socket.create_connection(("127.0.0.1", n.port), timeout=5) as raw:
                            with CTX.wrap_socket(raw, server_hostname=sni) as s:
                                if s.getpeercert(binary_form=True) not in accepted:
                                    err = "wrong certificate"
                                s.sendall(request)
                                data = b""
                                while chunk := s.recv(65536):
                                    data += chunk
                                if not data.startswith(b"HTTP/1.1 200") or f"hello from {n.name}".encode() not in data:
                                    err = err or f"bad response {data[:60]!r}"
                    except (OSError, ssl.SSLError) as e:
                        err = f"{type(e).__name__}: {e}"
                    records.append((time.monotonic(), i % 3, err))
            th = threading.Thread(target=client, daemon=True)
            t_client = time.monotonic()
            th.start()
            stack.callback(lambda: (halt.set(), th.join(10)))
            time.sleep(5)
            t_stop = time.monotonic()
            etcd.stop_all()
            t_stopped = time.monotonic()
            out["stop_all_s"] = r(t_stopped - t_stop)
            # Admin calls that need etcd, timed in the background (they may block): PUT and GET /cluster.
            slow: dict = {}

            def timed(key, fn):
                t = time.monotonic()
                try:
                    res = fn()
                except Exception as e:  # noqa: BLE001
                    res = f"{type(e).__name__}: {e}"
                slow[key] = {"s": r(time.monotonic() - t), "result": res}
            side = [threading.Thread(target=timed, args=("put", lambda: (lambda st: {"status": st[0], "body": st[1].decode(
                        errors="replace")[:160]})(nodes[1].put(sni, leaf.chain_pem, leaf.key_pem))), daemon=True),
                    threading.Thread(target=timed, args=("get_cluster", lambda: (lambda c: c and {
                        "etcd_connected": c.get("etcd_connected"), "nodes_error": (c.get("nodes_error") or "")[:160]})(
                        nodes[2].cluster())), daemon=True)]
            noticed: dict = {}          # from the gauge on /metrics (GET /cluster asks etcd for the members)
            while len(noticed) < 3 and time.monotonic() < t_stop + self.args.outage:
                for n in nodes:
                    if n.name not in noticed and connected(n) is False:
                        noticed[n.name] = r(time.monotonic() - t_stopped)
                time.sleep(0.05)
            for t in side:
                t.start()
            # Does an admin call waiting for etcd hold up the others? /metrics on c (GET /cluster pending
            # there) against /metrics on a (nothing pending).
            time.sleep(1)
            hol: dict = {}
            for n in (nodes[2], nodes[0]):
                t = time.monotonic()
                connected(n)
                hol[n.name] = r(time.monotonic() - t, 3)
            out["metrics_call_s_while_get_cluster_pending_on_c"] = hol
            while time.monotonic() < t_stop + self.args.outage:
                time.sleep(0.1)
            out["admin_calls_pending_at_start_all"] = [k for k, t in zip(("put", "get_cluster"), side) if t.is_alive()]
            out["nodes_noticed_outage_after_s"] = noticed
            t_start = time.monotonic()
            etcd.start_all()
            t_healthy = time.monotonic()
            out["etcd_start_all_to_healthy_s"] = r(t_healthy - t_start)
            back: dict = {}
            while len(back) < 3 and time.monotonic() < t_start + 60:
                for n in nodes:
                    if n.name not in back and connected(n):
                        back[n.name] = r(time.monotonic() - t_start)
                time.sleep(0.02)
            out["etcd_connected_again_after_start_all_s"] = back
            out["all_connected_after_etcd_healthy_s"] = r(max(back.values()) - (t_healthy - t_start)) if len(back) == 3 else None
            out["get_cluster_reports_connected"] = {n.name: (n.cluster() or {}).get("etcd_connected") for n in nodes}
            for t in side:
                t.join(60)
            out["admin_calls_during_outage"] = slow
            # The cluster works again: a new certificate stored on b serves everywhere.
            again = self.pki.issue([sni])
            want_again = der_of(again.cert_pem)
            accepted.add(want_again)   # old or new, while the new one spreads
            t = time.monotonic()
            status, body = nodes[1].put(sni, again.chain_pem, again.key_pem)
            ok = status == 200 and bool(wait(lambda: all(served_der(n.port, sni) == want_again for n in nodes), 10,
                                             interval=0.005, what="post-outage certificate served"))
            out["put_after_outage"] = {"status": status, "served_everywhere_s": r(time.monotonic() - t, 3) if ok else None}
            time.sleep(0.5)
            t_after_end = time.monotonic() + 10
            while time.monotonic() < t_after_end:
                time.sleep(0.2)
            halt.set()
            th.join(10)

            def phase(a, b):
                sel = [x for x in records if a <= x[0] < b]
                errs = [x for x in sel if x[2]]
                span = (min(b, sel[-1][0]) - a) if sel else 0
                return {"attempted": len(sel), "failed": len(errs), "s": r(span, 1),
                        "per_s": r(len(sel) / max(span, 1e-9), 1),
                        "error_samples": sorted({x[2] for x in errs})[:5]}
            out["handshakes"] = {"before": phase(t_client, t_stop), "outage": phase(t_stop, t_healthy),
                                 "after": phase(t_healthy, float("inf"))}
            out["handshakes"]["note"] = ("after: one new certificate is stored on node b; the old and the new one are both "
                                         "accepted while it spreads")
            out["node_log_outage"] = {n.name: n.log_lines(r"etcd|cluster", 8) for n in nodes}
        return out


def connected(node: Node) -> bool | None:
    """edgeproxy_cluster_etcd_connected from /metrics (None when the admin API does not answer)."""
    try:
        return metric(node.admin.metrics(), "edgeproxy_cluster_etcd_connected") == 1
    except (OSError, AssertionError, http.client.HTTPException):
        return None


def cluster_certificates(node: Node) -> float | None:
    try:
        return metric(node.admin.metrics(), "edgeproxy_cluster_certificates")
    except (OSError, AssertionError, http.client.HTTPException):
        return None


def poll_until(nodes: list[Node], sni: str, want: bytes, t_ref: float | None, hs_s: list, box: dict | None = None) -> dict:
    """Handshakes with SNI on every node (one thread each, ~1 ms apart) until each serves `want`.
    Returns {node: (lower, upper)}: the start of the last handshake that still got another
    certificate and the end of the first that got `want`, relative to t_ref (absolute times when
    t_ref is None; then box["t0"] is set once polling runs)."""
    results: dict = {}

    def poll(n: Node):
        prev_start = time.perf_counter()
        deadline = prev_start + 10
        while time.perf_counter() < deadline:
            a = time.perf_counter()
            der = served_der(n.port, sni)
            b = time.perf_counter()
            hs_s.append(b - a)
            if der == want:
                base = t_ref or 0.0
                results[n.name] = (prev_start - base, b - base)
                return
            prev_start = a
            if box is not None:
                box.setdefault("t0", a)
            time.sleep(0.001)
    threads = [threading.Thread(target=poll, args=(n,)) for n in nodes]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return results


def check_listing(node: Node, serials: dict) -> tuple[int, int]:
    """(cluster entries listed, entries whose serial differs from the generated one)."""
    try:
        listing = node.listing()
    except (OSError, ValueError, http.client.HTTPException):
        return 0, 0
    ok = bad = 0
    for e in listing:
        if e.get("source") == "cluster" and e["name"] in serials:
            ok += 1
            if int(e["serial"], 16) != int(serials[e["name"]], 16):
                bad += 1
    return ok, bad


def sample_check(node: Node, serials: dict, k: int) -> int:
    names = random.sample(sorted(serials), min(k, len(serials)))
    return sum(1 for s in names if served_serial(node.port, s) != int(serials[s], 16))


def pebble_lines(pebble: Pebble) -> list[str]:
    """Pebble's request log lines as "METHOD /path" (ids in paths dropped)."""
    out = []
    for line in pebble.log().splitlines():
        m = re.search(r"\b(GET|POST|HEAD) (/[^ ]*)", line)
        if m:
            out.append(f"{m.group(1)} {re.sub(r'/[0-9A-Za-z_-]{12,}', '/', m.group(2))}")
    return out


def pebble_requests(pebble: Pebble) -> int:
    return len(pebble_lines(pebble))


_ctx: dict = {}


def _init(ca_key_pem, ca_cert_pem, directory):
    _ctx["key"] = serialization.load_pem_private_key(ca_key_pem, None)
    _ctx["cert"] = x509.load_pem_x509_certificate(ca_cert_pem)
    _ctx["dir"] = Path(directory)


def _generate(rng):
    out = {}
    for i in range(*rng):
        name = f"c{i}.bench.test"
        cert, key, serial = leaf_pem(_ctx["key"], _ctx["cert"], name)
        (_ctx["dir"] / f"{name}.crt").write_bytes(cert)
        (_ctx["dir"] / f"{name}.key").write_bytes(key)
        out[name] = f"{serial:x}"
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--bin", default=str(REPO / ".build" / "release" / "edgeproxy"))
    ap.add_argument("--workdir", default="/tmp/cluster-bench")
    ap.add_argument("--updates", type=int, default=200)
    ap.add_argument("--certs", type=int, default=10000)
    ap.add_argument("--outage", type=float, default=60)
    ap.add_argument("--only", default=",".join(PARTS), help=f"comma list of {', '.join(PARTS)}")
    args = ap.parse_args()
    parts = [p.strip() for p in args.only.split(",") if p.strip()]
    unknown = set(parts) - set(PARTS)
    if unknown:
        ap.error(f"unknown part(s) {sorted(unknown)}: choose from {', '.join(PARTS)}")
    if not Path(args.bin).is_file():
        ap.error(f"no binary at {args.bin}")

    bench = Bench(args)
    results: dict = {"date": time.strftime("%Y-%m-%d %H:%M:%S"), "binary": str(bench.bin), "cores": os.cpu_count(),
                     "args": {k: getattr(args, k) for k in ("updates", "certs", "outage", "only")},
                     "node_settings": {"lease_ttl": LEASE_TTL, "request_timeout": REQUEST_TIMEOUT},
                     "etcd": subprocess.run(["/usr/bin/etcd", "--version"], capture_output=True, text=True).stdout.split("\n")[0]}
    t_all = time.monotonic()
    failed = run_parts(bench, parts, results, log)
    results["total_s"] = r(time.monotonic() - t_all, 1)
    out = REPO / "bench" / "results" / f"cluster-{time.strftime('%Y%m%d-%H%M%S')}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2) + "\n")
    summary(results)
    print(f"results: {out}")
    return 1 if failed else 0


def summary(res: dict) -> None:
    print("\n===== summary =====")
    if "store" in res and "put" in res["store"]:
        s = res["store"]
        f = lambda d: f"p50 {d['p50_ms']} / p90 {d['p90_ms']} / p99 {d['p99_ms']} / max {d['max_ms']} ms"  # noqa: E731
        print(f"store: PUT {f(s['put'])}; PUT response → served on another node {f(s['put_response_to_served_on_other_node'])}")
        print(f"       handshake while polling {f(s['handshake_while_polling'])}; etcd put alone {f(s['etcd_put_alone'])}")
        print(f"       nodes' last_lag_seconds {s['nodes_last_lag_seconds']}; not served within 10 s: {s['not_served_within_10s']}")
    if "join" in res and "join" in res["join"]:
        j = res["join"]
        print(f"join: import {j['certificates']} in {j['import_s']} s; new node ready {j['join']['ready_s']} s, "
              f"{j['join']['cpu_s']} s CPU, RSS {j['join']['rss_mib']} MiB; etcd {j['etcd_db_bytes_per_certificate']} B/cert "
              f"(record {j['record_bytes']} B); restart with etcd down {j['restart_etcd_down']['ready_s']} s")
    if "requests" in res and "nodes_1" in res["requests"]:
        for k in ("nodes_1", "nodes_3"):
            if k in res["requests"]:
                i = res["requests"][k]
                print(f"requests {k}: per issuance raw {i['issuance']['etcd_requests_raw']}, net {i['issuance']['etcd_requests_net']} "
                      f"(background {i['background_requests_per_s']}/s), Pebble {i['issuance']['pebble_requests']}")
    if "outage" in res and "handshakes" in res["outage"]:
        o = res["outage"]
        print(f"outage: {o['handshakes']['outage']['attempted']} handshakes during, {o['handshakes']['outage']['failed']} failed; "
              f"after {o['handshakes']['after']['attempted']}, {o['handshakes']['after']['failed']} failed; "
              f"connected again {o['etcd_connected_again_after_start_all_s']} s after start_all")
    for k, v in res.items():
        if isinstance(v, dict) and "error" in v:
            print(f"{k}: FAILED {v['error'][:300]}")


if __name__ == "__main__":
    sys.exit(main())
