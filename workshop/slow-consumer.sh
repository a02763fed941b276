#!/usr/bin/env bash
# slow-consumer.sh [BUILD_DIR] [--only REGEX] [-- COMMAND...] - the benchmark's slow-consumer
# scenario, one table row per router, in about two seconds a router.
#
# Four pairs exchange frames at a steady rate; then one receiver stops reading and a flooder
# writes to it as fast as the router accepts, for one second. Each row says how the healthy
# pairs' latency changed, whether the router stalled, how much of the flood it took in, its
# peak memory, and how many slow consumers it disconnected (its summary line's "evicted N").
#
# The rows: every router configuration that the benchmark measures (its description,
# impl-*/router.desc, says bench yes; see scripts/routers.sh configs) and that is built in
# BUILD_DIR; then every other BUILD_DIR/router-* (your copies: make copy-router); then each
# COMMAND given after --. Each is started with --port 0.
#
#   workshop/slow-consumer.sh                     every router in build/
#   workshop/slow-consumer.sh --only 'reactor|nobp'   only the rows whose name matches
#   workshop/slow-consumer.sh build -- 'python3 workshop/example-router.py'
#                                                 ...and more commands
#   LOADGEN_ARGS='--flood-size 65000' workshop/slow-consumer.sh
#                                                 loadgen's own options (build/loadgen --help)
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
build=build
only=""
if [ $# -gt 0 ] && [ "$1" != "--" ] && [ "$1" != "--only" ]; then
    build=$1
    shift
fi
if [ $# -gt 1 ] && [ "$1" = "--only" ]; then
    only=$2
    shift 2
fi
[ $# -gt 0 ] && [ "$1" = "--" ] && shift

loadgen=$build/loadgen
[ -x "$loadgen" ] || { echo "no $loadgen: run make first" >&2; exit 1; }
command -v jq >/dev/null || { echo "jq is missing: apt-get install jq (or scripts/deps.sh bench)" >&2; exit 1; }

commands=()
described=" "
tab=$(printf '\t')
while IFS=$tab read -r _ binary _ _ _ _ _ _ _ _ bench args; do
    described="$described$binary "
    if [ "$bench" != yes ] || [ ! -x "$build/$binary" ]; then continue; fi
    commands+=("$build/$binary${args:+ $args}")
done < <("$here/../scripts/routers.sh" configs)
for r in "$build"/router-*; do
    [ -x "$r" ] || continue
    [[ $described == *" $(basename "$r") "* ]] && continue
    commands+=("$r")
done
commands+=("$@")

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

printf '%-44s %-12s %-13s %-8s %-12s %-9s %s\n' router "healthy p99" "during flood" stalled "flood taken" "peak RSS" evicted
for cmd in "${commands[@]}"; do
    [ -z "$only" ] || [[ ${cmd#"$build"/} =~ $only ]] || continue
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
        printf '%-44s did not start: %s\n' "${cmd#"$build"/}" "$(head -n 1 "$tmp/err")"
        kill "$pid" 2>/dev/null || true
        continue
    fi
    # shellcheck disable=SC2086 # LOADGEN_ARGS is a list of options: split on purpose
    "$loadgen" slow-consumer --port "$port" --router-pid "$pid" ${LOADGEN_ARGS:-} >"$tmp/result" 2>"$tmp/lg" || true
    rss=$(awk '/^VmHWM/ { printf "%.0f MiB", $2 / 1024 }' "/proc/$pid/status" 2>/dev/null || echo "-")
    kill -TERM "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
    evicted=$(sed -n 's/.*evicted \([0-9][0-9]*\) slow consumers.*/\1/p' "$tmp/err" | tail -n 1)
    jq -r --arg cmd "${cmd#"$build"/}" --arg rss "$rss" --arg evicted "${evicted:--}" '
        def pad(n): . + " " * ([n - length, 0] | max);
        def ms: if . == null then "-" else (. / 100 | round) as $t | "\($t / 10 | floor).\($t % 10) ms" end;
        def mib: "\(. / 1048576 | round) MiB";
        if .ok then
            "\($cmd | pad(44)) \(.slow_consumer.baseline_us.p99 | ms | pad(12))" +
            " \(.slow_consumer.flood_us.p99 | ms | pad(13)) \(if .slow_consumer.stalled then "YES" else "no" end | pad(8))" +
            " \(.slow_consumer.flood_bytes | mib | pad(12)) \($rss | pad(9)) \($evicted)"
        else "\($cmd | pad(44)) failed: \(.error)" end' "$tmp/result" 2>/dev/null ||
        printf '%-44s loadgen failed: %s\n' "${cmd#"$build"/}" "$(tail -n 1 "$tmp/lg")"
done
