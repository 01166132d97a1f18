#!/usr/bin/env bash
# OpenSSL calls per full TLS 1.3 handshake, edgeproxy against nginx: how many times each exported
# libssl/libcrypto function runs per handshake in each server (uprobes), listed where the two
# differ. Both servers do the same handshake with the same certificate, so a difference is work
# one of them does and the other does not (how X509_verify_cert in every edgeproxy handshake was
# found: OpenSSL completing a leaf-only chain without SSL_MODE_NO_AUTO_CHAIN).
# Usage: bench/openssl-calls.sh [SECONDS]   (root; perf with uprobes, nginx, go, openssl)
# EDGEPROXY_BIN: the build to look at (default .build/release/edgeproxy); KEEP=1 keeps the work
# directory (configurations, logs, raw counts).
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
SECS=${1:-8}
EDGEPROXY_BIN=${EDGEPROXY_BIN:-$(dirname "$HERE")/.build/release/edgeproxy}
HSCLIENT=$HERE/hsclient/hsclient
LIBSSL=$(ldconfig -p | awk '/libssl.so.3 .*x86-64/ {print $NF; exit}')
LIBCRYPTO=$(ldconfig -p | awk '/libcrypto.so.3 .*x86-64/ {print $NF; exit}')
for tool in perf nginx openssl go python3 taskset; do command -v $tool >/dev/null || { echo "needs $tool (make deps-bench)" >&2; exit 1; }; done
[[ -x $EDGEPROXY_BIN ]] || { echo "no edgeproxy at $EDGEPROXY_BIN (make release)" >&2; exit 1; }
# The probes sit in the shared libssl/libcrypto; a release build carries its own OpenSSL. The same
# OpenSSL does the same work either way, so count with a build that loads the shared one.
readelf -d "$EDGEPROXY_BIN" | grep -q 'libssl\.so' || { echo "$EDGEPROXY_BIN carries its OpenSSL (make release); point EDGEPROXY_BIN at a build that loads the shared one: swift build -c release --static-swift-stdlib --scratch-path /tmp/shared-openssl" >&2; exit 1; }
[[ -x $HSCLIENT ]] || (cd "$HERE/hsclient" && GOPROXY=off GOFLAGS=-mod=mod GOTOOLCHAIN=local go build -o hsclient .)

for port in 18546 18547; do
    [[ -z $(ss -Hltn "( sport = :$port )") ]] || { echo "port $port is in use" >&2; exit 1; }
done
W=$(mktemp -d "${TMPDIR:-/tmp}/openssl-calls.XXXXXX")
pids=()
before=$(perf probe -l 2>/dev/null | awk '{print $1}' | sort -u)
cleanup() {
    kill "${pids[@]}" 2>/dev/null || true
    wait "${pids[@]}" 2>/dev/null || true
    local added
    added=$(comm -13 <(echo "$before") <(perf probe -l 2>/dev/null | awk '{print $1}' | sort -u))
    [[ -z $added ]] || perf probe -q $(printf -- '-d %s ' $added) 2>/dev/null || true
    [[ -n ${KEEP:-} ]] || rm -rf "$W"
}
trap cleanup EXIT

openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 -subj /CN=localhost \
    -addext subjectAltName=DNS:localhost -keyout "$W/key.pem" -out "$W/cert.pem" 2>/dev/null
mkdir -p "$W/n"
cat >"$W/n/nginx.conf" <<EOF
worker_processes 1; daemon off; pid $W/n/nginx.pid; error_log $W/n/error.log warn;
events { worker_connections 4096; }
http { access_log off; client_body_temp_path $W/n/b; proxy_temp_path $W/n/p; fastcgi_temp_path $W/n/f;
  uwsgi_temp_path $W/n/u; scgi_temp_path $W/n/s;
  server { listen 127.0.0.1:18546 ssl; ssl_certificate $W/cert.pem; ssl_certificate_key $W/key.pem;
    ssl_protocols TLSv1.2 TLSv1.3; ssl_ecdh_curve X25519:prime256v1; ssl_session_cache off;
    ssl_session_tickets off; ssl_prefer_server_ciphers on; location / { return 200 ok; } } }
