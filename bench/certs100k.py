#!/usr/bin/env python3
"""Many certificates (issue #3): start-up load time, RSS, SNI lookup cost, time to replace one
and to replace all, with N P-256 certificates, each for its own name (cert-N.bench.test).

    make release bench-sni
    python3 bench/certs100k.py --count 100000 --bin .build/release/edgeproxy

Generation: one P-256 CA key signs every leaf, in one process per core (Python `cryptography`).
Everything runs on 127.0.0.1. Results: stdout and bench/results/certsNk-<date>.json.

start-up: from exec until the https port accepts, every name served (certificates the start-up
index reads serve from it; OpenSSL builds and checks them in the background, and the figures
after "background build done" are taken once that has finished), with the process's own user+sys
CPU for it. SNI lookup: `bench-sni N` (next to --bin)
times CertificateStore.select in process with N names: ns per ClientHello for an exact name, a
wildcard and a miss. The client-side handshake times below it are Python's, sequential: they
show that lookups do not grow with N, not what a handshake costs the server.
"""

from __future__ import annotations

import argparse
import datetime
import http.client
import json
import multiprocessing
import os
import random
import signal
import socket
import ssl
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

REPO = Path(__file__).resolve().parents[1]
NOW = datetime.datetime.now(datetime.timezone.utc)


def name_of(i: int) -> str:
    return f"cert-{i}.bench.test"


def make_ca():
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "bench CA")])
    cert = (x509.CertificateBuilder().subject_name(subject).issuer_name(subject).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(NOW - datetime.timedelta(hours=1))
            .not_valid_after(NOW + datetime.timedelta(days=30))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    return key, cert


def leaf_pem(ca_key, ca_cert, name: str) -> tuple[bytes, bytes, int]:
    key = ec.generate_private_key(ec.SECP256R1())
    serial = x509.random_serial_number()
    cert = (x509.CertificateBuilder().subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
            .issuer_name(ca_cert.subject).public_key(key.public_key()).serial_number(serial)
            .not_valid_before(NOW - datetime.timedelta(hours=1)).not_valid_after(NOW + datetime.timedelta(days=30))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), critical=False)
            .sign(ca_key, hashes.SHA256()))
    key_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
    return cert.public_bytes(serialization.Encoding.PEM), key_pem, serial


_ctx = {}


def _init(ca_key_pem, ca_cert_pem, directory, chain):
    _ctx["chain"] = chain
    _ctx["key"] = serialization.load_pem_private_key(ca_key_pem, None)
    _ctx["cert"] = x509.load_pem_x509_certificate(ca_cert_pem)
    _ctx["dir"] = Path(directory)


def _generate(rng):
    issuer = _ctx["cert"].public_bytes(serialization.Encoding.PEM) if _ctx["chain"] else b""
    for i in range(*rng):
        cert, key, _ = leaf_pem(_ctx["key"], _ctx["cert"], name_of(i))
        (_ctx["dir"] / f"{name_of(i)}.crt").write_bytes(cert + issuer)
        (_ctx["dir"] / f"{name_of(i)}.key").write_bytes(key)
    return rng[1] - rng[0]


