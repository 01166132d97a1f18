"""Helpers for the abuse tests: a prober that keeps asking for a page while an attack runs, and
readings of the proxy process from /proc (CPU time, descriptors)."""

from __future__ import annotations

import os
import threading
import time

from httpclient import https_get

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of the process so far."""
    fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def fd_count(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def client_connections(port: int) -> int:
    """Accepted connections on loopback `port` the server still holds (ESTABLISHED or CLOSE_WAIT),
    from /proc/net/tcp: unlike a descriptor count, pooled origin connections do not count."""
    held = 0
    for line in open("/proc/net/tcp").read().splitlines()[1:]:
        local, state = line.split()[1], line.split()[3]
        if int(local.split(":")[1], 16) == port and state in ("01", "08"):
            held += 1
    return held


def accepted_connections(pid: int, port: int) -> int:
    """Connections on loopback `port` the process has accepted (its socket descriptors matched
    against /proc/net/tcp), not those still waiting in the listen backlog."""
    inodes = set()
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            link = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue
        if link.startswith("socket:["):
            inodes.add(link[8:-1])
    accepted = 0
    for line in open("/proc/net/tcp").read().splitlines()[1:]:
        f = line.split()
        if int(f[1].split(":")[1], 16) == port and f[3] != "0A" and f[9] in inodes:
            accepted += 1
    return accepted


def wait_for_no_clients(port: int, within: float = 10.0) -> None:
    deadline = time.monotonic() + within
    while (n := client_connections(port)) > 0:
        assert time.monotonic() < deadline, f"{n} client connections still held after {within} s"
        time.sleep(0.1)


class Prober:
    """A normal client asking for `path` on a new TLS connection every `interval` while an attack
    runs. `failures` lists what went wrong; `worst` is the slowest answer in seconds."""

    def __init__(self, port: int, path: str = "/", sni: str = "a.test", interval: float = 0.25,
                 timeout: float = 5.0, expect: int = 200):
        self.port, self.path, self.sni = port, path, sni
        self.interval, self.timeout, self.expect = interval, timeout, expect
        self.latencies: list[float] = []
        self.failures: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while True:                                     # at least one probe, however short the attack
            t0 = time.monotonic()
            try:
                r = https_get(self.port, self.path, sni=self.sni, timeout=self.timeout)
                if r.status != self.expect:
                    self.failures.append(f"status {r.status}")
            except Exception as e:                      # a refused or timed-out probe is a failure
                self.failures.append(f"{type(e).__name__}: {e}")
            self.latencies.append(time.monotonic() - t0)
            if self._stop.wait(self.interval):
                return

    @property
    def worst(self) -> float:
        return max(self.latencies, default=0.0)

    def __enter__(self) -> "Prober":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join(self.timeout + 5)

    def check(self, bound: float = 2.0, at_least: int = 3) -> None:
        """Every probe answered with the expected status within `bound` seconds."""
        assert len(self.latencies) >= at_least, f"only {len(self.latencies)} probes ran"
        assert not self.failures, f"normal requests failed during the attack: {self.failures[:5]}"
        assert self.worst < bound, f"a normal request took {self.worst:.2f} s (bound {bound} s)"


class PeakRSS:
    """Samples the proxy's VmRSS every 100 ms while in use; `.peak` in kB."""

    def __init__(self, proxy):
        self.proxy, self.peak = proxy, proxy.rss_kb()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(0.1):
            self.peak = max(self.peak, self.proxy.rss_kb())

    def __enter__(self) -> "PeakRSS":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join(5)
        self.peak = max(self.peak, self.proxy.rss_kb())
