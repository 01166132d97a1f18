"""Helpers for the certificate reload and admin API tests: a continuous handshake stream, an
admin API client, leaves the test PKI does not mint (expired), latency summaries."""

from __future__ import annotations

import datetime
import os
import http.client
import json
import socket
import statistics
import threading
import time
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec

from httpclient import client_context, tls_connect
from pki import Leaf, _key_pem, _name
from pki import describe_der

REPO = Path(__file__).resolve().parents[2]


def wait_until(pred, timeout: float, interval: float = 0.02, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        v = pred()
        if v:
            return v
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


class HandshakeStream(threading.Thread):
    """New TLS connections one after another (verified against the test CA), each with one GET.
    Records (start, end, serial) per handshake and every failure."""

    def __init__(self, port: int, sni: str, cafile: Path):
        super().__init__(daemon=True)
        self.port, self.sni = port, sni
        self.ctx = client_context(cafile=cafile)
        self.records: list[tuple[float, float, int]] = []
        self.errors: list[str] = []
        self.latest: int | None = None
        self._halt = threading.Event()

    def run(self):
        request = f"GET / HTTP/1.1\r\nHost: {self.sni}\r\nConnection: close\r\n\r\n".encode()
        while not self._halt.is_set():
            t0 = time.monotonic()
            try:
                with tls_connect(self.port, self.sni, ctx=self.ctx, timeout=10) as s:
                    t1 = time.monotonic()
                    serial = describe_der(s.getpeercert(binary_form=True))["serial"]
                    s.sendall(request)
                    data = b""
                    while chunk := s.recv(65536):
                        data += chunk
                if not data.startswith(b"HTTP/1.1 200"):
                    self.errors.append(f"request failed: {data[:80]!r}")
                    continue
                self.records.append((t0, t1, serial))
                self.latest = serial
            except Exception as e:  # noqa: BLE001 - every failure counts
                self.errors.append(f"{type(e).__name__}: {e}")

    def stop(self):
        self._halt.set()
        self.join(15)

    def first_seen(self, serial: int, after: float) -> float | None:
        """End of the first handshake that started after `after` and got `serial`."""
        for t0, t1, s in reversed(self.records):
            if t0 < after:
                break
        for t0, t1, s in self.records:
            if t0 >= after and s == serial:
                return t1
        return None


def percentile(values: list[float], p: float) -> float:
    v = sorted(values)
    return v[min(len(v) - 1, int(round(p / 100 * (len(v) - 1))))]


def summarize(latencies_s: list[float]) -> dict:
    ms = [x * 1000 for x in latencies_s]
    return {"swaps": len(ms), "p50_ms": round(percentile(ms, 50), 2), "p99_ms": round(percentile(ms, 99), 2),
            "max_ms": round(max(ms), 2), "mean_ms": round(statistics.mean(ms), 2)}


def record_result(name: str, result: dict) -> None:
    """Prints the figure; with EDGEPROXY_LATENCY_OUT=FILE also records it there (the test run
    itself never writes into the repository)."""
    print(f"\n{name}: {result}")
    target = os.environ.get("EDGEPROXY_LATENCY_OUT")
    if not target:
        return
    out = Path(target)
    out.parent.mkdir(parents=True, exist_ok=True)
    data = json.loads(out.read_text()) if out.exists() else {}
    data[name] = result
    out.write_text(json.dumps(data, indent=2) + "\n")


class Admin:
    def __init__(self, port: int, token: str | None = None):
        self.port, self.token = port, token

    def request(self, method: str, path: str, body: bytes | None = None, token: str | None = None,
                headers: dict | None = None) -> tuple[int, dict, bytes]:
        c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        h = dict(headers or {})
        tok = token if token is not None else self.token
        if tok:
            h["Authorization"] = f"Bearer {tok}"
        c.request(method, path, body=body, headers=h)
        r = c.getresponse()
        data = r.read()
        hdrs = {k.lower(): v for k, v in r.getheaders()}
        c.close()
        return r.status, hdrs, data

    def json(self, method: str, path: str, body: bytes | None = None):
        status, _, data = self.request(method, path, body)
        return status, json.loads(data)

    def metrics(self) -> str:
        status, _, data = self.request("GET", "/metrics")
        assert status == 200
        return data.decode()


def metric(text: str, metric_name: str, **labels) -> float:
    """The value of one sample in Prometheus text (0 when absent)."""
    want = ",".join(f'{k}="{v}"' for k, v in labels.items())
    for line in text.splitlines():
        if line.startswith("#"):
            continue
        key, _, value = line.rpartition(" ")
        if key == metric_name or (labels and key == f"{metric_name}{{{want}}}"):
            return float(value)
    return 0.0


def expired_leaf(pki, names: list[str]) -> Leaf:
    """A leaf signed by the test CA whose validity ended yesterday."""
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.timezone.utc)
    serial = x509.random_serial_number()
    cert = (x509.CertificateBuilder().subject_name(_name(names[0])).issuer_name(pki.ca_cert.subject)
            .public_key(key.public_key()).serial_number(serial)
            .not_valid_before(now - datetime.timedelta(days=30)).not_valid_after(now - datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName(n) for n in names]), critical=False)
            .sign(pki.ca_key, hashes.SHA256()))
    from cryptography.hazmat.primitives import serialization
    return Leaf(names=names, key_type="ec", serial=serial, cert_pem=cert.public_bytes(serialization.Encoding.PEM),
                key_pem=_key_pem(key), ca_pem=pki.ca_pem)
