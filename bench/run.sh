#!/usr/bin/env bash
# edgeproxy benchmark harness: edgeproxy vs nginx, HAProxy and h2o as TLS-terminating reverse
# proxies. See bench/README.md. Loopback only (127.0.0.1). Needs: nginx, haproxy, h2o, wrk,
# h2load (H2=1), curl, openssl, go, python3, taskset, ss.
# Variants: WORKERS=2 (two workers per server, clients on the same two cores), ACCESS_LOG=1
# (every peer also runs with its access log written to a file: keep-alive cost log on vs off),
# H2=1 (HTTP/2 with h2load; bench/h2.sh sets it).
set -euo pipefail
shopt -s nullglob

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(dirname "$HERE")

# ---------------------------------------------------------------- settings
PEERS=${PEERS:-"edgeproxy nginx haproxy h2o"}
WORKERS=${WORKERS:-1}               # workers/threads per server (1 or more)
ACCESS_LOG=${ACCESS_LOG:-0}         # 1: each peer also runs as PEER+log, access log to a file
H2=${H2:-0}                         # 1: HTTP/2 test (h2load) instead of the HTTP/1.1 tests
PAIRED=${PAIRED:-0}                 # 1: hs, ka and h2 load edgeproxy and each other peer at the same time
if [[ $H2 == 1 ]]; then DEFAULT_TESTS="h2"
elif [[ $PAIRED == 1 ]]; then DEFAULT_TESTS="hs ka"
elif [[ $ACCESS_LOG == 1 ]]; then DEFAULT_TESTS="ka"
elif [[ $WORKERS != 1 ]]; then DEFAULT_TESTS="hs ka"
else DEFAULT_TESTS="hs hsget ka idle"; fi
TESTS=${TESTS:-$DEFAULT_TESTS}      # any of hs hsget ka idle kaidle slowloris h2, run in this order
DURATION=${DURATION:-10}            # seconds per measurement
if [[ $PAIRED == 1 ]]; then
    for t in $TESTS; do [[ " hs ka h2 " == *" $t "* ]] || { echo "PAIRED=1 measures hs, ka and h2 only (not $t)" >&2; exit 1; }; done
    [[ " $TESTS " != *" h2 "* || $H2 == 1 ]] || { echo "PAIRED=1 TESTS=h2 needs H2=1 (bench/h2.sh)" >&2; exit 1; }
    [[ " $PEERS " == *" edgeproxy "* && $(wc -w <<<"$PEERS") -ge 2 ]] || { echo "PAIRED=1 needs edgeproxy and another peer in PEERS" >&2; exit 1; }
fi
ROUNDS=${ROUNDS:-3}                 # rounds; peer order alternates per test and per round
WARMUP=${WARMUP:-1}                 # seconds of unmeasured handshakes after each server start
HS_CONNS=${HS_CONNS:-16}            # hsclient goroutines for (a) and (b)
WRK_THREADS=${WRK_THREADS:-$WORKERS}
WRK_CONNS=${WRK_CONNS:-64}
IDLE_CONNS=${IDLE_CONNS:-2000}
IDLE_SETTLE=${IDLE_SETTLE:-2}       # seconds between "all open" and the RSS sample
SLOW_CONNS=${SLOW_CONNS:-5000}      # slowloris connections (heads never finished)
SLOW_SETTLE=${SLOW_SETTLE:-$IDLE_SETTLE}   # seconds between "all open" and the RSS sample
SLOW_WINDOW=${SLOW_WINDOW:-20}      # seconds of server CPU measured while they trickle
SLOW_TRICKLE=${SLOW_TRICKLE:-5}     # seconds between two header lines on a slowloris connection
HEADER_TIMEOUT=${HEADER_TIMEOUT:-300}   # every peer's request-head timeout (s): must outlast slowloris
H2_THREADS=${H2_THREADS:-$WORKERS}  # h2load -t
H2_CONNS=${H2_CONNS:-32}            # h2load -c
H2_STREAMS=${H2_STREAMS:-16}        # h2load -m
if [[ $WORKERS == 1 ]]; then
    SERVER_CPU=${SERVER_CPU:-0}     # taskset CPU list for the server under test
    CLIENT_CPU=${CLIENT_CPU:-1}     # taskset CPU list for clients and the origin
else                                # 2 workers: servers and clients share both cores
    SERVER_CPU=${SERVER_CPU:-0,1}
    CLIENT_CPU=${CLIENT_CPU:-0,1}
fi
ORIGIN_PORT=${ORIGIN_PORT:-18080}
EDGEPROXY_PORT=${EDGEPROXY_PORT:-18443}
NGINX_PORT=${NGINX_PORT:-18444}
HAPROXY_PORT=${HAPROXY_PORT:-18445}
H2O_PORT=${H2O_PORT:-18446}
BASELINE_PORT=${BASELINE_PORT:-18447}
LOG_PORT_OFFSET=${LOG_PORT_OFFSET:-10}   # PEER+log listens on the peer's port + this
SNI=${SNI:-localhost}
NGINX_BIN=${NGINX_BIN:-/usr/sbin/nginx}
HAPROXY_BIN=${HAPROXY_BIN:-/usr/sbin/haproxy}
H2O_BIN=${H2O_BIN:-/usr/bin/h2o}
# TLS 1.3 suites, in edgeproxy's (fixed) server order; every peer is given the same order with
# server preference, so every peer negotiates the same suite with every client.
TLS13_SUITES=$(sed -n 's/^Ciphersuites = //p' "$HERE/openssl-notickets.cnf")
EXPECT_CIPHER=${EXPECT_CIPHER:-TLS_AES_128_GCM_SHA256}
EDGEPROXY_BIN=${EDGEPROXY_BIN:-.build/release/edgeproxy}
# Peer "baseline": another edgeproxy build (say, of the previous commit) run with the same
# configuration, so that PAIRED=1 PEERS="edgeproxy baseline" measures a change against it.
BASELINE_BIN=${BASELINE_BIN:-}
REQUIRE_NO_TICKETS=${REQUIRE_NO_TICKETS:-1}   # fail if a peer sends TLS 1.3 session tickets
RESULTS_DIR=${RESULTS_DIR:-$HERE/results}
KEEP_TMP=${KEEP_TMP:-0}
HSCLIENT=$HERE/hsclient/hsclient

