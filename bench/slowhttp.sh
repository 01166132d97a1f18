#!/usr/bin/env bash
# Slow-client attacks at a larger scale than the suite's (Tests/Integration/test_abuse_clients.py
# runs 1,000 connections for 8 s), against an edgeproxy you started, with its RSS and descriptors
# sampled each second. Loopback only. Needs slowhttptest (Debian package).
#   bench/slowhttp.sh PID https://127.0.0.1:8443/path [CONNECTIONS] [SECONDS]
# The proxy's descriptor limit must exceed CONNECTIONS (plus one origin connection per slow reader).
set -euo pipefail

pid=${1:?usage: bench/slowhttp.sh PID URL [connections] [seconds]}
url=${2:?usage: bench/slowhttp.sh PID URL [connections] [seconds]}
n=${3:-10000}
secs=${4:-60}
out=${OUT:-$(dirname "$0")/results/slowhttp-$(date +%Y-%m-%d_%H%M%S)}
mkdir -p "$(dirname "$out")"
ulimit -n $((n + 1024))

sample() {   # RSS (kB) and open descriptors of the proxy, once a second, until killed
    while kill -0 "$pid" 2>/dev/null; do
        echo "$(date +%s) $(awk '/VmRSS/ {print $2}' /proc/"$pid"/status) $(ls /proc/"$pid"/fd | wc -l)"
        sleep 1
    done
}

for mode in H B X; do
    sample > "$out-$mode.rss" &
    sampler=$!
    case $mode in
        H) slowhttptest -H -c "$n" -r 1000 -i 5 -x 10 -l "$secs" -g -o "$out-$mode" -u "$url" ;;
        B) slowhttptest -B -c "$n" -r 1000 -i 5 -x 10 -s 1000000 -l "$secs" -g -o "$out-$mode" -u "$url" ;;
        X) slowhttptest -X -c "$n" -r 1000 -n 1 -z 5 -w 512 -y 1024 -l "$secs" -g -o "$out-$mode" -u "$url" ;;
    esac
    kill "$sampler"
    echo "$mode: peak RSS $(sort -k2 -n "$out-$mode.rss" | tail -1 | cut -d' ' -f2) kB (time, RSS kB, descriptors in $out-$mode.rss)"
done
