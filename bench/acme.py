#!/usr/bin/env python3
"""ACME figures against a real Pebble (and a real BIND for DNS-01), all on 127.0.0.1.

    python3 bench/acme.py [--bin .build/release/edgeproxy] [--workdir /tmp/acme-bench]
                          [--rounds 3] [--names 1000] [--on-demand 20] [--only first,ondemand,many]

Parts:
  first     time from exec to the first certificate served, for HTTP-01, TLS-ALPN-01 and DNS-01
            (RFC 2136 into BIND; Pebble resolves through that BIND), and the CA requests it took
  ondemand  on-demand TLS: the first handshake of a new name (issued while it waits) against the
            next handshake of the same name; the difference is what on-demand adds
  many      --names certificates configured at once, issued with the manager's bounded concurrency
            (4 orders at a time): total time, CA requests per certificate (the manager's count and
            Pebble's log), the proxy's RSS and CPU

Pebble runs with PEBBLE_VA_NOSLEEP=1 and no nonce rejections (a real CA rejects few), so the figures
are the proxy's and Pebble's work, not the VA's artificial sleeps. The fixtures are the integration
tests' own (Tests/Integration: pebble.py, named.py, conftest.Proxy). Everything this script starts is
stopped at the end. Results: stdout and bench/results/acme-<date>-<time>.json.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import shutil
import signal
import ssl
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "Tests" / "Integration"))
sys.path.insert(0, str(REPO / "bench"))

from certs100k import cpu_s, rss_mib  # noqa: E402
from conftest import Proxy, free_port  # noqa: E402
from httpclient import client_context, handshake_cert  # noqa: E402
from named import Named  # noqa: E402
from parts import run_parts  # noqa: E402
from pebble import Pebble  # noqa: E402
from reload_support import Admin, percentile  # noqa: E402

PARTS = ("first", "ondemand", "many")


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def r(x: float, n: int = 3) -> float:
    return round(x, n)


def dist(values: list[float], unit: str = "s") -> dict:
    if not values:
        return {"n": 0}
    return {"n": len(values), f"p50_{unit}": r(percentile(values, 50)), f"p90_{unit}": r(percentile(values, 90)),
            f"max_{unit}": r(max(values)), f"mean_{unit}": r(statistics.mean(values))}


def wait(pred, timeout: float, interval: float = 0.005, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while True:
        v = pred()
        if v:
            return v
        if time.monotonic() >= deadline:
            raise TimeoutError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


def verified_serial(port: int, name: str, ctx: ssl.SSLContext) -> int | None:
    """The serial served for `name` when it verifies against the CA's root, else None."""
    try:
        return handshake_cert(port, name, ctx=ctx, timeout=30)["serial"]
    except (OSError, ssl.SSLError):
        return None


def ca_requests(proxy: Proxy) -> list[int]:
    return [int(n) for n in re.findall(r"after (\d+) CA requests", proxy.stderr())]