case $EDGEPROXY_BIN in /*) ;; *) EDGEPROXY_BIN=$REPO/$EDGEPROXY_BIN ;; esac

# ---------------------------------------------------------------- helpers
log() { printf '[bench %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { printf '[bench] ERROR: %s\n' "$*" >&2; exit 1; }

WORK=""
STARTED_PIDS=()   # every long-running process we started (killed on exit, by pid)

cleanup() {
    local rc=$?
    trap - EXIT INT TERM
    local p all=()
    for p in "${STARTED_PIDS[@]}"; do
        # shellcheck disable=SC2207
        kill -0 "$p" 2>/dev/null && all+=($(descendants "$p")) || true
    done
    for p in "${STARTED_PIDS[@]}"; do
        kill -0 "$p" 2>/dev/null && kill -TERM "$p" 2>/dev/null || true
    done
    for p in "${all[@]}"; do
        for _ in $(seq 50); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
        kill -0 "$p" 2>/dev/null && kill -KILL "$p" 2>/dev/null || true
    done
    wait 2>/dev/null || true
    if [[ -n $WORK && -d $WORK ]]; then
        if [[ $KEEP_TMP == 1 || $rc != 0 ]]; then
            log "temp dir kept: $WORK"
        else
            rm -rf "$WORK"
        fi
    fi
    exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

forget_pid() {  # remove $1 from STARTED_PIDS
    local keep=() p
    for p in "${STARTED_PIDS[@]}"; do [[ $p == "$1" ]] || keep+=("$p"); done
    STARTED_PIDS=("${keep[@]}")
}

stop_pid() {  # graceful stop of one process we started, then KILL after 5 s
    local pid=$1 i
    kill -TERM "$pid" 2>/dev/null || true
    for i in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    if kill -0 "$pid" 2>/dev/null; then
        log "pid $pid did not exit on SIGTERM; sending SIGKILL"
        kill -KILL "$pid" 2>/dev/null || true
    fi
    wait "$pid" 2>/dev/null || true
    forget_pid "$pid"
}

CMDLOG=""
record_cmd() { printf '%s\n' "$*" >>"$CMDLOG"; }   # exact command lines, for the report

port_in_use() { [[ -n $(ss -Hltn "( sport = :$1 )" 2>/dev/null) ]]; }

check_port_free() {
    if port_in_use "$1"; then
        ss -ltnp "( sport = :$1 )" >&2 || true
        die "port 127.0.0.1:$1 is already in use (see above); stop that process or set ${2:-the port variable}"
    fi
}

descendants() {  # pid and all its descendants
    local p=$1 c
    echo "$p"
    for c in $(ps -o pid= --ppid "$p" 2>/dev/null); do descendants "$c"; done
}

cpu_ticks() {  # sum of utime+stime (clock ticks) over the given pids
    local sum=0 p s
    for p in "$@"; do
        s=$(cat "/proc/$p/stat" 2>/dev/null) || die "process $p vanished during a measurement"
        s=${s##*) }
        # shellcheck disable=SC2086
        set -- $s
        sum=$((sum + ${12} + ${13}))
    done
    echo "$sum"
}

rss_kib() {  # sum of VmRSS (KiB) over the given pids
    local sum=0 p v
    for p in "$@"; do
        v=$(awk '/^VmRSS:/ {print $2}' "/proc/$p/status" 2>/dev/null) || die "process $p vanished"
        sum=$((sum + ${v:-0}))
    done
    echo "$sum"
}

now() { date +%s.%N; }

cpustat() {  # "busy steal" clock ticks of CPU $1 from /proc/stat (busy = user+nice+system)
    awk -v c="cpu$1" '$1 == c { print $2 + $3 + $4, $9 }' /proc/stat
}
SHARED_CORES=0   # 1 when the server's CPUs and the clients' CPUs overlap
for c in ${SERVER_CPU//,/ }; do [[ ,$CLIENT_CPU, == *,$c,* ]] && SHARED_CORES=1; done
SINGLE_SERVER_CPU=0
[[ $SERVER_CPU =~ ^[0-9]+$ ]] && SINGLE_SERVER_CPU=1
snap_begin() {  # server ticks, wall clock and CPU-0 counters at the start of a measurement
    T0=$(cpu_ticks "${SERVER_PIDS[@]}"); W0=$(now)
    if (( SINGLE_SERVER_CPU )); then read -r B0 S0 < <(cpustat "$SERVER_CPU"); fi
}
snap_end() {  # sets DT (server ticks), WALL (s), OTHER (% of the server core used by other processes), STEAL (%)
    DT=$(( $(cpu_ticks "${SERVER_PIDS[@]}") - T0 )); WALL=$(python3 -c "print($(now)-$W0)")
    OTHER=nan STEAL=nan
    if (( SINGLE_SERVER_CPU )); then
        read -r B1 S1 < <(cpustat "$SERVER_CPU")
        OTHER=$(python3 -c "print(f'{max(0, 100*($B1-$B0-$DT)/$CLK_TCK/$WALL):.0f}')")
        STEAL=$(python3 -c "print(f'{100*($S1-$S0)/$CLK_TCK/$WALL:.0f}')")
    fi
}
note_other() {  # $1 peer, $2 key
    raw "$1" "${2}_other" "$OTHER"; raw "$1" "${2}_steal" "$STEAL"
    if [[ $OTHER != nan ]] && (( OTHER > 10 )); then
        log "WARNING: other processes used ${OTHER}% of CPU $SERVER_CPU during $1 $2 (steal ${STEAL}%): the machine is busy"
    fi
}

wait_listen() {  # port pid logfile: wait until $pid's tree listens on $port; refuse strays
    local port=$1 pid=$2 logf=$3 i lp
    for i in $(seq 150); do
        kill -0 "$pid" 2>/dev/null || { tail -n 30 "$logf" >&2 || true; die "server (pid $pid) exited during start-up; log above ($logf)"; }
        port_in_use "$port" && break
        sleep 0.1
    done
    port_in_use "$port" || { tail -n 30 "$logf" >&2 || true; die "nothing listens on 127.0.0.1:$port after 15 s"; }
    # every listener on the port must belong to this server (a stray SO_REUSEPORT
    # listener from an earlier run would silently take part of the connections)
    local tree; tree=" $(descendants "$pid" | tr '\n' ' ') "
    for lp in $(ss -Hltnp "( sport = :$port )" | grep -o 'pid=[0-9]*' | cut -d= -f2 | sort -u); do
        [[ $tree == *" $lp "* ]] || { ss -ltnp "( sport = :$port )" >&2; die "stray listener pid $lp on port $port"; }
    done
}

# Tickets the server sends on one full TLS 1.3 handshake + GET (server-side check that
# resumption is impossible: TLS 1.3 resumes only from tickets).
count_tickets() {
    local port=$1 out
    out=$(printf 'GET / HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n' "$SNI" |
        timeout 10 openssl s_client -connect "127.0.0.1:$port" -servername "$SNI" -tls1_3 \
            -groups X25519 -msg -ign_eof 2>&1) || true
    printf '%s\n' "$out" >"$WORK/s_client-$port.log"
    TICKET_CHECK_STATUS=$(printf '%s\n' "$out" | grep -m1 -o 'HTTP/1\.[01] [0-9]*' || echo "no HTTP response")
    TICKETS=$(printf '%s\n' "$out" | grep -c '<<< .*NewSessionTicket' || true)
    # negotiated with OpenSSL's default client offer (what wrk and h2load offer)
    SCLIENT_CIPHER=$(printf '%s\n' "$out" | sed -nE 's/.*Cipher is ([A-Z0-9_]+).*/\1/p' | head -1)
    SCLIENT_GROUP=$(printf '%s\n' "$out" | sed -nE 's/^Server Temp Key: ([A-Za-z0-9-]+).*/\1/p' | head -1)
}

# GET / through the proxy with curl: must be the origin's 200 with its 1,024-byte body
# (HTTP/2 when H2=1). Sets BODY_CHECK to "STATUS BYTES HTTP_VERSION".
check_body() {
    local port=$1 ver=--http1.1
    [[ $H2 == 1 ]] && ver=--http2
    BODY_CHECK=$(curl -sk $ver --resolve "$SNI:$port:127.0.0.1" -o /dev/null \
        -w '%{http_code} %{size_download} %{http_version}' "https://$SNI:$port/" 2>&1) || true
}

# ---------------------------------------------------------------- preflight
for t in "$NGINX_BIN" openssl curl python3 taskset ss go; do
    command -v "$t" >/dev/null || die "$t not found"
done
for t in $TESTS; do
    case $t in
        hs|hsget|idle|kaidle|slowloris) ;;
        ka) command -v wrk >/dev/null || die "wrk not found" ;;
        h2) command -v h2load >/dev/null || die "h2load not found (Debian nghttp2-client)" ;;
        *) die "unknown test '$t' (known: hs hsget ka idle kaidle slowloris h2)" ;;
    esac
done
[[ $DURATION =~ ^[0-9]+$ && $DURATION -ge 1 ]] || die "DURATION must be a whole number of seconds"
[[ $ROUNDS =~ ^[0-9]+$ && $ROUNDS -ge 1 ]] || die "ROUNDS must be >= 1"
[[ $WORKERS =~ ^[0-9]+$ && $WORKERS -ge 1 ]] || die "WORKERS must be >= 1"
for v in SLOW_CONNS SLOW_SETTLE SLOW_WINDOW SLOW_TRICKLE HEADER_TIMEOUT; do
    [[ ${!v} =~ ^[0-9]+$ && ${!v} -ge 1 ]] || die "$v must be a whole number >= 1"
done
if [[ " $TESTS " == *" slowloris "* ]]; then
    # the connections must outlast opening (all of them), settling and the window on every peer
    (( HEADER_TIMEOUT >= SLOW_SETTLE + SLOW_WINDOW + 120 )) ||
        die "HEADER_TIMEOUT=$HEADER_TIMEOUT s is too short to hold slowloris connections through SLOW_SETTLE + SLOW_WINDOW (+120 s to open them)"
    # the lowest connection cap in the peers' configs is HAProxy's maxconn 9000
    (( SLOW_CONNS <= 8500 )) || die "SLOW_CONNS=$SLOW_CONNS: the peers' configs cap connections at 9000 (HAProxy maxconn)"
    # edgeproxy refuses a head of more than 100 fields (431), HAProxy one of more than 101
    (( (SLOW_SETTLE + SLOW_WINDOW + 60) / SLOW_TRICKLE < 90 )) ||
        log "warning: SLOW_TRICKLE=$SLOW_TRICKLE s sends about $(( (SLOW_SETTLE + SLOW_WINDOW + 60) / SLOW_TRICKLE )) header lines per connection; past 100 fields servers answer 431"
fi
for p in $PEERS; do
    case $p in
        nginx) ;;
        haproxy) [[ -x $HAPROXY_BIN ]] || die "haproxy not found at $HAPROXY_BIN (apt-get install haproxy)" ;;
        h2o) [[ -x $H2O_BIN ]] || die "h2o not found at $H2O_BIN (apt-get install h2o)" ;;
        edgeproxy) [[ -x $EDGEPROXY_BIN ]] || die "edgeproxy binary not found at $EDGEPROXY_BIN (build it: make release, or set EDGEPROXY_BIN; or run with PEERS='nginx haproxy h2o')" ;;
        baseline) [[ -n $BASELINE_BIN && -x $BASELINE_BIN ]] || die "peer baseline needs BASELINE_BIN: another edgeproxy build (e.g. git worktree of the previous commit, make release)" ;;
        *) die "unknown peer '$p' (known: edgeproxy nginx haproxy h2o baseline)" ;;
    esac
done
ncpu=$(nproc --all)
for c in ${SERVER_CPU//,/ } ${CLIENT_CPU//,/ }; do
    (( c < ncpu )) 2>/dev/null || log "warning: check SERVER_CPU/CLIENT_CPU against $ncpu CPUs"
done

# Instances: every peer, and with ACCESS_LOG=1 also PEER+log (same config plus an access log
# to a file, on its own port), so that log on and log off are measured side by side.
INSTANCES=""
for p in $PEERS; do
    INSTANCES+="$p "
    [[ $ACCESS_LOG == 1 ]] && INSTANCES+="$p+log "
done
INSTANCES=${INSTANCES% }
inst_peer() { echo "${1%+log}"; }
inst_logs() { [[ $1 == *+log ]]; }
inst_port() {
    local base
    case $(inst_peer "$1") in
        edgeproxy) base=$EDGEPROXY_PORT ;; nginx) base=$NGINX_PORT ;; baseline) base=$BASELINE_PORT ;;
        haproxy) base=$HAPROXY_PORT ;; h2o) base=$H2O_PORT ;;
    esac
    if inst_logs "$1"; then echo $((base + LOG_PORT_OFFSET)); else echo "$base"; fi
}

