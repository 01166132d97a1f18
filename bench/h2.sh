#!/usr/bin/env bash
# HTTP/2 front benchmark: edgeproxy vs nginx (`listen ... ssl http2;`), both one worker pinned to
# CPU 0, same P-256 certificate, same plain-HTTP nginx origin (1 KiB body) on CPU 1, h2load on
# CPU 1: `h2load -t1 -c32 -m16 -D DURATION`. Figures: requests/s and server CPU µs per request
# (utime+stime of every process of the server from /proc), median over ROUNDS, peers alternated.
# Loopback only. Usage: EDGEPROXY_BIN=.build/release/edgeproxy bench/h2.sh
set -euo pipefail

EDGEPROXY_BIN=${EDGEPROXY_BIN:-.build/release/edgeproxy}
NGINX_BIN=${NGINX_BIN:-/usr/sbin/nginx}
DURATION=${DURATION:-10}
ROUNDS=${ROUNDS:-3}
SERVER_CPU=${SERVER_CPU:-0}
CLIENT_CPU=${CLIENT_CPU:-1}
ORIGIN_PORT=${ORIGIN_PORT:-18480}
NGINX_PORT=${NGINX_PORT:-18443}
EDGEPROXY_PORT=${EDGEPROXY_PORT:-18444}
WORK=$(mktemp -d /tmp/edgeproxy-h2bench.XXXXXX)
CLK_TCK=$(getconf CLK_TCK)
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap cleanup EXIT

for port in $ORIGIN_PORT $NGINX_PORT $EDGEPROXY_PORT; do
    if ss -ltn "sport = :$port" | grep -q LISTEN; then echo "port $port is in use" >&2; exit 1; fi
done
[[ -x $EDGEPROXY_BIN ]] || { echo "no edgeproxy at $EDGEPROXY_BIN (swift build -c release)" >&2; exit 1; }

openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 -subj /CN=localhost \
    -addext subjectAltName=DNS:localhost -keyout "$WORK/key.pem" -out "$WORK/cert.pem" 2>/dev/null
temps() { printf 'client_body_temp_path %s/cb; proxy_temp_path %s/px; fastcgi_temp_path %s/fc; uwsgi_temp_path %s/uw; scgi_temp_path %s/sc;' "$1" "$1" "$1" "$1" "$1"; }

mkdir -p "$WORK/origin" "$WORK/nginx" "$WORK/edgeproxy"
cat >"$WORK/origin/nginx.conf" <<EOF
worker_processes 1; daemon off; pid $WORK/origin/nginx.pid; error_log $WORK/origin/error.log warn;
events { worker_connections 4096; }
http { access_log off; $(temps "$WORK/origin") keepalive_requests 100000000; keepalive_timeout 300s;
  server { listen 127.0.0.1:$ORIGIN_PORT backlog=4096;
    location / { default_type text/plain; return 200 '$(head -c 1024 /dev/zero | tr '\0' 'x')'; } } }
