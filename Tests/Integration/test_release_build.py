"""The release binary as it ships (`make release`): OpenSSL (libssl-dev's static archives) and the
Swift runtime, Foundation and Dispatch inside it, so calls into them are direct (the handshake's
cost depends on it, bench/history.md); nghttp2 and glibc from the system. A build that fell back
to the shared libraries (pkg-config's library directory ahead of the archives, libssl-dev without
them) would still work, a few per cent slower: this says so.
"""

from __future__ import annotations

import re
import subprocess

from tools import need_tool


def needed(binary) -> list[str]:
    readelf = need_tool("readelf", "binutils")
    out = subprocess.run([readelf, "-d", str(binary)], capture_output=True, text=True, check=True).stdout
    return re.findall(r"\(NEEDED\)\s+Shared library: \[([^\]]+)\]", out)


def test_the_release_binary_carries_openssl_and_the_swift_runtime(release_bin):
    libraries = needed(release_bin)
    assert "libc.so.6" in libraries and any(l.startswith("libnghttp2.so") for l in libraries), libraries
    carried = [l for l in libraries if re.match(r"lib(ssl|crypto|swift|Foundation|dispatch|BlocksRuntime)", l)]
    assert carried == [], f"linked as shared libraries: {carried} (build with `make release`)"
    nm = need_tool("nm", "binutils")
    symbols = subprocess.run([nm, str(release_bin)], capture_output=True, text=True, check=True).stdout
    assert re.search(r"^[0-9a-f]+ [tT] SSL_do_handshake$", symbols, re.M), "no SSL_do_handshake inside the binary"
    # What it carries is what `version` names.
    version = subprocess.run([str(release_bin), "version"], capture_output=True, text=True, timeout=30).stdout
    assert re.search(r"^OpenSSL 3\.\d+\.\d+", version, re.M), version