check_port_free "$ORIGIN_PORT" ORIGIN_PORT
for i in $INSTANCES; do
    check_port_free "$(inst_port "$i")" "the $(inst_peer "$i" | tr a-z A-Z)_PORT (or LOG_PORT_OFFSET)"
done

# Raise our fd limit (inherited by servers and clients): 2,000 idle connections need it, as do
# SLOW_CONNS slowloris connections.
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
(( $(ulimit -n) > IDLE_CONNS + 200 )) || die "fd limit $(ulimit -n) too low for IDLE_CONNS=$IDLE_CONNS"
if [[ " $TESTS " == *" slowloris "* ]]; then
    (( $(ulimit -n) > SLOW_CONNS + 200 )) || die "fd limit $(ulimit -n) too low for SLOW_CONNS=$SLOW_CONNS"
fi

# hsclient: build if missing or older than its source (stdlib only; offline)
if [[ ! -x $HSCLIENT || $HERE/hsclient/main.go -nt $HSCLIENT ]]; then
    log "building hsclient"
    (cd "$HERE/hsclient" && GOPROXY=off GOFLAGS=-mod=mod GOTOOLCHAIN=local go build -o hsclient .) ||
        die "go build of bench/hsclient failed"
fi

WORK=$(mktemp -d "${TMPDIR:-/tmp}/edgeproxy-bench.XXXXXX")
CMDLOG=$WORK/commands.txt
: >"$CMDLOG"
RAW=$WORK/raw.tsv
printf 'round\tpeer\tmetric\tvalue\n' >"$RAW"
raw() { printf '%s\t%s\t%s\t%s\n' "$ROUND" "$1" "$2" "$3" >>"$RAW"; }
log "work dir $WORK"
LOAD_START=$(cut -d' ' -f1-3 /proc/loadavg)

# ---------------------------------------------------------------- cert (P-256)
CERT=$WORK/cert.pem KEY=$WORK/key.pem
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 7 \
    -subj "/CN=$SNI" -addext "subjectAltName=DNS:$SNI,IP:127.0.0.1" \
    -keyout "$KEY" -out "$CERT" 2>"$WORK/openssl-req.log" || { cat "$WORK/openssl-req.log" >&2; die "cert generation failed"; }
record_cmd "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 7 -subj /CN=$SNI -addext subjectAltName=DNS:$SNI,IP:127.0.0.1 -keyout KEY -out CERT"

cat "$CERT" "$KEY" >"$WORK/cert+key.pem"   # HAProxy's crt wants both in one file

# OpenSSL config for nginx, HAProxy and h2o (OPENSSL_CONF in their environment): no tickets, the
# same TLS 1.3 suite order (bench/openssl-notickets.cnf says why).
cp "$HERE/openssl-notickets.cnf" "$WORK/openssl-notickets.cnf"

# ---------------------------------------------------------------- origin (nginx, plain HTTP)
BODY=$(head -c 1023 /dev/zero | tr '\0' 'x')   # 1023 x + "\n" = 1024 bytes
mkdir -p "$WORK/origin"
nginx_temp_paths() {
    local d=$1
    printf '    client_body_temp_path %s/body;\n    proxy_temp_path %s/proxy;\n    fastcgi_temp_path %s/fastcgi;\n    uwsgi_temp_path %s/uwsgi;\n    scgi_temp_path %s/scgi;\n' "$d" "$d" "$d" "$d" "$d"
}
cat >"$WORK/origin/nginx.conf" <<EOF
worker_processes 1;
daemon off;
pid $WORK/origin/nginx.pid;
error_log $WORK/origin/error.log warn;
worker_rlimit_nofile 20000;
events { worker_connections 8192; }
http {
    access_log off;
$(nginx_temp_paths "$WORK/origin")
    keepalive_timeout 300s;
    keepalive_requests 100000000;
    default_type text/plain;
    server {
        listen 127.0.0.1:$ORIGIN_PORT backlog=4096;
        location / { return 200 "$BODY\n"; }
    }
}
EOF
ORIGIN_CMD="taskset -c $CLIENT_CPU $NGINX_BIN -e $WORK/origin/error.log -p $WORK/origin -c $WORK/origin/nginx.conf"
record_cmd "$ORIGIN_CMD"
$ORIGIN_CMD >"$WORK/origin/stdout.log" 2>&1 &
ORIGIN_PID=$!
STARTED_PIDS+=("$ORIGIN_PID")
wait_listen "$ORIGIN_PORT" "$ORIGIN_PID" "$WORK/origin/error.log"
obytes=$(exec 3<>"/dev/tcp/127.0.0.1/$ORIGIN_PORT"; printf 'GET / HTTP/1.0\r\n\r\n' >&3; cat <&3 | sed '1,/^\r$/d' | wc -c)
[[ $obytes == 1024 ]] || die "origin returned a $obytes-byte body, expected 1024"
log "origin up on 127.0.0.1:$ORIGIN_PORT (pid $ORIGIN_PID, 1 KiB body)"

# ---------------------------------------------------------------- peers
# Every peer: $WORKERS worker(s)/thread(s), access log off (or to $dir/access.log for PEER+log),
# upstream keep-alive to the origin, TLS 1.2 + 1.3 with X25519 and P-256, no session cache,
# zero TLS 1.3 tickets, TLS 1.3 suites in one order with server preference.
write_nginx_conf() {  # instance dir port
    local inst=$1 d=$2 port=$3 alog="access_log off;" h2=""
    inst_logs "$inst" && alog="access_log $d/access.log;"   # default "combined" format
    [[ $H2 == 1 ]] && h2=" http2"
    cat >"$d/nginx.conf" <<EOF
worker_processes $WORKERS;
daemon off;
pid $d/nginx.pid;
error_log $d/error.log warn;
worker_rlimit_nofile 20000;
events { worker_connections 10000; }
http {
    $alog
$(nginx_temp_paths "$d")
    keepalive_timeout 300s;
    keepalive_requests 100000000;
    client_header_timeout ${HEADER_TIMEOUT}s;
    upstream origin {
        server 127.0.0.1:$ORIGIN_PORT;
        keepalive 64;
        keepalive_requests 100000000;
        keepalive_timeout 300s;
    }
    server {
        listen 127.0.0.1:$port ssl$h2 backlog=4096;
        ssl_certificate $CERT;
        ssl_certificate_key $KEY;
        ssl_protocols TLSv1.2 TLSv1.3;
        ssl_ecdh_curve X25519:prime256v1;
        ssl_prefer_server_ciphers on;
        ssl_session_cache off;
        ssl_session_tickets off;
        location / {
            proxy_pass http://origin;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
        }
    }
}
EOF
}

write_edgeproxy_conf() {  # instance dir port
    local inst=$1 d=$2 port=$3 alog=off
    inst_logs "$inst" && alog=$d/access.log
    cat >"$d/edgeproxy.yaml" <<EOF
workers: $WORKERS
listen: { https: ["127.0.0.1:$port"], http: [] }
tls: { certificates: [ { cert: $CERT, key: $KEY } ], session_tickets: 0 }
upstreams: { origin: { servers: ["127.0.0.1:$ORIGIN_PORT"], keepalive: 64 } }
routes: [ { upstream: origin } ]
timeouts: { header: ${HEADER_TIMEOUT}s }
log: { access: $alog }
EOF
}

# HAProxy: one process (no master-worker), in the foreground. Its log goes to syslog or stdout
# only; PEER+log uses "log stdout" and stdout is redirected to $d/access.log (httplog format).
write_haproxy_conf() {  # instance dir port
    local inst=$1 d=$2 port=$3 glog="" dlog=""
    if inst_logs "$inst"; then
        glog="    log stdout format raw local0"
        dlog=$'    log global\n    option httplog'
    fi
    cat >"$d/haproxy.cfg" <<EOF
global
    nbthread $WORKERS
    maxconn 9000
$glog
    tune.ssl.cachesize 0
    ssl-default-bind-options ssl-min-ver TLSv1.2 no-tls-tickets
    ssl-default-bind-curves X25519:P-256
    ssl-default-bind-ciphersuites $TLS13_SUITES
defaults
    mode http
    maxconn 9000
$dlog
    timeout connect 5s
    timeout client 300s
    timeout server 300s
    timeout http-keep-alive 300s
    timeout http-request ${HEADER_TIMEOUT}s
frontend fe
    bind 127.0.0.1:$port ssl crt $WORK/cert+key.pem alpn h2,http/1.1
    default_backend origin
backend origin
    http-reuse always
    server origin 127.0.0.1:$ORIGIN_PORT
EOF
}

write_h2o_conf() {  # instance dir port
    local inst=$1 d=$2 port=$3 alog=""
    inst_logs "$inst" && alog="access-log: $d/access.log"   # h2o's default (combined) format
    cat >"$d/h2o.yaml" <<EOF
$([[ $(id -u) == 0 ]] && echo "user: root")
num-threads: $WORKERS
max-connections: 10000
pid-file: $d/h2o.pid
error-log: $d/error.log
http1-request-timeout: $HEADER_TIMEOUT
proxy.timeout.keepalive: 300000
ssl-session-resumption:
  mode: off
$alog
listen:
  host: 127.0.0.1
  port: $port
  ssl:
    certificate-file: $CERT
    key-file: $KEY
    minimum-version: TLSv1.2
    cipher-preference: server
    ocsp-update-interval: 0
hosts:
  default:
    paths:
      /:
        proxy.reverse.url: http://127.0.0.1:$ORIGIN_PORT/
EOF
}

