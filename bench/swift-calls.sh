#!/usr/bin/env bash
# Swift runtime calls per proxied request: uprobes on libswiftCore (swift_retain, swift_release,
# swift_beginAccess, ...) counted by `perf stat` while h2load sends a fixed number of requests
# through edgeproxy to a local nginx origin. Exact counts (no sampling), but each probe costs
# microseconds: this counts work, it does not time it.
#
#   bench/swift-calls.sh [h1|h2] [BIN]      (root, perf; default h1 and .build/release/edgeproxy)
set -euo pipefail
KIND=${1:-h1}; HERE=$(cd "$(dirname "$0")" && pwd)
BIN=${2:-$HERE/../.build/release/edgeproxy}; N=${N:-4000}
command -v perf >/dev/null || { echo "perf not found (Debian linux-perf)" >&2; exit 1; }
command -v h2load >/dev/null || { echo "h2load not found (Debian nghttp2-client)" >&2; exit 1; }
# The runtime is in libswiftCore.so, or in the binary itself when it is linked in (make release).
LIB=$(ldd "$BIN" | awk '/libswiftCore/{print $3}'); LIB=${LIB:-$BIN}
GROUP=probe_$(basename "$LIB" | sed 's/\..*//; s/[^A-Za-z0-9_]/_/g')
FUNCS="swift_retain swift_release swift_bridgeObjectRetain swift_bridgeObjectRelease swift_beginAccess swift_unownedRetainStrong swift_allocObject"
# Inside the binary the runtime has no debug information, which perf probe looks for by name: give
# it each function's address instead.
SYMS=$([[ $LIB == "$BIN" ]] && nm "$BIN" | awk '$2 ~ /^[tT]$/ && $3 ~ /^swift_/ {print $3, "0x" $1}' || true)
for f in $FUNCS; do
    at=$(awk -v f="$f" '$1 == f {print "=" $2; exit}' <<<"$SYMS")
    perf probe -q -x "$LIB" -a "$f$at" 2>/dev/null || true
done
W=$(mktemp -d); trap 'kill $EP $NP 2>/dev/null; wait 2>/dev/null; rm -rf "$W"' EXIT
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 -subj /CN=localhost \
    -addext subjectAltName=DNS:localhost -keyout "$W/key.pem" -out "$W/cert.pem" 2>/dev/null
PO=$((20000 + RANDOM % 5000)); PE=$((PO + 1)); mkdir -p "$W/o"
cat >"$W/o/nginx.conf" <<E2
worker_processes 1; daemon off; pid $W/o/nginx.pid; error_log $W/o/error.log warn;
events { worker_connections 4096; }
http { access_log off; client_body_temp_path $W/o/cb; proxy_temp_path $W/o/px; fastcgi_temp_path $W/o/fc;
  uwsgi_temp_path $W/o/uw; scgi_temp_path $W/o/sc; keepalive_requests 100000000; keepalive_timeout 300s;
  server { listen 127.0.0.1:$PO; location / { default_type text/plain; return 200 '$(head -c 1024 /dev/zero | tr '\0' x)'; } } }
E2
cat >"$W/e.yaml" <<E2
workers: 1
listen: { https: ["127.0.0.1:$PE"], http: [], upgrade_socket: $W/up.sock }
tls: { certificates: [ { cert: $W/cert.pem, key: $W/key.pem } ], session_tickets: 0 }
upstreams: { origin: { servers: ["127.0.0.1:$PO"], keepalive: 64 } }
routes: [ { upstream: origin } ]
log: { access: off }
E2
nginx -e "$W/o/error.log" -p "$W/o" -c "$W/o/nginx.conf" & NP=$!
"$BIN" run --config "$W/e.yaml" >"$W/out.log" 2>&1 & EP=$!
sleep 1.5
if [[ $KIND == h1 ]]; then A=(--h1); M=1; else A=(); M=16; fi
h2load "${A[@]}" -n 2000 -c 4 -m $M "https://localhost:$PE/" >/dev/null 2>&1   # warm: connections, pool
EV=$(for f in $FUNCS; do printf '%s:%s,' "$GROUP" "$f"; done); EV=${EV%,}
perf stat -e "$EV" -p $EP -o "$W/stat.txt" -- sleep 12 >/dev/null 2>&1 & PP=$!
sleep 0.5
h2load "${A[@]}" -n "$N" -c 4 -m $M "https://localhost:$PE/" | grep -E '^requests:' >&2
wait $PP || true
echo "Swift runtime calls per $KIND request ($N requests, h2load -c4 -m$M):"
awk -v n="$N" -v g="$GROUP" '$0 ~ g {gsub(",","",$1); sub(g ":","",$2); t+=$1; printf "  %-28s %7.1f\n", $2, $1/n} END {printf "  %-28s %7.1f\n", "total", t/n}' "$W/stat.txt"
