#!/usr/bin/env python3
"""What a PROXY protocol header and a client certificate add to a full TLS handshake, edgeproxy
against nginx in one run.

    python3 bench/front_door.py [--bin .build/release/edgeproxy] [--duration 8] [--rounds 3] [--proxy v2]

Each server runs one worker pinned to CPU 0 with three TLS listeners on one P-256 certificate: a
plain one, one that expects a PROXY header (nginx: `listen ... ssl proxy_protocol`; edgeproxy:
`listen.proxy_protocol`), and one that requires a client certificate (nginx: `ssl_verify_client
on`; edgeproxy: `tls.client_auth`, P-256 client certificate from a P-256 CA). `hsclient -mode
handshake` (full TLS 1.3 handshakes + close_notify, no session cache) pinned to CPU 1 drives each
of the six targets in turn, the order alternating per round, with `-proxy` for the PROXY
listeners and `-cert` for the client-certificate ones.

Then keep-alive requests to a TLS origin: both servers proxy to one nginx TLS origin on CPU 1
(`return 200` with 1 KiB), verifying its certificate and name and resuming its sessions (nginx:
`proxy_ssl_verify on`, `proxy_ssl_session_reuse on`, upstream keepalive 64; edgeproxy:
`upstreams.NAME.tls`, keepalive 64); `wrk -t1 -c64` on CPU 1 drives each in turn; the figure is the
server's CPU time per request. The figure is the server's own CPU time
(/proc/PID/stat utime+stime of every process of the server) per completed handshake, median over
rounds; TLS 1.3 session tickets are off for both (nginx also gets an OPENSSL_CONF with
NumTickets = 0, as bench/run.sh does). Results: stdout and bench/results/front-door-<date>.json.
"""

from __future__ import annotations

import argparse
import json
import re
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
HSCLIENT = REPO / "bench" / "hsclient" / "hsclient"
TICK = os.sysconf("SC_CLK_TCK")


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def free_port() -> int:
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def cpu_ticks(pids: list[int]) -> int:
    total = 0
    for pid in pids:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        total += int(fields[11]) + int(fields[12])
    return total


def wait_port(port: int, proc: subprocess.Popen, timeout: float = 10) -> None:
    import socket
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listens on {port}")