SERVER_PID="" SERVER_PORT="" SERVER_LOG="" SERVER_PIDS=()
declare -A PEER_PID PEER_PORT PEER_LOG PEER_PIDS PEER_PROCS
select_peer() {  # make instance $1 the current server for the measurement functions
    SERVER_PID=${PEER_PID[$1]} SERVER_PORT=${PEER_PORT[$1]} SERVER_LOG=${PEER_LOG[$1]}
    read -r -a SERVER_PIDS <<<"${PEER_PIDS[$1]}"
}
start_peer() {  # instance
    local inst=$1 peer d cmd stdout
    peer=$(inst_peer "$inst") d=$WORK/$inst
    mkdir -p "$d"
    SERVER_PORT=$(inst_port "$inst") SERVER_LOG=$d/error.log stdout=$d/stdout.log
    case $peer in
        nginx)
            write_nginx_conf "$inst" "$d" "$SERVER_PORT"
            cmd="taskset -c $SERVER_CPU $NGINX_BIN -e $d/error.log -p $d -c $d/nginx.conf"
            record_cmd "OPENSSL_CONF=$WORK/openssl-notickets.cnf $cmd"
            OPENSSL_CONF=$WORK/openssl-notickets.cnf $cmd >"$stdout" 2>&1 &
            ;;
        edgeproxy|baseline)
            write_edgeproxy_conf "$inst" "$d" "$SERVER_PORT"
            SERVER_LOG=$d/output.log
            bin=$EDGEPROXY_BIN; [[ $peer == baseline ]] && bin=$BASELINE_BIN
            cmd="taskset -c $SERVER_CPU $bin run --config $d/edgeproxy.yaml"
            record_cmd "$cmd"
            $cmd >"$SERVER_LOG" 2>&1 &
            ;;
        haproxy)
            write_haproxy_conf "$inst" "$d" "$SERVER_PORT"
            inst_logs "$inst" && stdout=$d/access.log
            cmd="taskset -c $SERVER_CPU $HAPROXY_BIN -db -f $d/haproxy.cfg"
            record_cmd "OPENSSL_CONF=$WORK/openssl-notickets.cnf $cmd >(access.log or stdout.log) 2>error.log"
            OPENSSL_CONF=$WORK/openssl-notickets.cnf $cmd >"$stdout" 2>"$SERVER_LOG" &
            ;;
        h2o)
            write_h2o_conf "$inst" "$d" "$SERVER_PORT"
            cmd="taskset -c $SERVER_CPU $H2O_BIN -c $d/h2o.yaml"
            record_cmd "OPENSSL_CONF=$WORK/openssl-notickets.cnf $cmd"
            OPENSSL_CONF=$WORK/openssl-notickets.cnf $cmd >"$stdout" 2>&1 &
            ;;
    esac
    SERVER_PID=$!
    STARTED_PIDS+=("$SERVER_PID")
    wait_listen "$SERVER_PORT" "$SERVER_PID" "$SERVER_LOG"
    # nginx forks its workers after the master listens: wait until the tree is complete
    if [[ $peer == nginx ]]; then
        for _ in $(seq 50); do [[ $(descendants "$SERVER_PID" | wc -l) -ge $((WORKERS + 1)) ]] && break; sleep 0.1; done
    fi
    sleep 0.3
    # every process of the server counts (nginx master + workers; h2o's helper processes)
    mapfile -t SERVER_PIDS < <(descendants "$SERVER_PID")
    PEER_PID[$inst]=$SERVER_PID PEER_PORT[$inst]=$SERVER_PORT PEER_LOG[$inst]=$SERVER_LOG
    PEER_PIDS[$inst]="${SERVER_PIDS[*]}"
    local threads=0 p
    for p in "${SERVER_PIDS[@]}"; do threads=$((threads + $(awk '/^Threads:/ {print $2}' "/proc/$p/status"))); done
    PEER_PROCS[$inst]="${#SERVER_PIDS[@]} processes, $threads threads"
    log "$inst up on 127.0.0.1:$SERVER_PORT (pids ${SERVER_PIDS[*]}; $threads threads)"
}

stop_peer() {
    select_peer "$1"
    local pids=("${SERVER_PIDS[@]}") p
    stop_pid "$SERVER_PID"
    for p in "${pids[@]}"; do   # helper processes (h2o) follow their parent
        for _ in $(seq 50); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
        kill -0 "$p" 2>/dev/null && kill -KILL "$p" 2>/dev/null || true
    done
    SERVER_PID=""
    for _ in $(seq 50); do port_in_use "$SERVER_PORT" || break; sleep 0.1; done
    port_in_use "$SERVER_PORT" && die "port $SERVER_PORT still in use after stopping the server"
    return 0
}

check_alive() {
    local p
    for p in "${SERVER_PIDS[@]}"; do
        kill -0 "$p" 2>/dev/null || { tail -n 30 "$SERVER_LOG" >&2 || true; die "$1: server process $p died"; }
    done
}

jget() { python3 -c 'import json,sys; d=json.loads(sys.argv[1]); print(d.get(sys.argv[2], 0))' "$1" "$2"; }

CLK_TCK=$(getconf CLK_TCK)
us_per() { python3 -c "import sys; t,n,hz=map(float,sys.argv[1:]); print(f'{t*1e6/hz/n:.1f}' if n>0 else 'nan')" "$@"; }
util() { python3 -c "import sys; t,w,hz=map(float,sys.argv[1:]); print(f'{100*t/hz/w:.0f}')" "$@"; }

ERRORS_NOTE=""
load_cmd() {  # handshake|get|ka|h2 port: the load of one measurement, on the client CPU
    case $1 in
        handshake|get) echo "taskset -c $CLIENT_CPU $HSCLIENT -addr 127.0.0.1:$2 -sni $SNI -mode $1 -c $HS_CONNS -d ${DURATION}s" ;;
        ka) echo "taskset -c $CLIENT_CPU wrk -t$WRK_THREADS -c$WRK_CONNS -d${DURATION}s https://127.0.0.1:$2/" ;;
        h2) echo "taskset -c $CLIENT_CPU h2load -t$H2_THREADS -c$H2_CONNS -m$H2_STREAMS -D $DURATION https://127.0.0.1:$2/" ;;
    esac
}
# (a)/(b): hsclient, full handshakes (+ one GET)
measure_hs() {
    local peer=$1 mode=$2 key=$3 cmd out ok err res
    select_peer "$peer"
    cmd=$(load_cmd "$mode" "$SERVER_PORT")
    record_cmd "$cmd"
    snap_begin
    out=$($cmd) || die "hsclient failed: $out"
    snap_end
    check_alive "$peer $mode"
    note_other "$peer" "$key"
    echo "$out" >>"$WORK/hsclient.jsonl"
    ok=$(jget "$out" ok); err=$(jget "$out" errors); res=$(jget "$out" resumed)
    raw "$peer" "${key}_rate" "$(jget "$out" rate)"
    raw "$peer" "${key}_us" "$(us_per "$DT" "$ok" "$CLK_TCK")"
    raw "$peer" "${key}_util" "$(util "$DT" "$WALL" "$CLK_TCK")"
    raw "$peer" "${key}_errors" "$err"
    raw "$peer" "resumed" "$res"
    raw "$peer" "${key}_ciphers" "$(python3 -c 'import json,sys; print(",".join(f"{k}:{v}" for k,v in sorted(json.loads(sys.argv[1]).get("ciphers",{}).items())))' "$out")"
    python3 -c 'import json,sys; c=json.loads(sys.argv[1]).get("ciphers",{}); sys.exit(0 if set(c) <= {sys.argv[2]} else 1)' "$out" "$EXPECT_CIPHER" ||
        die "$peer negotiated another suite than $EXPECT_CIPHER with hsclient: $out"
    [[ $(jget "$out" not_tls13) == 0 ]] || die "$peer negotiated something other than TLS 1.3: $out"
    if [[ $res != 0 ]]; then die "$peer: client saw $res resumed handshakes (must be 0): $out"; fi
    if [[ $err != 0 ]]; then log "WARNING: $peer $mode: $err errors: $out"; ERRORS_NOTE+="$peer $mode round $ROUND: $err errors; "; fi
    log "$peer $mode: $(python3 -c "import json,sys; d=json.loads(sys.argv[1]); print(f\"{d['ok']} ok, {d['errors']} errors, {d['rate']:.0f}/s\")" "$out"), server $(us_per "$DT" "$ok" "$CLK_TCK") µs/op, $(util "$DT" "$WALL" "$CLK_TCK")% CPU, other load on CPU $SERVER_CPU ${OTHER}%"
}