EOF
cat >"$W/edgeproxy.yaml" <<EOF
workers: 1
listen: { https: ["127.0.0.1:18547"], http: [] }
tls: { certificates: [ { cert: $W/cert.pem, key: $W/key.pem } ], session_tickets: 0 }
upstreams: { origin: { servers: ["127.0.0.1:18548"] } }
routes: [ { upstream: origin } ]
log: { access: off }
EOF
OPENSSL_CONF=$HERE/openssl-notickets.cnf taskset -c 0 nginx -e "$W/n/error.log" -p "$W/n" -c "$W/n/nginx.conf" & pids+=($!)
taskset -c 0 "$EDGEPROXY_BIN" run --config "$W/edgeproxy.yaml" >"$W/edgeproxy.log" 2>&1 & pids+=($!)
sleep 1.5
nginx_worker=$(ps -o pid= --ppid "${pids[0]}" | head -1 | tr -d ' ')
load() { taskset -c 1 "$HSCLIENT" -addr "127.0.0.1:$1" -sni localhost -mode handshake -c 8 -d "${2}s" >"$W/load.json" || { echo "handshakes against port $1 failed: $(head -c 300 "$W/load.json")" >&2; exit 1; }; }

# Which functions: those either server spends time in during handshakes (a short profile).
for p in "$nginx_worker:18546" "${pids[1]}:18547"; do
    load "${p#*:}" 3 & l=$!
    perf record -q -F 999 -p "${p%:*}" -o "$W/profile.data" -- sleep 2 >/dev/null 2>&1
    wait $l
    perf report -i "$W/profile.data" --no-children --sort dso,sym --stdio -g none 2>/dev/null |
        awk '$2 ~ /^lib(ssl|crypto)\.so/ && $4 !~ /^0x/ {print $2, $4}' >>"$W/symbols"
done
echo "libssl.so.3 SSL_new" >>"$W/symbols"
sort -u "$W/symbols" | sed 's/@.*//' | sort -u | while read -r lib fn; do
    [[ $fn == *_it ]] && continue   # ASN.1 item templates are data
    [[ $lib == libssl* ]] && path=$LIBSSL || path=$LIBCRYPTO
    perf probe -q -x "$path" -a "$fn" >/dev/null 2>&1 || true
done
# Drop probes the kernel refuses to place in a running process.
events=()
for e in $(comm -13 <(echo "$before") <(perf probe -l 2>/dev/null | awk '{print $1}' | sort -u)); do
    if perf stat -e "$e" -p "$nginx_worker" -- sleep 0.01 >/dev/null 2>&1; then events+=("$e")
    else perf probe -q -d "$e" 2>/dev/null || true; fi
done
(( ${#events[@]} )) || { echo "no probes could be placed" >&2; exit 1; }
# The handshake count: SSL_new, whether this run placed its probe or one was there already.
[[ " ${events[*]} " == *" probe_libssl:SSL_new "* ]] || events+=(probe_libssl:SSL_new)
list=$(IFS=,; echo "${events[*]}")
echo "counting ${#events[@]} functions, ${SECS} s of handshakes per server" >&2

# Counted one server at a time, after a warm-up (a carried certificate, caches).
for p in "nginx:$nginx_worker:18546" "edgeproxy:${pids[1]}:18547"; do
    IFS=: read -r name pid port <<<"$p"
    load "$port" 1
    perf stat -x, -e "$list" -p "$pid" -o "$W/$name.stat" & s=$!
    sleep 2   # placing the probes
    load "$port" "$SECS"
    kill -INT $s; wait $s || true
done

python3 - "$W/edgeproxy.stat" "$W/nginx.stat" <<'EOF'
import sys
def load(path):
    counts = {}
    for line in open(path):
        f = line.strip().split(',')
        if len(f) > 2 and f[0].isdigit():
            counts[f[2]] = counts.get(f[2], 0) + int(f[0])
    return counts
e, n = load(sys.argv[1]), load(sys.argv[2])
he, hn = e.get('probe_libssl:SSL_new', 0), n.get('probe_libssl:SSL_new', 0)
if not he or not hn:
    sys.exit('no handshake counted (SSL_new): too short a run?')
print(f'handshakes counted: edgeproxy {he}, nginx {hn}')
print(f'{"edgeproxy":>10} {"nginx":>10} {"diff":>8}  calls per handshake')
rows = [(e.get(k, 0) / he, n.get(k, 0) / hn, k.split(':', 1)[1]) for k in set(e) | set(n)]
for a, b, name in sorted(rows, key=lambda r: -abs(r[0] - r[1])):
    if abs(a - b) >= 0.5:
        print(f'{a:10.1f} {b:10.1f} {a - b:+8.1f}  {name}')
EOF