class Bench:
    def __init__(self, args):
        self.args = args
        self.bin = Path(args.bin).resolve()
        self.work = Path(args.workdir)
        self.work.mkdir(parents=True, exist_ok=True)

    def fresh(self, name: str) -> Path:
        d = self.work / name
        shutil.rmtree(d, ignore_errors=True)
        d.mkdir(parents=True)
        return d

    def proxy(self, stack, directory: Path, ports: dict, acme: dict, workers: int | None = None) -> tuple[Proxy, Admin]:
        config = {"listen": {"https": [f"127.0.0.1:{ports['https']}"], "http": [f"127.0.0.1:{ports['http']}"]},
                  "admin": {"listen": f"127.0.0.1:{ports['admin']}"},
                  "routes": [{"respond": {"status": 200, "body": "hello\n"}}],
                  "log": {"access": "off"}, "acme": acme}
        if workers:
            config["workers"] = workers
        p = Proxy(self.bin, directory / "proxy", config)
        stack.callback(lambda: p.stop(signal.SIGTERM, timeout=10))
        return p, Admin(ports["admin"])

    def pebble(self, stack, directory: Path, ports: dict, dns_server: str | None = None) -> tuple[Pebble, ssl.SSLContext]:
        pebble = Pebble(directory / "pebble", ports["http"], ports["https"], nonce_reject=0, dns_server=dns_server)
        stack.callback(pebble.stop)
        root = directory / "root.pem"
        root.write_bytes(pebble.root_pem())
        return pebble, client_context(cafile=root)

    # ----- parts ------------------------------------------------------------------------------------

    def part_first(self) -> dict:
        out: dict = {}
        for challenge in ("http-01", "tls-alpn-01", "dns-01"):
            seconds, issuance, requests = [], [], []
            for i in range(self.args.rounds):
                d = self.fresh(f"first-{challenge}-{i}")
                ports = {"https": free_port(), "http": free_port(), "admin": free_port()}
                with contextlib.ExitStack() as stack:
                    dns = None
                    if challenge == "dns-01":
                        named = Named(d / "named")
                        stack.callback(named.stop)
                        dns = named.address
                        name = "first.dns.test"
                    else:
                        name = "first.acme.test"
                    pebble, ctx = self.pebble(stack, d, ports, dns_server=dns)
                    acme = pebble.acme_section([name], challenges=[challenge])
                    if dns:
                        acme["dns"] = named.dns_section()
                    p, _ = self.proxy(stack, d, ports, acme)
                    started = time.monotonic()
                    p.start(wait=False)
                    wait(lambda: verified_serial(p.https_port, name, ctx), 60, what=f"{name} served ({challenge})")
                    seconds.append(time.monotonic() - started)
                    # The log line follows the install, so a handshake may see the certificate first.
                    found = wait(lambda: re.findall(r"after (\d+) CA requests in ([\d.]+) s", p.stderr()), 10,
                                 what="the issuance's log line")
                    requests += [int(n) for n, _ in found]
                    issuance += [float(s) for _, s in found]
            out[challenge] = {"exec_to_served": dist(seconds), "issuance_as_logged": dist(issuance),
                              "ca_requests_per_issuance": requests}
            log(f"first {challenge}: {out[challenge]}")
        return out

    def part_ondemand(self) -> dict:
        d = self.fresh("ondemand")
        ports = {"https": free_port(), "http": free_port(), "admin": free_port()}
        first, second = [], []
        with contextlib.ExitStack() as stack:
            pebble, ctx = self.pebble(stack, d, ports)
            acme = pebble.acme_section([], challenges=["http-01"],
                                       on_demand={"names": ["*.od.bench.test"], "wait": "30s", "rate_limit": 1000})
            del acme["certificates"]
            p, _ = self.proxy(stack, d, ports, acme, workers=1)
            p.start()
            for i in range(self.args.on_demand):
                name = f"n{i}.od.bench.test"
                t = time.monotonic()
                if verified_serial(p.https_port, name, ctx) is None:
                    raise RuntimeError(f"{name}: the first handshake did not get its certificate:\n{p.stderr()[-2000:]}")
                first.append(time.monotonic() - t)
                t = time.monotonic()
                verified_serial(p.https_port, name, ctx)
                second.append(time.monotonic() - t)
            added = [a - b for a, b in zip(first, second)]
            return {"first_handshake": dist(first), "next_handshake": dist(second), "added_by_on_demand": dist(added),
                    "ca_requests_per_issuance": dist([float(n) for n in ca_requests(p)], unit="n")}

    def part_many(self) -> dict:
        d = self.fresh("many")
        ports = {"https": free_port(), "http": free_port(), "admin": free_port()}
        names = [f"m{i}.many.test" for i in range(self.args.names)]
        with contextlib.ExitStack() as stack:
            pebble, _ = self.pebble(stack, d, ports)
            p, admin = self.proxy(stack, d, ports, pebble.acme_section(names, challenges=["http-01"]))
            started = time.monotonic()
            p.start()

            def issued() -> int:
                _, body = admin.json("GET", "/acme")
                return sum(1 for c in body["certificates"] if c["serial"])
            progress = [0]

            def all_issued():
                n = issued()
                if n // 100 != progress[0] // 100:
                    log(f"many: {n} of {len(names)} issued after {time.monotonic() - started:.1f} s")
                progress[0] = n
                return n == len(names)
            wait(all_issued, 3600, interval=0.5, what=f"{len(names)} certificates issued")
            total = time.monotonic() - started
            requests = ca_requests(p)
            pebble_requests = sum(1 for line in pebble.log().splitlines() if re.search(r"\b(POST|GET|HEAD) /", line))
            return {"names": len(names), "concurrency": 4, "total_s": r(total, 1), "per_certificate_s": r(total / len(names)),
                    "certificates_per_s": r(len(names) / total, 2),
                    "ca_requests_per_certificate_manager": r(statistics.mean(requests), 2) if requests else None,
                    "pebble_requests_logged_per_certificate": r(pebble_requests / len(names), 2),
                    "proxy_rss_mib": r(rss_mib(p.pid), 1), "proxy_cpu_s": r(cpu_s(p.pid), 2)}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--bin", default=str(REPO / ".build" / "release" / "edgeproxy"))
    ap.add_argument("--workdir", default="/tmp/acme-bench")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--names", type=int, default=1000)
    ap.add_argument("--on-demand", type=int, default=20)
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
                     "args": {k: getattr(args, k) for k in ("rounds", "names", "on_demand", "only")}}
    failed = run_parts(bench, parts, results, log)
    out = REPO / "bench" / "results" / f"acme-{time.strftime('%Y%m%d-%H%M%S')}.json"
    out.write_text(json.dumps(results, indent=2) + "\n")
    log(f"written {out}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