# (c): keep-alive proxied GET with wrk
measure_ka() {
    local peer=$1 cmd out reqs rps errs non2xx
    select_peer "$peer"
    cmd=$(load_cmd ka "$SERVER_PORT")
    record_cmd "$cmd"
    LOGLINES0=0 LOGBYTES0=0
    if inst_logs "$peer"; then LOGLINES0=$(wc -l <"$WORK/$peer/access.log"); LOGBYTES0=$(stat -c %s "$WORK/$peer/access.log"); fi
    snap_begin
    out=$($cmd 2>&1) || die "wrk failed: $out"
    snap_end
    check_alive "$peer wrk"
    note_other "$peer" ka
    printf '%s\n%s\n' "== $peer round $ROUND" "$out" >>"$WORK/wrk.log"
    reqs=$(awk '/requests in/ {print $1}' <<<"$out")
    rps=$(awk '/^Requests\/sec:/ {print $2}' <<<"$out")
    [[ -n $reqs && -n $rps ]] || die "could not parse wrk output: $out"
    errs=$(awk '/Socket errors:/ {gsub(",",""); print $4+$6+$8+$10}' <<<"$out"); errs=${errs:-0}
    non2xx=$(awk '/Non-2xx/ {print $NF}' <<<"$out"); non2xx=${non2xx:-0}
    raw "$peer" ka_rate "$rps"
    raw "$peer" ka_us "$(us_per "$DT" "$reqs" "$CLK_TCK")"
    raw "$peer" ka_util "$(util "$DT" "$WALL" "$CLK_TCK")"
    raw "$peer" ka_errors $((errs + non2xx))
    if inst_logs "$peer"; then   # the access log must really have been written: lines per request
        sleep 0.5
        local lines; lines=$(wc -l <"$WORK/$peer/access.log")
        raw "$peer" ka_loglines "$(python3 -c "print(f'{($lines-${LOGLINES0:-0})/$reqs:.3f}')")"
        raw "$peer" ka_logbytes "$(python3 -c "print(f'{($(stat -c %s "$WORK/$peer/access.log")-$LOGBYTES0)/$reqs:.1f}')")"
        log "$peer: $((lines - ${LOGLINES0:-0})) access log lines for $reqs requests"
    fi
    if (( errs + non2xx > 0 )); then log "WARNING: $peer wrk: $errs socket errors, $non2xx non-2xx"; ERRORS_NOTE+="$peer wrk round $ROUND: $errs socket errors, $non2xx non-2xx; "; fi
    log "$peer keep-alive GET: $rps req/s, server $(us_per "$DT" "$reqs" "$CLK_TCK") µs/req, $(util "$DT" "$WALL" "$CLK_TCK")% CPU, other load on CPU $SERVER_CPU ${OTHER}%"
}

# (e): HTTP/2 proxied GET with h2load (H2=1)
measure_h2() {
    local peer=$1 cmd out reqs rps failed errored ok2xx cipher proto
    select_peer "$peer"
    cmd=$(load_cmd h2 "$SERVER_PORT")
    record_cmd "$cmd"
    snap_begin
    out=$($cmd 2>&1) || die "h2load failed: $out"
    snap_end
    check_alive "$peer h2load"
    note_other "$peer" h2
    printf '%s\n%s\n' "== $peer round $ROUND" "$out" >>"$WORK/h2load.log"
    reqs=$(sed -nE 's/^requests: [0-9]+ total, [0-9]+ started, ([0-9]+) done.*/\1/p' <<<"$out")
    failed=$(sed -nE 's/^requests: .* ([0-9]+) failed, ([0-9]+) errored.*/\1/p' <<<"$out")
    errored=$(sed -nE 's/^requests: .* ([0-9]+) failed, ([0-9]+) errored.*/\2/p' <<<"$out")
    ok2xx=$(sed -nE 's/^status codes: ([0-9]+) 2xx.*/\1/p' <<<"$out")
    rps=$(sed -nE 's/^finished in .*, ([0-9.]+) req\/s.*/\1/p' <<<"$out")
    cipher=$(sed -nE 's/^Cipher: (.*)/\1/p' <<<"$out")
    proto=$(sed -nE 's/^Application protocol: (.*)/\1/p' <<<"$out")
    [[ -n $reqs && -n $rps && -n $ok2xx ]] || die "could not parse h2load output: $out"
    [[ $proto == h2 ]] || die "$peer: h2load negotiated '$proto', not h2"
    [[ $cipher == "$EXPECT_CIPHER" ]] || die "$peer: h2load negotiated $cipher, expected $EXPECT_CIPHER"
    raw "$peer" h2_rate "$rps"
    raw "$peer" h2_us "$(us_per "$DT" "$ok2xx" "$CLK_TCK")"
    raw "$peer" h2_util "$(util "$DT" "$WALL" "$CLK_TCK")"
    raw "$peer" h2_errors $((failed + errored + reqs - ok2xx))
    raw "$peer" h2_ciphers "$cipher"
    if (( failed + errored + reqs - ok2xx > 0 )); then log "WARNING: $peer h2load: $failed failed, $errored errored, $((reqs - ok2xx)) not 2xx"; ERRORS_NOTE+="$peer h2load round $ROUND: $failed failed, $errored errored, $((reqs - ok2xx)) not 2xx; "; fi
    log "$peer HTTP/2 GET: $rps req/s, server $(us_per "$DT" "$ok2xx" "$CLK_TCK") µs/req, $(util "$DT" "$WALL" "$CLK_TCK")% CPU, other load on CPU $SERVER_CPU ${OTHER}%"
}

# PAIRED=1: edgeproxy and one other peer under the same load at the same time, both on the server
# CPU, each load on the client CPU. A slow spell of this shared machine slows both alike, so the
# ratio of their CPU per operation holds still from round to round where back-to-back runs swing
# (±2 % between two copies of one binary, against 0.7-1.6 for back-to-back rounds in a busy hour).
# The two servers take turns on one core, so the absolute µs include that sharing (caches): only
# the ratio is the figure.
pair_ops() {  # test out server: completed operations (0 when any failed); dies, as the other tests do,
              # on a suite other than $EXPECT_CIPHER, on TLS 1.2, on a resumed handshake or on no h2
    case $1 in
        hs) python3 -c 'import json,sys
d = json.loads(open(sys.argv[1]).read())
if set(d.get("ciphers", {})) - {sys.argv[2]} or d["not_tls13"] or d["resumed"]: sys.exit(f"{sys.argv[3]}: {d}")
print(d["ok"] if d["errors"] == 0 else 0)' "$2" "$EXPECT_CIPHER" "$3" || die "paired hs: $3 did not do full TLS 1.3 handshakes with $EXPECT_CIPHER" ;;
        ka) awk '/requests in/ {n=$1} /Socket errors|Non-2xx/ {bad=1} END {print bad ? 0 : n + 0}' "$2" ;;
        h2) grep -q "^Application protocol: h2$" "$2" && grep -q "^Cipher: $EXPECT_CIPHER$" "$2" ||
                die "paired h2: $3 did not negotiate h2 with $EXPECT_CIPHER: $(grep -E '^(Cipher|Application protocol):' "$2" | tr '\n' ' ')"
            awk '/^requests:/ {bad = $10 + $12} /^status codes:/ {ok = $3} END {print bad ? 0 : ok + 0}' "$2" ;;
    esac
}
measure_pair() {  # test peer
    local t=$1 peer=$2 ep_pids peer_pids e0 p0 e1 p1 cpid en pn eus pus
    select_peer edgeproxy; ep_pids=("${SERVER_PIDS[@]}"); local ep_port=$SERVER_PORT
    select_peer "$peer"; peer_pids=("${SERVER_PIDS[@]}")
    record_cmd "PAIRED: $t on edgeproxy (port $ep_port) and $peer (port $SERVER_PORT) at once"
    e0=$(cpu_ticks "${ep_pids[@]}"); p0=$(cpu_ticks "${peer_pids[@]}")
    local mode=$t; [[ $t == hs ]] && mode=handshake
    $(load_cmd "$mode" "$ep_port") >"$WORK/pair-edgeproxy.out" 2>&1 & cpid=$!
    $(load_cmd "$mode" "$SERVER_PORT") >"$WORK/pair-$peer.out" 2>&1 || true
    wait "$cpid" || true
    e1=$(cpu_ticks "${ep_pids[@]}"); p1=$(cpu_ticks "${peer_pids[@]}")
    check_alive "$peer paired $t"; select_peer edgeproxy; check_alive "edgeproxy paired $t"
    en=$(pair_ops "$t" "$WORK/pair-edgeproxy.out" edgeproxy) || exit 1
    pn=$(pair_ops "$t" "$WORK/pair-$peer.out" "$peer") || exit 1
    cat "$WORK/pair-edgeproxy.out" "$WORK/pair-$peer.out" >>"$WORK/paired.log"
    if [[ ${en:-0} == 0 || ${pn:-0} == 0 ]]; then
        log "WARNING: paired $t with $peer: a load failed or saw errors (outputs in $WORK/paired.log)"
        ERRORS_NOTE+="paired $t with $peer round $ROUND: a load failed or saw errors; "
        return 0
    fi
    eus=$(us_per $((e1 - e0)) "$en" "$CLK_TCK"); pus=$(us_per $((p1 - p0)) "$pn" "$CLK_TCK")
    raw "$peer" "pair_${t}_us" "$pus"
    raw "$peer" "pair_${t}_edgeproxy_us" "$eus"
    log "paired $t: edgeproxy $eus µs/op ($en ops), $peer $pus µs/op ($pn ops): $(python3 -c "print(f'{$eus/$pus:.3f}')")×"
}