EOF
cat >"$WORK/nginx/nginx.conf" <<EOF
worker_processes 1; daemon off; pid $WORK/nginx/nginx.pid; error_log $WORK/nginx/error.log warn;
events { worker_connections 10000; }
http { access_log off; $(temps "$WORK/nginx") keepalive_timeout 300s; keepalive_requests 100000000;
  upstream origin { server 127.0.0.1:$ORIGIN_PORT; keepalive 64; keepalive_requests 100000000; keepalive_timeout 300s; }
  server { listen 127.0.0.1:$NGINX_PORT ssl http2 backlog=4096;
    ssl_certificate $WORK/cert.pem; ssl_certificate_key $WORK/key.pem; ssl_protocols TLSv1.2 TLSv1.3;
    ssl_ecdh_curve X25519:prime256v1; ssl_session_cache off; ssl_session_tickets off;
    location / { proxy_pass http://origin; proxy_http_version 1.1; proxy_set_header Connection ""; } } }
EOF
cat >"$WORK/edgeproxy/edgeproxy.yaml" <<EOF
workers: 1
listen: { https: ["127.0.0.1:$EDGEPROXY_PORT"], http: [] }
tls: { certificates: [ { cert: $WORK/cert.pem, key: $WORK/key.pem } ], session_tickets: 0 }
upstreams: { origin: { servers: ["127.0.0.1:$ORIGIN_PORT"], keepalive: 64 } }
routes: [ { upstream: origin } ]
log: { access: off }
EOF

wait_port() { for _ in $(seq 100); do ss -ltn "sport = :$1" | grep -q LISTEN && return 0; sleep 0.1; done; echo "nothing on $1" >&2; exit 1; }
taskset -c "$CLIENT_CPU" "$NGINX_BIN" -e "$WORK/origin/error.log" -p "$WORK/origin" -c "$WORK/origin/nginx.conf" & PIDS+=($!)
taskset -c "$SERVER_CPU" "$NGINX_BIN" -e "$WORK/nginx/error.log" -p "$WORK/nginx" -c "$WORK/nginx/nginx.conf" & NGINX_PID=$!; PIDS+=($NGINX_PID)
taskset -c "$SERVER_CPU" "$EDGEPROXY_BIN" run --config "$WORK/edgeproxy/edgeproxy.yaml" >"$WORK/edgeproxy/out.log" 2>&1 & EDGE_PID=$!; PIDS+=($EDGE_PID)
wait_port "$ORIGIN_PORT"; wait_port "$NGINX_PORT"; wait_port "$EDGEPROXY_PORT"
sleep 0.5

# CPU ticks of a process and its children (nginx: master + worker).
ticks() { local sum=0 p; for p in $1 $(pgrep -P "$1" || true); do
    sum=$((sum + $(awk '{print $14 + $15}' "/proc/$p/stat"))); done; echo $sum; }

declare -A RPS CPU
run_one() {  # peer port pid
    local t0 t1 out reqs rps errs
    t0=$(ticks "$3")
    out=$(taskset -c "$CLIENT_CPU" h2load -t1 -c32 -m16 -D "$DURATION" "https://localhost:$2/" 2>&1)
    t1=$(ticks "$3")
    reqs=$(sed -nE 's/^requests: [0-9]+ total, [0-9]+ started, ([0-9]+) done.*/\1/p' <<<"$out")
    errs=$(sed -nE 's/.* ([0-9]+) failed, ([0-9]+) errored.*/\1+\2/p' <<<"$out")
    rps=$(sed -nE 's/^finished in .*, ([0-9.]+) req\/s.*/\1/p' <<<"$out")
    local us; us=$(awk -v t=$((t1 - t0)) -v hz="$CLK_TCK" -v n="$reqs" 'BEGIN { printf "%.1f", t / hz * 1e6 / n }')
    echo "$1 round $ROUND: $rps req/s, $us µs server CPU/request, errors $errs" >&2
    RPS[$1]+="$rps " CPU[$1]+="$us "
}
median() { tr ' ' '\n' <<<"$1" | grep -v '^$' | sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }

# Warm-up (page cache, upstream pools, allocators).
taskset -c "$CLIENT_CPU" h2load -t1 -c32 -m16 -D 2 "https://localhost:$NGINX_PORT/" >/dev/null 2>&1
taskset -c "$CLIENT_CPU" h2load -t1 -c32 -m16 -D 2 "https://localhost:$EDGEPROXY_PORT/" >/dev/null 2>&1
for ROUND in $(seq "$ROUNDS"); do
    if (( ROUND % 2 )); then run_one edgeproxy "$EDGEPROXY_PORT" "$EDGE_PID"; run_one nginx "$NGINX_PORT" "$NGINX_PID"
    else run_one nginx "$NGINX_PORT" "$NGINX_PID"; run_one edgeproxy "$EDGEPROXY_PORT" "$EDGE_PID"; fi
done

e_rps=$(median "${RPS[edgeproxy]}") n_rps=$(median "${RPS[nginx]}")
e_cpu=$(median "${CPU[edgeproxy]}") n_cpu=$(median "${CPU[nginx]}")
echo
echo "h2load -t1 -c32 -m16 -D ${DURATION}s, proxied GET 1 KiB, one worker each, median of $ROUNDS"
echo "| peer | req/s | server CPU µs/request |"
echo "|---|---|---|"
echo "| edgeproxy | $e_rps | $e_cpu |"
echo "| nginx $($NGINX_BIN -v 2>&1 | sed 's/.*nginx\///') | $n_rps | $n_cpu |"
awk -v a="$e_rps" -v b="$n_rps" -v c="$e_cpu" -v d="$n_cpu" \
    'BEGIN { printf "| edgeproxy / nginx | %.2f× | %.2f× (CPU per request; < 1 is cheaper) |\n", a / b, c / d }'
