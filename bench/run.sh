#!/usr/bin/env bash
# edgeproxy benchmark harness: edgeproxy vs nginx as TLS-terminating reverse proxies.
# See bench/README.md. Loopback only (127.0.0.1). Needs: nginx, wrk, openssl, go, python3,
# taskset, ss.
set -euo pipefail
shopt -s nullglob

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(dirname "$HERE")

# ---------------------------------------------------------------- settings
PEERS=${PEERS:-"edgeproxy nginx"}
DURATION=${DURATION:-10}            # seconds per measurement
ROUNDS=${ROUNDS:-3}                 # rounds; peer order alternates per test and per round
WARMUP=${WARMUP:-1}                 # seconds of unmeasured handshakes after each server start
HS_CONNS=${HS_CONNS:-16}            # hsclient goroutines for (a) and (b)
WRK_THREADS=${WRK_THREADS:-1}
WRK_CONNS=${WRK_CONNS:-64}
IDLE_CONNS=${IDLE_CONNS:-2000}
IDLE_SETTLE=${IDLE_SETTLE:-2}       # seconds between "all open" and the RSS sample
SERVER_CPU=${SERVER_CPU:-0}         # taskset CPU list for the server under test
CLIENT_CPU=${CLIENT_CPU:-1}         # taskset CPU list for clients and the origin
ORIGIN_PORT=${ORIGIN_PORT:-18080}
EDGEPROXY_PORT=${EDGEPROXY_PORT:-18443}
NGINX_PORT=${NGINX_PORT:-18444}
SNI=${SNI:-localhost}
NGINX_BIN=${NGINX_BIN:-/usr/sbin/nginx}
EDGEPROXY_BIN=${EDGEPROXY_BIN:-.build/release/edgeproxy}
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
}

# ---------------------------------------------------------------- preflight
for t in "$NGINX_BIN" wrk openssl python3 taskset ss go; do
    command -v "$t" >/dev/null || die "$t not found"
done
[[ $DURATION =~ ^[0-9]+$ && $DURATION -ge 1 ]] || die "DURATION must be a whole number of seconds"
[[ $ROUNDS =~ ^[0-9]+$ && $ROUNDS -ge 1 ]] || die "ROUNDS must be >= 1"
for p in $PEERS; do
    case $p in
        nginx) ;;
        edgeproxy) [[ -x $EDGEPROXY_BIN ]] || die "edgeproxy binary not found at $EDGEPROXY_BIN (build it: swift build -c release, or set EDGEPROXY_BIN; or run with PEERS=nginx)" ;;
        *) die "unknown peer '$p' (known: edgeproxy nginx)" ;;
    esac
done
ncpu=$(nproc --all)
(( SERVER_CPU < ncpu && CLIENT_CPU < ncpu )) 2>/dev/null || log "warning: check SERVER_CPU/CLIENT_CPU against $ncpu CPUs"

check_port_free "$ORIGIN_PORT" ORIGIN_PORT
for p in $PEERS; do
    case $p in
        nginx) check_port_free "$NGINX_PORT" NGINX_PORT ;;
        edgeproxy) check_port_free "$EDGEPROXY_PORT" EDGEPROXY_PORT ;;
    esac
done

# Raise our fd limit (inherited by servers and clients): 2,000 idle connections need it.
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
(( $(ulimit -n) > IDLE_CONNS + 200 )) || die "fd limit $(ulimit -n) too low for IDLE_CONNS=$IDLE_CONNS"

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