# (d): memory per idle TLS connection
measure_idle() {  # peer [idle|kaidle]: handshake only, or one keep-alive GET first
    local peer=$1 mode=${2:-idle} cmd r0 r1 cpid i line est
    select_peer "$peer"
    cmd="taskset -c $CLIENT_CPU $HSCLIENT -addr 127.0.0.1:$SERVER_PORT -sni $SNI -mode $mode -n $IDLE_CONNS -c 32 -hold 600s"
    record_cmd "$cmd"
    r0=$(rss_kib "${SERVER_PIDS[@]}")
    : >"$WORK/idle.out"
    $cmd >"$WORK/idle.out" 2>"$WORK/idle.err" &
    cpid=$!
    STARTED_PIDS+=("$cpid")
    line=""
    for i in $(seq 1200); do
        line=$(head -n1 "$WORK/idle.out")
        [[ -n $line ]] && break
        kill -0 "$cpid" 2>/dev/null || break
        sleep 0.1
    done
    [[ -n $line ]] || { stop_pid "$cpid"; die "idle client produced no result: $(cat "$WORK/idle.err")"; }
    sleep "$IDLE_SETTLE"
    r1=$(rss_kib "${SERVER_PIDS[@]}")
    est=$(ss -Htn state established "( sport = :$SERVER_PORT )" | wc -l)
    stop_pid "$cpid"
    check_alive "$peer $mode"
    local open; open=$(jget "$line" open)
    (( open == IDLE_CONNS )) || log "WARNING: $peer $mode: only $open of $IDLE_CONNS connections opened: $line"
    (( est >= open )) || log "WARNING: $peer $mode: server side shows only $est established connections of $open"
    raw "$peer" ${mode}_kib "$(python3 -c "print(f'{($r1-$r0)/$open:.1f}')")"
    raw "$peer" ${mode}_open "$open"
    log "$peer $mode: $open connections ($est established at the server), RSS $r0 -> $r1 KiB = $(python3 -c "print(f'{($r1-$r0)/$open:.1f}')") KiB/conn"
}

# (f): slowloris: SLOW_CONNS connections that send a request line and Host right after the
# handshake, then one header line every SLOW_TRICKLE s, never the blank line. Memory per
# connection as in (d), then the server's CPU over SLOW_WINDOW s while they trickle, and how
# many the server still holds at the end (all must be: HEADER_TIMEOUT outlasts the test).
measure_slow() {
    local peer=$1 cmd r0 r1 cpid i line end est0 est t0 open failed held closed answered
    select_peer "$peer"
    cmd="taskset -c $CLIENT_CPU $HSCLIENT -addr 127.0.0.1:$SERVER_PORT -sni $SNI -mode slowloris -n $SLOW_CONNS -c 32 -trickle ${SLOW_TRICKLE}s -hold $((SLOW_SETTLE + SLOW_WINDOW + 60))s"
    record_cmd "$cmd"
    r0=$(rss_kib "${SERVER_PIDS[@]}")
    : >"$WORK/slow.out"
    t0=$(now)
    $cmd >"$WORK/slow.out" 2>"$WORK/slow.err" &
    cpid=$!
    STARTED_PIDS+=("$cpid")
    line=""
    for i in $(seq 3000); do
        line=$(head -n1 "$WORK/slow.out")
        [[ -n $line ]] && break
        kill -0 "$cpid" 2>/dev/null || break
        sleep 0.1
    done
    [[ -n $line ]] || { stop_pid "$cpid"; die "slowloris client produced no result: $(cat "$WORK/slow.err")"; }
    sleep "$SLOW_SETTLE"
    r1=$(rss_kib "${SERVER_PIDS[@]}")
    est0=$(ss -Htn state established "( sport = :$SERVER_PORT )" | wc -l)
    snap_begin
    sleep "$SLOW_WINDOW"
    snap_end
    est=$(ss -Htn state established "( sport = :$SERVER_PORT )" | wc -l)
    kill -0 "$cpid" 2>/dev/null || log "WARNING: $peer slowloris: the client exited before the end of the window: $(cat "$WORK/slow.err")"
    stop_pid "$cpid"   # SIGTERM: the client writes its second line (closed / held) and exits
    check_alive "$peer slowloris"
    note_other "$peer" slow
    end=$(sed -n 2p "$WORK/slow.out")
    [[ -n $end ]] || die "slowloris client wrote no end line: $(cat "$WORK/slow.err")"
    printf '%s\n%s\n' "$line" "$end" | sed "s/^/$peer round $ROUND: /" >>"$WORK/slowloris.log"
    open=$(jget "$line" open); failed=$(jget "$line" errors)
    held=$(jget "$end" held); closed=$(jget "$end" closed); answered=$(jget "$end" answered)
    (( open > 0 )) || die "$peer slowloris: no connection opened: $line"
    [[ $(jget "$line" not_tls13) == 0 && $(jget "$line" resumed) == 0 ]] || die "$peer slowloris: resumed or non-TLS-1.3 connections: $line"
    if (( open < SLOW_CONNS )); then
        log "WARNING: $peer slowloris: only $open of $SLOW_CONNS connections opened: $line"
        ERRORS_NOTE+="$peer slowloris round $ROUND: $failed of $SLOW_CONNS connections failed to open; "
    fi
    if (( held < open )); then
        log "WARNING: $peer slowloris: the server closed $closed of $open connections before the end of the window ($answered with a response first): $end"
        ERRORS_NOTE+="$peer slowloris round $ROUND: $closed of $open connections closed by the server; "
    fi
    (( est >= held )) || log "WARNING: $peer slowloris: server side shows only $est established connections at the end of the window, the client holds $held"
    if python3 -c "import sys; sys.exit(0 if $(now) - $t0 >= $HEADER_TIMEOUT else 1)"; then
        log "WARNING: $peer slowloris: the test outlasted HEADER_TIMEOUT=$HEADER_TIMEOUT s (raise it): closed connections are expected"
    fi
    local kib cpu ms
    kib=$(python3 -c "print(f'{($r1-$r0)/$open:.1f}')")
    cpu=$(python3 -c "print(f'{100*$DT/$CLK_TCK/$WALL:.2f}')")
    ms=$(python3 -c "print(f'{1000*$DT/$CLK_TCK/$WALL:.1f}')")
    raw "$peer" slow_kib "$kib"
    raw "$peer" slow_cpu "$cpu"
    raw "$peer" slow_cpu_ms "$ms"
    raw "$peer" slow_util "$(util "$DT" "$WALL" "$CLK_TCK")"
    raw "$peer" slow_held "$held"
    raw "$peer" slow_open "$open"
    raw "$peer" slow_errors "$failed"
    log "$peer slowloris: $open connections open ($failed failed, $est0 established at the server), RSS $r0 -> $r1 KiB = $kib KiB/conn; over ${SLOW_WINDOW}s: server CPU $cpu% of a core = $ms ms/s ($DT ticks), other load on CPU $SERVER_CPU ${OTHER}%; held at the end $held of $open ($est established at the server), $(jget "$end" header_lines) header lines sent"
}

prepare_peer() {  # start, check tickets and the proxied path, warm up
    local peer=$1
    start_peer "$peer"
    count_tickets "$SERVER_PORT"
    log "$peer: $TICKETS TLS 1.3 session tickets per handshake (s_client), response: $TICKET_CHECK_STATUS, $SCLIENT_CIPHER, $SCLIENT_GROUP"
    raw "$peer" tickets "$TICKETS"
    raw "$peer" sclient_cipher "$SCLIENT_CIPHER/$SCLIENT_GROUP"
    [[ $SCLIENT_CIPHER == "$EXPECT_CIPHER" ]] || die "$peer negotiated $SCLIENT_CIPHER with openssl s_client, expected $EXPECT_CIPHER"
    check_body "$SERVER_PORT"
    log "$peer: curl GET /: $BODY_CHECK (status, body bytes, HTTP version)"
    raw "$peer" body_check "${BODY_CHECK// /_}"
    local want="200 1024 1.1"
    [[ $H2 == 1 ]] && want="200 1024 2"
    [[ $BODY_CHECK == "$want" ]] || die "$peer: GET / gave '$BODY_CHECK' (status, body bytes, HTTP version), expected '$want'"
    [[ $TICKET_CHECK_STATUS == *" 200" ]] || die "$peer: proxied GET via openssl s_client did not return 200 ($TICKET_CHECK_STATUS); s_client output: $WORK/s_client-$SERVER_PORT.log, server log: $SERVER_LOG"
    if [[ $TICKETS != 0 && $REQUIRE_NO_TICKETS == 1 ]]; then
        die "$peer sent $TICKETS session tickets per handshake; tickets must be 0 for a fair full-handshake comparison (REQUIRE_NO_TICKETS=0 to continue anyway)"
    fi
    # warm-up (unmeasured)
    if [[ $H2 == 1 ]]; then
        taskset -c "$CLIENT_CPU" h2load -t"$H2_THREADS" -c"$H2_CONNS" -m"$H2_STREAMS" -D "$WARMUP" "https://127.0.0.1:$SERVER_PORT/" >/dev/null 2>&1
    else
        taskset -c "$CLIENT_CPU" "$HSCLIENT" -addr "127.0.0.1:$SERVER_PORT" -sni "$SNI" -mode get -c "$HS_CONNS" -d "${WARMUP}s" >/dev/null
    fi
}