def generate(count: int, directory: Path, ca_key, ca_cert, chain: bool) -> float:
    t = time.monotonic()
    key_pem = ca_key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                   serialization.NoEncryption())
    ca_pem = ca_cert.public_bytes(serialization.Encoding.PEM)
    step = 1000
    ranges = [(i, min(count, i + step)) for i in range(0, count, step)]
    with multiprocessing.Pool(os.cpu_count(), _init, (key_pem, ca_pem, str(directory), chain)) as pool:
        for _ in pool.imap_unordered(_generate, ranges):
            pass
    return time.monotonic() - t


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def cpu_s(pid: int) -> float:
    """user + sys CPU seconds of the process so far (/proc/PID/stat fields 14 and 15)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def serial_for(port: int, name: str, ctx: ssl.SSLContext) -> int:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as raw:
        with ctx.wrap_socket(raw, server_hostname=name) as s:
            return x509.load_der_x509_certificate(s.getpeercert(binary_form=True)).serial_number


def admin(port: int, method: str, path: str, body: bytes | None = None) -> tuple[int, bytes]:
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=600)
    c.request(method, path, body=body)
    r = c.getresponse()
    data = r.read()
    c.close()
    return r.status, data


def handshake_ms(port: int, names: list[str], ctx) -> float:
    t = time.perf_counter()
    for n in names:
        serial_for(port, n, ctx)
    return (time.perf_counter() - t) / len(names) * 1000


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--count", type=int, default=100_000)
    ap.add_argument("--bin", default=str(REPO / ".build" / "release" / "edgeproxy"))
    ap.add_argument("--workdir", default=None, help="reuse a directory of generated certificates")
    ap.add_argument("--chain", action="store_true",
                    help="each .crt carries its issuer after the leaf, as ACME chains do (generation only)")
    args = ap.parse_args()
    args.bin = str(Path(args.bin).resolve())  # the server runs in the work directory
    work = Path(args.workdir or tempfile.mkdtemp(prefix="certsbench-"))
    certs = work / "certs"
    certs.mkdir(parents=True, exist_ok=True)
    results: dict = {"count": args.count, "cores": os.cpu_count(), "binary": args.bin, "chain": args.chain}

    ca_key, ca_cert = make_ca()
    existing = len(list(certs.glob("*.crt")))
    if existing != args.count:
        for f in certs.iterdir():
            f.unlink()
        results["generate_s"] = round(generate(args.count, certs, ca_key, ca_cert, args.chain), 1)
        (work / "ca.key").write_bytes(ca_key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                                           serialization.NoEncryption()))
        (work / "ca.pem").write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
        print(f"generated {args.count} certificates in {results['generate_s']} s", flush=True)
    else:
        ca_key = serialization.load_pem_private_key((work / "ca.key").read_bytes(), None)
        ca_cert = x509.load_pem_x509_certificate((work / "ca.pem").read_bytes())

    https, admin_port = free_port(), free_port()
    (work / "config.yaml").write_text(
        f'listen: {{https: ["127.0.0.1:{https}"], http: []}}\n'
        f'tls: {{certificate_dir: certs, watch: false, session_tickets: 0}}\n'
        f'admin: {{listen: "127.0.0.1:{admin_port}"}}\n'
        f'log: {{access: "off"}}\n'
        f'routes:\n  - respond: {{status: 200, body: "ok\\n", content_type: "text/plain"}}\n')
    t0 = time.monotonic()
    proc = subprocess.Popen([args.bin, "run", "--config", str(work / "config.yaml")], cwd=work,
                            stdout=subprocess.DEVNULL, stderr=open(work / "stderr.log", "wb"))
    try:
        while True:
            try:
                socket.create_connection(("127.0.0.1", https), timeout=0.2).close()
                break
            except OSError:
                if proc.poll() is not None:
                    sys.exit(f"edgeproxy exited: {(work / 'stderr.log').read_text()[-2000:]}")
                time.sleep(0.05)
        results["startup_load_s"] = round(time.monotonic() - t0, 2)
        results["startup_cpu_s"] = round(cpu_s(proc.pid), 2)
        results["rss_mib"] = round(rss_mib(proc.pid), 1)
        print(f"start-up (until the https port answers): {results['startup_load_s']} s "
              f"({results['startup_cpu_s']} s CPU), RSS {results['rss_mib']} MiB", flush=True)
        every = random.sample(range(args.count), min(args.count, 200))
        ctx = ssl.create_default_context(cafile=str(work / "ca.pem"))
        t = time.monotonic()
        assert all(serial_for(https, name_of(i), ctx) for i in every)
        results["first_handshakes_ms"] = round((time.monotonic() - t) / len(every) * 1000, 3)
        print(f"right after start-up, {len(every)} random names each serve (first handshake, client view): "
              f"{results['first_handshakes_ms']} ms each", flush=True)

        # Certificates served from the start-up index are built and checked by OpenSSL in the
        # background; the other figures are taken once that is done.
        while "certificate warm-up done" not in (work / "stderr.log").read_text():
            if proc.poll() is not None:
                sys.exit(f"edgeproxy exited: {(work / 'stderr.log').read_text()[-2000:]}")
            time.sleep(0.1)
        results["warmup_done_s"] = round(time.monotonic() - t0, 2)
        results["warmup_done_cpu_s"] = round(cpu_s(proc.pid), 2)
        results["rss_after_warmup_mib"] = round(rss_mib(proc.pid), 1)
        results["warmup_log"] = next(line for line in (work / "stderr.log").read_text().splitlines()
                                     if "certificate warm-up done" in line)
        print(f"background build done {results['warmup_done_s']} s after exec ({results['warmup_done_cpu_s']} s CPU "
              f"in all), RSS {results['rss_after_warmup_mib']} MiB", flush=True)

        sni_bench = Path(args.bin).parent / "bench-sni"
        if sni_bench.exists():
            results["sni_lookup"] = json.loads(subprocess.run([str(sni_bench), str(args.count)], check=True,
                                                              capture_output=True, text=True).stdout)
            print(f"SNI lookup in process ({sni_bench.name}): {results['sni_lookup']}", flush=True)

        one = [name_of(0)] * 300
        rand = [name_of(random.randrange(args.count)) for _ in range(300)]
        handshake_ms(https, one[:30], ctx)
        results["handshake_ms_one_name"] = round(statistics.median(handshake_ms(https, one, ctx) for _ in range(3)), 3)
        results["handshake_ms_random_names"] = round(statistics.median(handshake_ms(https, rand, ctx) for _ in range(3)), 3)
        print(f"handshake (client view, sequential): one name {results['handshake_ms_one_name']} ms, "
              f"random names {results['handshake_ms_random_names']} ms", flush=True)

        # Replace one, through the admin API: PUT → first handshake that gets the new serial.
        lat = []
        for k in range(20):
            name = name_of(random.randrange(args.count))
            cert, key, serial = leaf_pem(ca_key, ca_cert, name)
            t = time.monotonic()
            status, body = admin(admin_port, "PUT", f"/certificates/{name}", cert + key)
            assert status == 200, body
            while serial_for(https, name, ctx) != serial:
                pass
            lat.append((time.monotonic() - t) * 1000)
        results["replace_one_api_ms_p50"] = round(statistics.median(lat), 1)
        results["replace_one_api_ms_max"] = round(max(lat), 1)
        print(f"replace one (admin PUT → handshake sees it): p50 {results['replace_one_api_ms_p50']} ms, "
              f"max {results['replace_one_api_ms_max']} ms", flush=True)

        # Replace one, file rewrite + SIGHUP: every other file is recognised by stat(2) alone.
        lat = []
        for k in range(5):
            name = name_of(random.randrange(args.count))
            cert, key, serial = leaf_pem(ca_key, ca_cert, name)
            (certs / f"{name}.crt").write_bytes(cert)
            (certs / f"{name}.key").write_bytes(key)
            t = time.monotonic()
            proc.send_signal(signal.SIGHUP)
            while serial_for(https, name, ctx) != serial:
                time.sleep(0.002)
            lat.append((time.monotonic() - t) * 1000)
        results["replace_one_sighup_ms_p50"] = round(statistics.median(lat), 1)
        print(f"replace one (rewrite + SIGHUP, {args.count} files re-stat'ed): p50 {results['replace_one_sighup_ms_p50']} ms", flush=True)

        # Replace all: new bytes in every certificate file (a trailing newline: new content hash,
        # so each is parsed, validated and rebuilt), then one synchronous reload.
        for f in certs.glob("*.crt"):
            with open(f, "ab") as fh:
                fh.write(b"\n")
        t, cpu = time.monotonic(), cpu_s(proc.pid)
        status, body = admin(admin_port, "POST", "/reload")
        results["replace_all_s"] = round(time.monotonic() - t, 2)
        results["replace_all_cpu_s"] = round(cpu_s(proc.pid) - cpu, 2)
        report = json.loads(body)
        results["replace_all_applied"] = report["applied"]
        results["rss_after_replace_all_mib"] = round(rss_mib(proc.pid), 1)
        print(f"replace all ({report['applied']} rebuilt): {results['replace_all_s']} s ({results['replace_all_cpu_s']} s CPU), "
              f"RSS after {results['rss_after_replace_all_mib']} MiB", flush=True)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    out = REPO / "bench" / "results" / f"certs{args.count // 1000}k-{time.strftime('%Y%m%d-%H%M%S')}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2) + "\n")
    print(json.dumps(results, indent=2))
    print(f"work directory (reuse with --workdir): {work}")


if __name__ == "__main__":
    main()