def children(pid: int) -> list[int]:
    out = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True).stdout.split()
    return [pid] + [int(p) for p in out]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--bin", default=str(REPO / ".build" / "release" / "edgeproxy"))
    ap.add_argument("--duration", type=float, default=8)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--proxy", default="v2", choices=["v1", "v2"])
    ap.add_argument("--conns", type=int, default=16)
    args = ap.parse_args()
    if not HSCLIENT.exists() or (REPO / "bench" / "hsclient" / "main.go").stat().st_mtime > HSCLIENT.stat().st_mtime:
        log("building hsclient (needs the Debian package golang-go)")
        subprocess.run(["go", "build", "-o", "hsclient", "."], cwd=HSCLIENT.parent, check=True,
                       env={**os.environ, "GOPROXY": "off", "GOFLAGS": "-mod=mod", "GOTOOLCHAIN": "local"})
    work = Path(tempfile.mkdtemp(prefix="edgeproxy-pp-bench."))
    cert, key = work / "cert.pem", work / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-days", "7",
                    "-subj", "/CN=localhost", "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1",
                    "-keyout", str(key), "-out", str(cert)], check=True, capture_output=True)
    # Client certificates: a P-256 CA and one client (clientAuth).
    ca_key, ca_crt, cl_key, cl_csr, cl_crt = (work / n for n in ("ca.key", "ca.pem", "client.key", "client.csr", "client.pem"))
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-days", "7",
                    "-subj", "/CN=bench clients CA", "-keyout", str(ca_key), "-out", str(ca_crt)], check=True, capture_output=True)
    subprocess.run(["openssl", "req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
                    "-subj", "/CN=bench client", "-keyout", str(cl_key), "-out", str(cl_csr)], check=True, capture_output=True)
    (work / "client.ext").write_text("extendedKeyUsage = clientAuth\n")
    subprocess.run(["openssl", "x509", "-req", "-in", str(cl_csr), "-CA", str(ca_crt), "-CAkey", str(ca_key), "-CAcreateserial",
                    "-days", "7", "-extfile", str(work / "client.ext"), "-out", str(cl_crt)], check=True, capture_output=True)
    (work / "notickets.cnf").write_text("openssl_conf = openssl_init\n[openssl_init]\nssl_conf = ssl_sect\n[ssl_sect]\n"
                                        "system_default = system_default_sect\n[system_default_sect]\nNumTickets = 0\n")
    ports = {t: free_port() for t in ("nginx", "nginx+proxy", "nginx+mtls", "edgeproxy", "edgeproxy+proxy", "edgeproxy+mtls")}
    ka = {"nginx": free_port(), "edgeproxy": free_port()}
    origin_port = free_port()
    (work / "origin").mkdir()
    for d in ("body", "proxy", "fastcgi", "uwsgi", "scgi"):
        (work / "origin" / d).mkdir()
    o = work / "origin"
    (o / "nginx.conf").write_text(f"""worker_processes 1;
daemon off;
pid {o}/nginx.pid;
error_log {o}/error.log warn;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    client_body_temp_path {o}/body; proxy_temp_path {o}/proxy; fastcgi_temp_path {o}/fastcgi;
    uwsgi_temp_path {o}/uwsgi; scgi_temp_path {o}/scgi;
    keepalive_timeout 300s;
    keepalive_requests 100000000;
    server {{
        listen 127.0.0.1:{origin_port} ssl backlog=4096;
        ssl_certificate {cert};
        ssl_certificate_key {key};
        ssl_session_cache shared:origin:10m;
        location / {{ return 200 "{'x' * 1023}\\n"; }}
    }}
}}
""")
    for d in ("body", "proxy", "fastcgi", "uwsgi", "scgi"):
        (work / d).mkdir()
    # The same TLS for both servers: no session cache, no tickets (full handshakes only).
    tls = (f"ssl_certificate {cert}; ssl_certificate_key {key}; ssl_protocols TLSv1.2 TLSv1.3; "
           "ssl_ecdh_curve X25519:prime256v1; ssl_session_cache off; ssl_session_tickets off;")
    (work / "nginx.conf").write_text(f"""worker_processes 1;
daemon off;
pid {work}/nginx.pid;
error_log {work}/nginx-error.log warn;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    client_body_temp_path {work}/body; proxy_temp_path {work}/proxy; fastcgi_temp_path {work}/fastcgi;
    uwsgi_temp_path {work}/uwsgi; scgi_temp_path {work}/scgi;
    server {{
        listen 127.0.0.1:{ports['nginx']} ssl backlog=4096;
        listen 127.0.0.1:{ports['nginx+proxy']} ssl proxy_protocol backlog=4096;
        {tls}
        location / {{ return 200 "ok\\n"; }}
    }}
    server {{
        listen 127.0.0.1:{ports['nginx+mtls']} ssl backlog=4096;
        {tls}
        ssl_verify_client on;
        ssl_client_certificate {ca_crt};
        location / {{ return 200 "ok\\n"; }}
    }}
    upstream tls_origin {{
        server 127.0.0.1:{origin_port};
        keepalive 64;
        keepalive_requests 100000000;
    }}
    keepalive_timeout 300s;
    keepalive_requests 100000000;
    server {{
        listen 127.0.0.1:{ka['nginx']} ssl backlog=4096;
        ssl_certificate {cert};
        ssl_certificate_key {key};
        ssl_session_cache off;
        ssl_session_tickets off;
        location / {{
            proxy_pass https://tls_origin;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_ssl_server_name on;
            proxy_ssl_name localhost;
            proxy_ssl_verify on;
            proxy_ssl_trusted_certificate {cert};
            proxy_ssl_session_reuse on;
        }}
    }}
}}
""")
    (work / "edgeproxy.yaml").write_text(f"""workers: 1
listen:
  https: ["127.0.0.1:{ports['edgeproxy']}", "127.0.0.1:{ports['edgeproxy+proxy']}", "127.0.0.1:{ports['edgeproxy+mtls']}",
          "127.0.0.1:{ka['edgeproxy']}"]
  http: []
  proxy_protocol: {{ from: ["127.0.0.1"], listeners: ["127.0.0.1:{ports['edgeproxy+proxy']}"] }}
tls:
  certificates: [ {{ cert: {cert}, key: {key} }} ]
  session_tickets: 0
  client_auth: {{ ca: {ca_crt}, mode: required, listeners: ["127.0.0.1:{ports['edgeproxy+mtls']}"] }}
upstreams: {{ origin: {{ servers: ["127.0.0.1:{origin_port}"], keepalive: 64, tls: {{ ca: {cert}, server_name: localhost }} }} }}
routes: [ {{ upstream: origin }} ]
log: {{ access: off }}
""")
    origin = subprocess.Popen(["taskset", "-c", "1", "/usr/sbin/nginx", "-c", str(o / "nginx.conf"), "-p", str(o)],
                              stdout=subprocess.DEVNULL, stderr=open(o / "nginx.out", "w"))
    procs = {
        "nginx": subprocess.Popen(["taskset", "-c", "0", "/usr/sbin/nginx", "-c", str(work / "nginx.conf"), "-p", str(work)],
                                  env={**os.environ, "OPENSSL_CONF": str(work / "notickets.cnf")},
                                  stdout=subprocess.DEVNULL, stderr=open(work / "nginx.out", "w")),
        "edgeproxy": subprocess.Popen(["taskset", "-c", "0", args.bin, "run", "--config", str(work / "edgeproxy.yaml")],
                                      stdout=subprocess.DEVNULL, stderr=open(work / "edgeproxy.err", "w")),
    }
    results: dict = {"date": time.strftime("%Y-%m-%d %H:%M:%S"), "proxy": args.proxy, "duration_s": args.duration,
                     "rounds": args.rounds, "conns": args.conns, "cpu_us_per_handshake": {t: [] for t in ports}}
    try:
        for peer, proc in procs.items():
            for target in ports:
                if target.startswith(peer):
                    wait_port(ports[target], proc)
        time.sleep(0.5)
        pids = {"nginx": children(procs["nginx"].pid), "edgeproxy": [procs["edgeproxy"].pid]}
        targets = list(ports)
        for r in range(args.rounds):
            order = targets if r % 2 == 0 else targets[::-1]
            for target in order:
                peer = target.split("+")[0]
                cmd = ["taskset", "-c", "1", str(HSCLIENT), "-mode", "handshake", "-addr", f"127.0.0.1:{ports[target]}",
                       "-c", str(args.conns), "-d", f"{args.duration}s"]
                if target.endswith("+proxy"):
                    cmd += ["-proxy", args.proxy]
                if target.endswith("+mtls"):
                    cmd += ["-cert", str(cl_crt), "-key", str(cl_key)]
                before = cpu_ticks(pids[peer])
                out = json.loads(subprocess.run(cmd, capture_output=True, text=True, check=True).stdout)
                used = (cpu_ticks(pids[peer]) - before) / TICK
                if out["ok"] == 0 or out["errors"] or out["resumed"]:
                    raise RuntimeError(f"{target}: {out}")
                us = used / out["ok"] * 1e6
                results["cpu_us_per_handshake"][target].append(round(us, 1))
                log(f"round {r + 1} {target}: {out['ok']} handshakes, {us:.1f} µs server CPU each")
        med = {t: statistics.median(v) for t, v in results["cpu_us_per_handshake"].items()}
        results["median_us"] = med
        results["added_by_proxy_header_us"] = {p: round(med[f"{p}+proxy"] - med[p], 1) for p in ("edgeproxy", "nginx")}
        results["added_by_client_certificate_us"] = {p: round(med[f"{p}+mtls"] - med[p], 1) for p in ("edgeproxy", "nginx")}
        results["ratio_edgeproxy_over_nginx"] = {"plain": round(med["edgeproxy"] / med["nginx"], 3),
                                                 "with_proxy_header": round(med["edgeproxy+proxy"] / med["nginx+proxy"], 3),
                                                 "with_client_certificate": round(med["edgeproxy+mtls"] / med["nginx+mtls"], 3)}
        # Keep-alive requests through each server to the TLS origin.
        results["keepalive_tls_origin_cpu_us_per_request"] = {p: [] for p in ka}
        results["keepalive_tls_origin_requests_per_s"] = {p: [] for p in ka}
        for r in range(args.rounds):
            for peer in (list(ka) if r % 2 == 0 else list(ka)[::-1]):
                before = cpu_ticks(pids[peer])
                out = subprocess.run(["taskset", "-c", "1", "wrk", "-t1", "-c64", f"-d{int(args.duration)}s",
                                      f"https://127.0.0.1:{ka[peer]}/"], capture_output=True, text=True, check=True).stdout
                used = (cpu_ticks(pids[peer]) - before) / TICK
                total = int(re.search(r"(\d+) requests in", out).group(1))
                if "Non-2xx" in out or "Socket errors" in out or total == 0:
                    raise RuntimeError(f"{peer} through the TLS origin: {out}")
                us = used / total * 1e6
                results["keepalive_tls_origin_cpu_us_per_request"][peer].append(round(us, 1))
                results["keepalive_tls_origin_requests_per_s"][peer].append(round(total / args.duration))
                log(f"round {r + 1} {peer} keep-alive to the TLS origin: {total} requests, {us:.1f} µs server CPU each")
        kam = {p: statistics.median(v) for p, v in results["keepalive_tls_origin_cpu_us_per_request"].items()}
        results["ratio_edgeproxy_over_nginx"]["keepalive_to_tls_origin"] = round(kam["edgeproxy"] / kam["nginx"], 3)
        results["keepalive_tls_origin_median_us"] = kam
        keys = ("median_us", "added_by_proxy_header_us", "added_by_client_certificate_us", "keepalive_tls_origin_median_us",
                "ratio_edgeproxy_over_nginx")
        log(json.dumps({k: results[k] for k in keys}, indent=1))
        out = REPO / "bench" / "results" / f"front-door-{time.strftime('%Y%m%d-%H%M%S')}.json"
        out.write_text(json.dumps(results, indent=2) + "\n")
        log(f"written {out}")
        return 0
    finally:
        for proc in list(procs.values()) + [origin]:
            proc.send_signal(signal.SIGTERM)
        for proc in list(procs.values()) + [origin]:
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