# Each round starts every peer afresh, then runs each test on every peer back to back, so
# that compared figures are taken seconds apart (this machine drifts). The peer order
# alternates from test to test and from round to round (ABBA...).
read -r -a PEER_LIST <<<"$INSTANCES"
REVERSED=()
for ((i = ${#PEER_LIST[@]} - 1; i >= 0; i--)); do REVERSED+=("${PEER_LIST[i]}"); done
read -r -a TESTS <<<"$TESTS"
for ((ROUND = 1; ROUND <= ROUNDS; ROUND++)); do
    log "round $ROUND/$ROUNDS"
    for peer in "${PEER_LIST[@]}"; do prepare_peer "$peer"; done
    for ((ti = 0; ti < ${#TESTS[@]}; ti++)); do
        if (( (ROUND + ti) % 2 == 1 )); then order=("${PEER_LIST[@]}"); else order=("${REVERSED[@]}"); fi
        if [[ $PAIRED == 1 ]]; then
            for peer in "${order[@]}"; do [[ $peer == edgeproxy ]] || measure_pair "${TESTS[ti]}" "$peer"; done
            continue
        fi
        for peer in "${order[@]}"; do
            case ${TESTS[ti]} in
                hs) measure_hs "$peer" handshake hs ;;
                hsget) measure_hs "$peer" get hsget ;;
                ka) measure_ka "$peer" ;;
                idle) measure_idle "$peer" ;;
                # a fresh process: memory an earlier test's connections freed would be reused
                kaidle) stop_peer "$peer"; prepare_peer "$peer"; measure_idle "$peer" kaidle ;;
                slowloris) measure_slow "$peer" ;;
                h2) measure_h2 "$peer" ;;
            esac
        done
    done
    for peer in "${PEER_LIST[@]}"; do stop_peer "$peer"; done
done

# ---------------------------------------------------------------- report
LOAD_END=$(cut -d' ' -f1-3 /proc/loadavg)
mkdir -p "$RESULTS_DIR"
STAMP=$(date +%Y-%m-%d_%H%M%S)
SUFFIX=""
[[ $H2 == 1 ]] && SUFFIX+="-h2"
[[ $WORKERS != 1 ]] && SUFFIX+="-${WORKERS}workers"
[[ $ACCESS_LOG == 1 ]] && SUFFIX+="-accesslog"
REPORT=$RESULTS_DIR/$STAMP$SUFFIX.md
TABLE=$(python3 - "$RAW" "$PEERS" "$ACCESS_LOG" <<'PY'
import csv, statistics, sys
raw, peers, access_log = sys.argv[1], sys.argv[2].split(), sys.argv[3] == '1'
vals, rounds, text = {}, {}, {}
for row in csv.DictReader(open(raw), delimiter='\t'):
    k = (row['peer'], row['metric'])
    text.setdefault(k, []).append(row['value'])
    try:
        v = float(row['value'])
    except ValueError:
        continue
    vals.setdefault(k, []).append(v)
    rounds.setdefault(k, []).append((int(row['round']), v))
metrics = [
    ('hs_rate', 'full handshakes/s', 'higher', '{:.0f}'),
    ('hs_us', 'server CPU µs per full handshake', 'lower', '{:.1f}'),
    ('hsget_rate', 'full handshake + proxied GET /s', 'higher', '{:.0f}'),
    ('hsget_us', 'server CPU µs per handshake + proxied GET', 'lower', '{:.1f}'),
    ('ka_rate', 'keep-alive proxied GET 1 KiB, req/s', 'higher', '{:.0f}'),
    ('ka_us', 'server CPU µs per keep-alive proxied GET', 'lower', '{:.1f}'),
    ('h2_rate', 'HTTP/2 proxied GET 1 KiB, req/s', 'higher', '{:.0f}'),
    ('h2_us', 'server CPU µs per HTTP/2 proxied GET', 'lower', '{:.1f}'),
    ('idle_kib', 'KiB per idle TLS connection (ΔRSS)', 'lower', '{:.1f}'),
    ('kaidle_kib', 'KiB per idle keep-alive connection after one proxied GET (ΔRSS)', 'lower', '{:.1f}'),
    ('slow_kib', 'KiB per slowloris connection (ΔRSS)', 'lower', '{:.1f}'),
    ('slow_cpu', 'server CPU while slowloris connections trickle, % of one core (×10 = ms/s)', 'lower', '{:.2f}'),
    ('slow_held', 'slowloris connections held at the end of the window', 'higher', '{:.0f}'),
]
med = lambda k: statistics.median(vals[k]) if k in vals else None
groups = [('', 'access log off')] + ([('+log', 'access log on')] if access_log else [])
others = [p for p in peers if p != 'edgeproxy']
has_e = 'edgeproxy' in peers
hdr = '| metric (median) | better | ' + ' | '.join(peers)
if has_e and others:
    hdr += ' | best other peer | edgeproxy / best | ' + ' | '.join(f'edgeproxy / {p}' for p in others)
print(hdr + ' |')
print('|' + '---|' * (hdr.count('|') - 1))
for key, name, better, fmt in metrics:
    for suf, gname in groups:
        if not any((p + suf, key) in vals for p in peers):
            continue
        label = name + (f' ({gname})' if access_log else '')
        cells = [fmt.format(med((p + suf, key))) if med((p + suf, key)) is not None else '—' for p in peers]
        line = f'| {label} | {better} | ' + ' | '.join(cells)
        if has_e and others:
            e = med(('edgeproxy' + suf, key))
            cand = [(med((p + suf, key)), p) for p in others if med((p + suf, key)) is not None]
            if cand and e is not None:
                b, bp = (min if better == 'lower' else max)(cand)
                line += f' | {bp} ({fmt.format(b)}) | ' + (f'{e / b:.2f}×' if b else '—')
            else:
                line += ' | — | —'
            for p in others:
                o = med((p + suf, key))
                line += ' | ' + (f'{e / o:.2f}×' if e is not None and o else '—')
        print(line + ' |')
print()
print('Ratios are edgeproxy\'s median divided by the other peer\'s median (CPU µs and KiB: < 1 means edgeproxy '
      'uses less; rates: > 1 means edgeproxy is faster). "best other peer" is the best of the other peers for that metric in this run.')
# Paired rounds: each round measures every peer back to back, so a slow spell of this shared
# machine touches one round's figures together; the median of the per-round ratios cancels it,
# where the ratio of two medians drawn from different rounds does not.
paired = []
for key, name, better, fmt in metrics:
    if better != 'lower' or not key.endswith('_us') or not has_e:
        continue
    for suf, gname in groups:
        mine = dict(rounds.get(('edgeproxy' + suf, key), []))
        cells = []
        for p in others:
            theirs = dict(rounds.get((p + suf, key), []))
            ratios = [mine[r] / theirs[r] for r in sorted(mine) if r in theirs and theirs[r]]
            if ratios:
                cells.append(f'edgeproxy / {p} {statistics.median(ratios):.2f}× (rounds {min(ratios):.2f}–{max(ratios):.2f})')
        if cells:
            paired.append(f'- {name}' + (f' ({gname})' if access_log else '') + ': ' + '; '.join(cells))
if paired:
    print()
    print('Median of the per-round ratios (each round runs every peer back to back):')
    print()
    print('\n'.join(paired))
at_once = []
for t, name in (('hs', 'full handshake'), ('ka', 'keep-alive proxied GET'), ('h2', 'HTTP/2 proxied GET')):
    for p in peers:
        mine, theirs = dict(rounds.get((p, f'pair_{t}_edgeproxy_us'), [])), dict(rounds.get((p, f'pair_{t}_us'), []))
        ratios = [mine[r] / theirs[r] for r in sorted(mine) if r in theirs and theirs[r]]
        if ratios:
            at_once.append(f'- {name}: edgeproxy / {p} {statistics.median(ratios):.3f}× (rounds {min(ratios):.3f}–{max(ratios):.3f}; '
                           f'medians {statistics.median(mine.values()):.1f} and {statistics.median(theirs.values()):.1f} µs, '
                           f'{len(ratios)} rounds)')
if at_once:
    print()
    print('Loaded at the same time (PAIRED=1: edgeproxy and the peer share the server CPU; server CPU per operation, '
          'ratio per round, median):')
    print()
    print('\n'.join(at_once))
if access_log:
    print()
    print('Access log cost, keep-alive proxied GET 1 KiB (server CPU µs per request, median; PEER+log is the same '
          'server with its access log written to a file on local disk):')
    print()
    print('| peer | log off µs | log on µs | Δ µs per request | on / off | req/s off | req/s on | log lines per request | log bytes per request |')
    print('|---|---|---|---|---|---|---|---|---|')
    for p in peers:
        off, on = med((p, 'ka_us')), med((p + '+log', 'ka_us'))
        roff, ron = med((p, 'ka_rate')), med((p + '+log', 'ka_rate'))
        ll = med((p + '+log', 'ka_loglines'))
        lb = med((p + '+log', 'ka_logbytes'))
        f = lambda x, s='{:.1f}': s.format(x) if x is not None else '—'
        d = (on - off) if on is not None and off is not None else None
        r = (on / off) if on is not None and off else None
        # bytes per request: final file size / lines (one line per request)
        print(f'| {p} | {f(off)} | {f(on)} | {f(d, "{:+.1f}")} | {f(r, "{:.2f}×")} | {f(roff, "{:.0f}")} | {f(ron, "{:.0f}")} | {f(ll, "{:.3f}")} | {f(lb, "{:.0f}")} |')
print()
inst = [p + suf for p in peers for suf, _ in groups]
util_keys = [k for k in ('hs_util', 'hsget_util', 'ka_util', 'h2_util', 'slow_util') if any((p, k) in vals for p in inst)]
other_keys = [k.replace('util', 'other') for k in util_keys]
print('Server CPU utilisation during each test (median, % of one core): ' + '; '.join(
    f"{p}: " + ', '.join(f"{k.split('_')[0]} {med((p, k)):.0f}%" for k in util_keys if med((p, k)) is not None)
    for p in inst))
ok_other = lambda p, k: med((p, k)) is not None and med((p, k)) == med((p, k))
if any(ok_other(p, k) for p in inst for k in other_keys):
    print('Other processes on the server core during the tests (median %; >10 means a busy machine): ' + '; '.join(
        f"{p}: " + ', '.join(f"{k.split('_')[0]} {med((p, k)):.0f}%" for k in other_keys if ok_other(p, k))
        for p in inst))
else:
    print('Other processes on the server cores: not measured (the server runs on several cores).')
print('Errors (sum over rounds): ' + '; '.join(
    f"{p}: " + ', '.join(f"{k.split('_')[0]} {sum(vals.get((p, k.replace('util', 'errors')), [0])):.0f}" for k in util_keys)
    for p in inst))
if any((p, 'resumed') in vals for p in inst):
    print('Client-side resumed handshakes (hsclient; must be 0): ' + '; '.join(f"{p}: {sum(vals.get((p, 'resumed'), [0])):.0f}" for p in inst))
print('TLS 1.3 session tickets sent per handshake (openssl s_client -msg; 0 means no resumption possible): ' + '; '.join(
    f"{p}: {max(vals.get((p, 'tickets'), [float('nan')])):.0f}" for p in inst))
print('Negotiated suite/group with OpenSSL\'s default client offer (s_client, as wrk and h2load): ' + '; '.join(
    f"{p}: {', '.join(sorted(set(text.get((p, 'sclient_cipher'), ['—']))))}" for p in inst))
ck = [k for k in ('hs_ciphers', 'hsget_ciphers', 'h2_ciphers') if any((p, k) in text for p in inst)]
if ck:
    print('Negotiated suites in the load tests (hsclient: suite:handshakes; h2load: suite; per round): ' + '; '.join(
        f"{p}: " + ' '.join(f"{k.split('_')[0]}[{' '.join(text.get((p, k), []))}]" for k in ck) for p in inst))
print('GET / through each peer (curl: status, body bytes, HTTP version): ' + '; '.join(
    f"{p}: {', '.join(sorted(set(text.get((p, 'body_check'), ['—']))))}" for p in inst))
print()
print('Per-round values (round: value):')
print()
for key, name, better, fmt in metrics + [('ka_loglines', 'access log lines per request', '', '{:.3f}')]:
    for p in inst:
        if (p, key) in rounds:
            print(f'- {p} {key}: ' + ', '.join(f'r{r}: ' + fmt.format(v) for r, v in rounds[(p, key)]))
for (p, key), rv in sorted(rounds.items()):
    if key.startswith('pair_'):
        print(f'- {p} {key}: ' + ', '.join(f'r{r}: {v:.1f}' for r, v in rv))
PY
)

