#!/usr/bin/env bash
# slow-consumer.sh [BUILD_DIR] [-- COMMAND...] - the benchmark's slow-consumer scenario, one
# table row per router, in about two seconds a router.
#
# Four pairs exchange frames at a steady rate; then one receiver stops reading and a flooder
# writes to it as fast as the router accepts. Each row says how the healthy pairs' latency
# changed, whether the router stalled, how much of the flood it took in, and its peak memory.
#
#   workshop/slow-consumer.sh                     every router in build/
#   workshop/slow-consumer.sh build -- 'python3 workshop/example-router.py'
#                                                 ...and more commands (each gets --port 0)
set -euo pipefail

build=build
if [ $# -gt 0 ] && [ "$1" != "--" ]; then
    build=$1
    shift
fi
[ $# -gt 0 ] && [ "$1" = "--" ] && shift

loadgen=$build/loadgen
[ -x "$loadgen" ] || { echo "no $loadgen: run make first" >&2; exit 1; }
command -v jq >/dev/null || { echo "jq is missing: scripts/deps.sh bench installs it" >&2; exit 1; }

commands=()
for r in "$build"/router-*; do
    [ -x "$r" ] || continue
    commands+=("$r")
    [ "$(basename "$r")" = router-mutex ] && commands+=("$r --variant per-connection-lock")
done
commands+=("$@")

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

printf '%-48s %12s %14s %8s %12s %10s\n' router "healthy p99" "during flood" stalled "flood taken" "peak RSS"
for cmd in "${commands[@]}"; do
    # Start the router on a free port and read its "listening on HOST:PORT" line.
    $cmd --port 0 >"$tmp/out" 2>"$tmp/err" &
    pid=$!
    port=""
    for _ in $(seq 50); do
        port=$(sed -n 's/^listening on .*:\([0-9]*\)$/\1/p' "$tmp/out")
        [ -n "$port" ] && break
        sleep 0.1
    done
    if [ -z "$port" ]; then
        printf '%-48s did not start: %s\n' "${cmd#"$build"/}" "$(head -n 1 "$tmp/err")"
        kill "$pid" 2>/dev/null || true
        continue
    fi
    "$loadgen" slow-consumer --port "$port" --router-pid "$pid" >"$tmp/result" 2>"$tmp/lg" || true
    rss=$(awk '/^VmHWM/ { printf "%.0f MiB", $2 / 1024 }' "/proc/$pid/status" 2>/dev/null || echo "-")
    kill -TERM "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
    jq -r --arg cmd "${cmd#"$build"/}" --arg rss "$rss" '
        def ms: if . == null then "-" else "\(. / 1000 * 10 | round / 10) ms" end;
        def mib: "\(. / 1048576 | round) MiB";
        if .ok then
            "\($cmd[0:48] | . + " " * (48 - length)) \(.slow_consumer.baseline_us.p99 | ms | . + " " * (12 - length))" +
            " \(.slow_consumer.flood_us.p99 | ms | . + " " * (14 - length)) \(if .slow_consumer.stalled then "YES" else "no" end | . + " " * (8 - length))" +
            " \(.slow_consumer.flood_bytes | mib | . + " " * (12 - length)) \($rss)"
        else "\($cmd[0:48]) failed: \(.error)" end' "$tmp/result" 2>/dev/null ||
        printf '%-48s loadgen failed: %s\n' "${cmd#"$build"/}" "$(tail -n 1 "$tmp/lg")"
done