# OpenSSL config that forces NumTickets = 0 for OpenSSL-based peers (nginx sends two TLS 1.3
# tickets even with ssl_session_tickets off).
cat >"$WORK/openssl-notickets.cnf" <<'EOF'
openssl_conf = openssl_init
[openssl_init]
ssl_conf = ssl_sect
[ssl_sect]
system_default = system_default_sect
[system_default_sect]
NumTickets = 0
EOF

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
write_nginx_conf() {
    local d=$WORK/nginx
    mkdir -p "$d"
    cat >"$d/nginx.conf" <<EOF
worker_processes 1;
daemon off;
pid $d/nginx.pid;
error_log $d/error.log warn;
worker_rlimit_nofile 20000;
events { worker_connections 10000; }
http {
    access_log off;
$(nginx_temp_paths "$d")
    keepalive_timeout 300s;
    keepalive_requests 100000000;
    upstream origin {
        server 127.0.0.1:$ORIGIN_PORT;
        keepalive 64;
        keepalive_requests 100000000;
        keepalive_timeout 300s;
    }
    server {
        listen 127.0.0.1:$NGINX_PORT ssl backlog=4096;
        ssl_certificate $CERT;
        ssl_certificate_key $KEY;
        ssl_protocols TLSv1.2 TLSv1.3;
        ssl_ecdh_curve X25519:prime256v1;
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

write_edgeproxy_conf() {
    local d=$WORK/edgeproxy
    mkdir -p "$d"
    cat >"$d/edgeproxy.yaml" <<EOF
workers: 1
listen: { https: ["127.0.0.1:$EDGEPROXY_PORT"], http: [] }
tls: { certificates: [ { cert: $CERT, key: $KEY } ], session_tickets: 0 }
upstreams: { origin: { servers: ["127.0.0.1:$ORIGIN_PORT"], keepalive: 64 } }
routes: [ { upstream: origin } ]
log: { access: off }
EOF
}

SERVER_PID="" SERVER_PORT="" SERVER_LOG="" SERVER_PIDS=()
declare -A PEER_PID PEER_PORT PEER_LOG PEER_PIDS
select_peer() {  # make $1 the current server for the measurement functions
    SERVER_PID=${PEER_PID[$1]} SERVER_PORT=${PEER_PORT[$1]} SERVER_LOG=${PEER_LOG[$1]}
    read -r -a SERVER_PIDS <<<"${PEER_PIDS[$1]}"
}
start_peer() {
    local peer=$1 cmd
    case $peer in
        nginx)
            write_nginx_conf
            SERVER_PORT=$NGINX_PORT SERVER_LOG=$WORK/nginx/error.log
            cmd="taskset -c $SERVER_CPU $NGINX_BIN -e $WORK/nginx/error.log -p $WORK/nginx -c $WORK/nginx/nginx.conf"
            record_cmd "OPENSSL_CONF=$WORK/openssl-notickets.cnf $cmd"
            OPENSSL_CONF=$WORK/openssl-notickets.cnf $cmd >"$WORK/nginx/stdout.log" 2>&1 &
            ;;
        edgeproxy)
            write_edgeproxy_conf
            SERVER_PORT=$EDGEPROXY_PORT SERVER_LOG=$WORK/edgeproxy/output.log
            cmd="taskset -c $SERVER_CPU $EDGEPROXY_BIN run --config $WORK/edgeproxy/edgeproxy.yaml"
            record_cmd "$cmd"
            $cmd >"$SERVER_LOG" 2>&1 &
            ;;
    esac
    SERVER_PID=$!
    STARTED_PIDS+=("$SERVER_PID")
    wait_listen "$SERVER_PORT" "$SERVER_PID" "$SERVER_LOG"
    # nginx forks its worker after the master listens: wait until the tree is complete
    if [[ $peer == nginx ]]; then
        for _ in $(seq 50); do [[ $(descendants "$SERVER_PID" | wc -l) -ge 2 ]] && break; sleep 0.1; done
    fi
    sleep 0.3
    mapfile -t SERVER_PIDS < <(descendants "$SERVER_PID")
    PEER_PID[$peer]=$SERVER_PID PEER_PORT[$peer]=$SERVER_PORT PEER_LOG[$peer]=$SERVER_LOG
    PEER_PIDS[$peer]="${SERVER_PIDS[*]}"
    log "$peer up on 127.0.0.1:$SERVER_PORT (pids ${SERVER_PIDS[*]})"
}

stop_peer() {
    select_peer "$1"
    stop_pid "$SERVER_PID"
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
# (a)/(b): hsclient, full handshakes (+ one GET)
measure_hs() {
    local peer=$1 mode=$2 key=$3 cmd out ok err res
    select_peer "$peer"
    cmd="taskset -c $CLIENT_CPU $HSCLIENT -addr 127.0.0.1:$SERVER_PORT -sni $SNI -mode $mode -c $HS_CONNS -d ${DURATION}s"
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
    [[ $(jget "$out" not_tls13) == 0 ]] || die "$peer negotiated something other than TLS 1.3: $out"
    if [[ $res != 0 ]]; then die "$peer: client saw $res resumed handshakes (must be 0): $out"; fi
    if [[ $err != 0 ]]; then log "WARNING: $peer $mode: $err errors: $out"; ERRORS_NOTE+="$peer $mode round $ROUND: $err errors; "; fi
    log "$peer $mode: $(python3 -c "import json,sys; d=json.loads(sys.argv[1]); print(f\"{d['ok']} ok, {d['errors']} errors, {d['rate']:.0f}/s\")" "$out"), server $(us_per "$DT" "$ok" "$CLK_TCK") µs/op, $(util "$DT" "$WALL" "$CLK_TCK")% CPU, other load on CPU $SERVER_CPU ${OTHER}%"
}

# (c): keep-alive proxied GET with wrk
measure_ka() {
    local peer=$1 cmd out reqs rps errs non2xx
    select_peer "$peer"
    cmd="taskset -c $CLIENT_CPU wrk -t$WRK_THREADS -c$WRK_CONNS -d${DURATION}s https://127.0.0.1:$SERVER_PORT/"
    record_cmd "$cmd"
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
    if (( errs + non2xx > 0 )); then log "WARNING: $peer wrk: $errs socket errors, $non2xx non-2xx"; ERRORS_NOTE+="$peer wrk round $ROUND: $errs socket errors, $non2xx non-2xx; "; fi
    log "$peer keep-alive GET: $rps req/s, server $(us_per "$DT" "$reqs" "$CLK_TCK") µs/req, $(util "$DT" "$WALL" "$CLK_TCK")% CPU, other load on CPU $SERVER_CPU ${OTHER}%"
}

# (d): memory per idle TLS connection
measure_idle() {
    local peer=$1 cmd r0 r1 cpid i line est
    select_peer "$peer"
    cmd="taskset -c $CLIENT_CPU $HSCLIENT -addr 127.0.0.1:$SERVER_PORT -sni $SNI -mode idle -n $IDLE_CONNS -c 32 -hold 600s"
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
    check_alive "$peer idle"
    local open; open=$(jget "$line" open)
    (( open == IDLE_CONNS )) || log "WARNING: $peer idle: only $open of $IDLE_CONNS connections opened: $line"
    (( est >= open )) || log "WARNING: $peer idle: server side shows only $est established connections of $open"
    raw "$peer" idle_kib "$(python3 -c "print(f'{($r1-$r0)/$open:.1f}')")"
    raw "$peer" idle_open "$open"
    log "$peer idle: $open connections ($est established at the server), RSS $r0 -> $r1 KiB = $(python3 -c "print(f'{($r1-$r0)/$open:.1f}')") KiB/conn"
}

prepare_peer() {  # start, check tickets and the proxied path, warm up
    local peer=$1
    start_peer "$peer"
    count_tickets "$SERVER_PORT"
    log "$peer: $TICKETS TLS 1.3 session tickets per handshake (s_client), response: $TICKET_CHECK_STATUS"
    raw "$peer" tickets "$TICKETS"
    [[ $TICKET_CHECK_STATUS == *" 200" ]] || die "$peer: proxied GET via openssl s_client did not return 200 ($TICKET_CHECK_STATUS); s_client output: $WORK/s_client-$SERVER_PORT.log, server log: $SERVER_LOG"
    if [[ $TICKETS != 0 && $REQUIRE_NO_TICKETS == 1 ]]; then
        die "$peer sent $TICKETS session tickets per handshake; tickets must be 0 for a fair full-handshake comparison (REQUIRE_NO_TICKETS=0 to continue anyway)"
    fi
    # warm-up (unmeasured)
    taskset -c "$CLIENT_CPU" "$HSCLIENT" -addr "127.0.0.1:$SERVER_PORT" -sni "$SNI" -mode get -c "$HS_CONNS" -d "${WARMUP}s" >/dev/null
}

# Each round starts every peer afresh, then runs each test on every peer back to back, so
# that compared figures are taken seconds apart (this machine drifts). The peer order
# alternates from test to test and from round to round (ABBA...).
read -r -a PEER_LIST <<<"$PEERS"
REVERSED=()
for ((i = ${#PEER_LIST[@]} - 1; i >= 0; i--)); do REVERSED+=("${PEER_LIST[i]}"); done
TESTS=("hs" "hsget" "ka" "idle")
for ((ROUND = 1; ROUND <= ROUNDS; ROUND++)); do
    log "round $ROUND/$ROUNDS"
    for peer in "${PEER_LIST[@]}"; do prepare_peer "$peer"; done
    for ((ti = 0; ti < ${#TESTS[@]}; ti++)); do
        if (( (ROUND + ti) % 2 == 1 )); then order=("${PEER_LIST[@]}"); else order=("${REVERSED[@]}"); fi
        for peer in "${order[@]}"; do
            case ${TESTS[ti]} in
                hs) measure_hs "$peer" handshake hs ;;
                hsget) measure_hs "$peer" get hsget ;;
                ka) measure_ka "$peer" ;;
                idle) measure_idle "$peer" ;;
            esac
        done
    done
    for peer in "${PEER_LIST[@]}"; do stop_peer "$peer"; done
done

# ---------------------------------------------------------------- report
LOAD_END=$(cut -d' ' -f1-3 /proc/loadavg)
mkdir -p "$RESULTS_DIR"
STAMP=$(date +%Y-%m-%d_%H%M%S)
REPORT=$RESULTS_DIR/$STAMP.md
TABLE=$(python3 - "$RAW" "$PEERS" <<'PY'
import csv, statistics, sys
raw, peers = sys.argv[1], sys.argv[2].split()
vals = {}
rounds = {}
for row in csv.DictReader(open(raw), delimiter='\t'):
    try:
        v = float(row['value'])
    except ValueError:
        continue
    vals.setdefault((row['peer'], row['metric']), []).append(v)
    rounds.setdefault((row['peer'], row['metric']), []).append((int(row['round']), v))
metrics = [
    ('hs_rate', 'full handshakes/s', 'higher', '{:.0f}'),
    ('hs_us', 'server CPU µs per full handshake', 'lower', '{:.1f}'),
    ('hsget_rate', 'full handshake + proxied GET /s', 'higher', '{:.0f}'),
    ('hsget_us', 'server CPU µs per handshake + proxied GET', 'lower', '{:.1f}'),
    ('ka_rate', f'keep-alive proxied GET 1 KiB, req/s', 'higher', '{:.0f}'),
    ('ka_us', 'server CPU µs per keep-alive proxied GET', 'lower', '{:.1f}'),
    ('idle_kib', 'KiB per idle TLS connection (ΔRSS)', 'lower', '{:.1f}'),
]
med = lambda k: statistics.median(vals[k]) if k in vals else None
hdr = '| metric (median) | better | ' + ' | '.join(peers)
if 'edgeproxy' in peers and 'nginx' in peers:
    hdr += ' | edgeproxy/nginx'
print(hdr + ' |')
print('|' + '---|' * (hdr.count('|')))
for key, name, better, fmt in metrics:
    cells = []
    for p in peers:
        m = med((p, key))
        cells.append(fmt.format(m) if m is not None else '—')
    line = f'| {name} | {better} | ' + ' | '.join(cells)
    if 'edgeproxy' in peers and 'nginx' in peers:
        e, n = med(('edgeproxy', key)), med(('nginx', key))
        line += ' | ' + (f'{e / n:.2f}×' if e is not None and n else '—')
    print(line + ' |')
print()
print('Server CPU utilisation during each test (median, % of one core): ' + '; '.join(
    f"{p}: " + ', '.join(f"{k.split('_')[0]} {med((p, k)):.0f}%" for k in ('hs_util', 'hsget_util', 'ka_util') if med((p, k)) is not None)
    for p in peers))
print(f'Other processes on the server core during the tests (median %; >10 means a busy machine): ' + '; '.join(
    f"{p}: " + ', '.join(f"{k.split('_')[0]} {med((p, k)):.0f}%" for k in ('hs_other', 'hsget_other', 'ka_other') if med((p, k)) is not None and med((p, k)) == med((p, k)))
    for p in peers))
print('Errors (sum over rounds): ' + '; '.join(
    f"{p}: " + ', '.join(f"{k.split('_')[0]} {sum(vals.get((p, k), [0])):.0f}" for k in ('hs_errors', 'hsget_errors', 'ka_errors'))
    for p in peers))
print('Client-side resumed handshakes (must be 0): ' + '; '.join(f"{p}: {sum(vals.get((p, 'resumed'), [0])):.0f}" for p in peers))
print('TLS 1.3 session tickets sent per handshake (openssl s_client -msg; 0 means no resumption possible): ' + '; '.join(
    f"{p}: {max(vals.get((p, 'tickets'), [float('nan')])):.0f}" for p in peers))
print()
print('Per-round values (round: value):')
print()
for key, name, better, fmt in metrics:
    for p in peers:
        if (p, key) in rounds:
            print(f'- {p} {key}: ' + ', '.join(f'r{r}: ' + fmt.format(v) for r, v in rounds[(p, key)]))
PY
)

{
    echo "# edgeproxy benchmark — $STAMP"
    echo
    echo "Peers: $PEERS. DURATION=${DURATION}s, ROUNDS=$ROUNDS (all peers up together; each test run on every peer back to back, order alternating ABBA), WARMUP=${WARMUP}s,"
    echo "HS_CONNS=$HS_CONNS, wrk -t$WRK_THREADS -c$WRK_CONNS, IDLE_CONNS=$IDLE_CONNS. Server pinned to CPU $SERVER_CPU, clients and origin"
    echo "to CPU $CLIENT_CPU. TLS 1.3, X25519, P-256 certificate, full handshakes only (hsclient has no session cache)."
    echo "CPU per operation = Δ(utime+stime) of all server processes / completed operations (clock tick $CLK_TCK Hz)."
    echo "Load average at start: $LOAD_START; at end: $LOAD_END."
    echo
    echo "$TABLE"
    echo
    [[ -n $ERRORS_NOTE ]] && { echo "**Errors:** $ERRORS_NOTE"; echo; }
    echo "Compare only within this run; absolute figures drift on this machine (see /work/shared/facts.md)."
    echo
    echo "## Environment"
    echo
    echo '```'
    echo "uname -a: $(uname -a)"
    echo "nginx: $("$NGINX_BIN" -V 2>&1 | head -2 | tr '\n' ' ')"
    echo "openssl: $(openssl version)"
    echo "wrk: $(wrk -v 2>&1 | head -1)"
    echo "go: $(go version)"
    if [[ " $PEERS " == *" edgeproxy "* ]]; then
        echo "edgeproxy: $EDGEPROXY_BIN ($(stat -c '%s bytes, modified %y' "$EDGEPROXY_BIN"), sha256 $(sha256sum "$EDGEPROXY_BIN" | cut -c1-16))"
        echo "edgeproxy repo: $(git -C "$REPO" rev-parse --short HEAD 2>/dev/null || echo 'no commit')$(git -C "$REPO" diff --quiet 2>/dev/null || echo ' (+ uncommitted changes)')"
    fi
    echo "CPUs: $(nproc --all), $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2-)"
    echo '```'
    echo
    echo "## Exact commands (WORK = temporary directory of the run)"
    echo
    echo '```'
    awk '!seen[$0]++' "$CMDLOG" | sed "s#$WORK#\$WORK#g"
    echo "# all servers (re)started each round; before the measurements: openssl s_client -tls1_3 -groups X25519 -msg -ign_eof (ticket count + one GET), then ${WARMUP}s of hsclient -mode get warm-up"
    echo '```'
    echo
    echo "## Configurations"
    for f in "$WORK/origin/nginx.conf" "$WORK/nginx/nginx.conf" "$WORK/openssl-notickets.cnf" "$WORK/edgeproxy/edgeproxy.yaml"; do
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