{
    echo "# edgeproxy benchmark — $STAMP"
    echo
    echo "Peers: $PEERS$([[ $ACCESS_LOG == 1 ]] && echo ", each also as PEER+log (access log written to a file)"). Tests: ${TESTS[*]}."
    echo "WORKERS=$WORKERS (workers/threads per server), DURATION=${DURATION}s, ROUNDS=$ROUNDS (all peers up together; each test run on every peer back to back, order alternating ABBA), WARMUP=${WARMUP}s,"
    echo "HS_CONNS=$HS_CONNS, wrk -t$WRK_THREADS -c$WRK_CONNS, h2load -t$H2_THREADS -c$H2_CONNS -m$H2_STREAMS, IDLE_CONNS=$IDLE_CONNS. Server pinned to CPU $SERVER_CPU, clients and origin"
    echo "to CPU $CLIENT_CPU. TLS 1.3, X25519, P-256 certificate, $EXPECT_CIPHER for every peer (checked), full handshakes only (hsclient has no session cache, every peer sends 0 tickets)."
    echo "CPU per operation = Δ(utime+stime) of all server processes / completed operations (clock tick $CLK_TCK Hz)."
    if [[ " ${TESTS[*]} " == *" slowloris "* ]]; then
        echo "Slowloris: SLOW_CONNS=$SLOW_CONNS connections, each sends its request line and Host after the handshake, then one header line every ${SLOW_TRICKLE}s, never the"
        echo "end of the head; ΔRSS per connection ${SLOW_SETTLE}s after all are open, then server CPU over a ${SLOW_WINDOW}s window, then the connections still held."
        echo "Every peer's request-head timeout is ${HEADER_TIMEOUT}s (edgeproxy timeouts.header, nginx client_header_timeout, HAProxy timeout http-request, h2o http1-request-timeout)."
    fi
    if [[ $PAIRED == 1 ]]; then
        echo
        echo "**PAIRED=1**: in each test edgeproxy and one other peer are loaded at the same time (one load each, both on CPU $CLIENT_CPU; both"
        echo "servers on CPU $SERVER_CPU), other peers in turn. Only the per-round ratio is the figure: the two servers share one core."
    fi
    if (( SHARED_CORES )); then
        echo
        echo "**Client and server share cores here** (server on CPUs $SERVER_CPU, clients and origin on CPUs $CLIENT_CPU): rates are what the"
        echo "whole machine does with client, origin and server competing; the server CPU µs per operation stay comparable between peers,"
        echo "but include some contention effects (cache, scheduling). The 'other processes on the server core' check does not apply."
    fi
    echo "Load average at start: $LOAD_START; at end: $LOAD_END."
    echo
    echo "$TABLE"
    echo
    echo "Server processes and threads after start-up (last round): $(for i in $INSTANCES; do printf '%s: %s; ' "$i" "${PEER_PROCS[$i]}"; done)"
    echo
    [[ -n $ERRORS_NOTE ]] && { echo "**Errors:** $ERRORS_NOTE"; echo; }
    echo "Compare only within this run; absolute figures drift on this machine (see /work/shared/facts.md)."
    echo
    echo "## Environment"
    echo
    echo '```'
    echo "uname -a: $(uname -a)"
    echo "nginx: $("$NGINX_BIN" -V 2>&1 | head -2 | tr '\n' ' ')"
    [[ " $PEERS " == *" haproxy "* ]] && echo "haproxy: $("$HAPROXY_BIN" -v 2>&1 | head -1)"
    [[ " $PEERS " == *" h2o "* ]] && echo "h2o: $("$H2O_BIN" -v 2>&1 | head -2 | tr '\n' ' ')"
    [[ $H2 == 1 ]] && echo "h2load: $(h2load --version 2>&1 | head -1)"
    echo "openssl: $(openssl version)"
    echo "wrk: $(wrk -v 2>&1 | head -1)"
    echo "go: $(go version)"
    if [[ " $PEERS " == *" baseline "* ]]; then
        echo "baseline: $BASELINE_BIN ($(stat -c '%s bytes, modified %y' "$BASELINE_BIN"), sha256 $(sha256sum "$BASELINE_BIN" | cut -c1-16))"
    fi
    if [[ " $PEERS " == *" edgeproxy "* ]]; then
        echo "edgeproxy: $EDGEPROXY_BIN ($(stat -c '%s bytes, modified %y' "$EDGEPROXY_BIN"), sha256 $(sha256sum "$EDGEPROXY_BIN" | cut -c1-16))"
        # The peers load the shared libssl3; a release build (make release) carries its OpenSSL.
        echo "edgeproxy's OpenSSL: $("$EDGEPROXY_BIN" version 2>/dev/null | grep -m1 '^OpenSSL'), $(! command -v readelf >/dev/null && echo 'link unknown (no readelf)' || { readelf -d "$EDGEPROXY_BIN" | grep -q 'libssl\.so' && echo 'shared (libssl3)' || echo 'linked into the binary'; })"
        echo "edgeproxy repo: $(git -C "$REPO" rev-parse --short HEAD 2>/dev/null || echo 'no commit')$(git -C "$REPO" diff --quiet 2>/dev/null || echo ' (+ uncommitted changes)')"
    fi
    echo "CPUs: $(nproc --all), $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2-)"
    echo '```'
    echo
    echo "## Exact commands (WORK = temporary directory of the run)"
    echo
    echo '```'
    awk '!seen[$0]++' "$CMDLOG" | sed "s#$WORK#\$WORK#g"
    echo "# all servers (re)started each round; before the measurements: openssl s_client -tls1_3 -groups X25519 -msg -ign_eof (ticket count, negotiated suite + one GET),"
    echo "# curl -k $([[ $H2 == 1 ]] && echo --http2 || echo --http1.1) https://$SNI:PORT/ (status 200 and the 1,024-byte body), then ${WARMUP}s of $([[ $H2 == 1 ]] && echo h2load || echo 'hsclient -mode get') warm-up"
    echo '```'
    echo
    echo "## Configurations"
    confs=("$WORK/origin/nginx.conf" "$WORK/openssl-notickets.cnf")
    for i in $INSTANCES; do
        confs+=("$WORK/$i/nginx.conf" "$WORK/$i/edgeproxy.yaml" "$WORK/$i/haproxy.cfg" "$WORK/$i/h2o.yaml")
    done
    for f in "${confs[@]}"; do
        [[ -f $f ]] || continue
        echo
        echo "\`${f#"$WORK"/}\`:"
        echo
        echo '```'
        sed "s#$WORK#\$WORK#g; s#$BODY#<1023 x>#" "$f"
        echo '```'
    done
} >"$REPORT"

echo
echo "$TABLE"
echo
log "report written to $REPORT"
