#!/usr/bin/env bash
# HTTP/2 front benchmark: the peers of bench/run.sh (edgeproxy, nginx `listen ... ssl http2`,
# HAProxy `alpn h2,http/1.1`, h2o), same certificate, origin, pinning, TLS settings and checks
# (zero tickets, same suite, curl --http2 must get the origin's 200 and 1 KiB body), measured with
# `h2load -t1 -c32 -m16 -D DURATION`: requests/s and server CPU µs per request, medians over
# ROUNDS, ratios of edgeproxy to the best other peer and to each. Every setting of run.sh applies
# (PEERS, DURATION, ROUNDS, WORKERS, H2_CONNS, H2_STREAMS, ...). Report: bench/results/*-h2.md.
# Usage: EDGEPROXY_BIN=.build/release/edgeproxy bench/h2.sh
exec env H2=1 "$(dirname "${BASH_SOURCE[0]}")/run.sh" "$@"
