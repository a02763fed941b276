#!/usr/bin/env bash
# parallelism.sh [BUILD_DIR] [--works 'W...'] [--duration S] [--only REGEX] [--router-cpus LIST]
#
# Exercise 6: when does parallelism pay? The benchmark's cpu scenario, short: 16 pairs of
# clients, each frame given --work-us W microseconds of CPU by the router, one run per router
# and W. The router is free to use every core (or the CPUs of --router-cpus); loadgen is
# pinned to the last one (taskset), as the benchmark does.
#
# One row per router and W: round trips per second, the ratio to router-reactor at the same
# W, the router's CPU time per frame (its work plus its own cost), how many cores it kept
# busy, and how many loadgen did. Then, for each router, the cross-over: the W from which it
# beats router-reactor to the end, if it ends at least 1.1x ahead. Within 10% at the last W it
# is level: one run's noise is that large (a single loop, which only tracks the reactor, lands
# up to 1.07x either side of it). bench/report.sh uses the same rule.
#
# The routers: every configuration the benchmark measures (impl-*/router.desc, bench yes)
# that is built, and every other BUILD_DIR/router-* (your copies). About 1.5 s a run. A "-"
# for CPU per frame: loadgen did not get both readings of the router's /proc in that run.
#
#   workshop/parallelism.sh                         works 0 10 25 50, 1 s each
#   workshop/parallelism.sh --works '0 5 10 15 20'  another set of works
#   workshop/parallelism.sh --only 'reactor|channels'
#   workshop/parallelism.sh --router-cpus 0         the router on CPU 0 only (taskset -c 0)
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
build=build
works="0 10 25 50"
duration=1
only=""
router_cpus=""
if [ $# -gt 0 ] && [[ $1 != --* ]]; then
    build=$1
    shift
fi
while [ $# -gt 0 ]; do
    case $1 in
    --works) works=$2; shift 2 ;;
    --duration) duration=$2; shift 2 ;;
    --only) only=$2; shift 2 ;;
    --router-cpus) router_cpus=$2; shift 2 ;;
    *) sed -n '2,21p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2 ;;
    esac
done

loadgen=$build/loadgen
[ -x "$loadgen" ] || { echo "no $loadgen: run make first" >&2; exit 1; }
command -v jq > /dev/null || { echo "jq is missing: apt-get install jq" >&2; exit 1; }
[ -x "$build/router-reactor" ] || { echo "no $build/router-reactor: run make first" >&2; exit 1; }

# loadgen on the last CPU, as bench/run.sh places it; the router anywhere.
pin=()
cpus=$(nproc)
if [ "$cpus" -ge 2 ] && command -v taskset > /dev/null; then
    pin=(taskset -c $((cpus - 1)))
    placement="loadgen pinned to CPU $((cpus - 1)), the router free on all $cpus"
    [ -z "$router_cpus" ] || placement="loadgen pinned to CPU $((cpus - 1)), the router to CPU $router_cpus"
else
    placement="nothing pinned ($cpus CPU(s), or no taskset)"
fi

commands=()
described=" "
while IFS=$'\t' read -r _ binary _ _ _ _ _ _ _ _ bench args; do
    described="$described$binary "
    if [ "$bench" != yes ] || [ ! -x "$build/$binary" ]; then continue; fi
    commands+=("$build/$binary${args:+ $args}")
done < <("$here/../scripts/routers.sh" configs)
for r in "$build"/router-*; do
    [ -x "$r" ] || continue
    [[ $described == *" $(basename "$r") "* ]] && continue
    commands+=("$r")
done
# router-reactor first: every other row is compared with it at the same work.
ordered=("$build/router-reactor")
for c in "${commands[@]}"; do [ "$c" = "$build/router-reactor" ] || ordered+=("$c"); done
commands=("${ordered[@]}")

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
results=$tmp/results.tsv

echo "parallelism: 16 pairs, --work-us $works, ${duration} s each; $placement; load average $(cut -d' ' -f1 /proc/loadavg)"
printf '%-44s %5s %14s %10s %14s %6s %8s\n' router "work" "round trips/s" "x reactor" "CPU per frame" cores loadgen
for cmd in "${commands[@]}"; do
    label=${cmd#"$build"/}
    [ -z "$only" ] || [[ $label =~ $only ]] || [[ $label == router-reactor ]] || continue
    for w in $works; do
        # shellcheck disable=SC2086 # $cmd is a command line: split on purpose
        ${router_cpus:+taskset -c "$router_cpus"} $cmd --work-us "$w" --port 0 > "$tmp/out" 2> "$tmp/err" &
        pid=$!
        port=""
        for _ in $(seq 50); do
            port=$(sed -n 's/^listening on .*:\([0-9]*\)$/\1/p' "$tmp/out")
            [ -n "$port" ] && break
            sleep 0.1
        done
        if [ -z "$port" ]; then
            echo "$label did not start: $(head -n 1 "$tmp/err")" >&2
            kill "$pid" 2> /dev/null || true
            continue 2
        fi
        "${pin[@]}" "$loadgen" pairs --port "$port" --duration "$duration" --router-pid "$pid" \
            > "$tmp/result" 2> /dev/null || true
        kill -TERM "$pid" 2> /dev/null || true
        wait "$pid" 2> /dev/null || true
        jq -r --arg name "$label" --arg w "$w" --arg d "$duration" '
            (.router_window // {}) as $win
            | if .ok then [$name, $w, .round_trips_per_s,
                (if ($win.frames // 0) > 0 then $win.cpu_s * 1e6 / $win.frames else -1 end),
                (if $win.cpu_s then $win.cpu_s / ($d | tonumber) else -1 end),
                (.loadgen_cpu_s // 0) / .elapsed_s] | @tsv
            else [$name, $w, 0, 0, 0, 0] | @tsv end' "$tmp/result" >> "$results" ||
            printf '%s\t%s\t0\t0\t0\t0\n' "$label" "$w" >> "$results"
        awk -F'\t' -v l="$label" -v w="$w" '
            $1 == "router-reactor" && $2 == w { base = $3 }
            $1 == l && $2 == w { rt = $3; cpu = $4; cores = $5; lg = $6 }
            END {
                ratio = base > 0 ? sprintf("%.2f", rt / base) : "-"
                cpu = cpu < 0 ? "-" : sprintf("%.1f us", cpu)   # loadgen did not read /proc this run
                cores = cores < 0 ? "-" : sprintf("%.2f", cores)
                printf "%-44s %5s %14d %10s %14s %6s %8.2f\n", l, w, rt, ratio, cpu, cores, lg
            }' "$results"
    done
done

echo
echo "cross-over: the work per frame from which a router beats router-reactor (ending 1.1x ahead)"
awk -F'\t' '
    { rt[$1, $2] = $3; if (!($1 in seen)) { seen[$1] = 1; order[++n] = $1 }
      if (!($2 in wseen)) { wseen[$2] = 1; works[++m] = $2 } }
    END {
        for (i = 1; i <= n; i++) {
            r = order[i]
            if (r == "router-reactor") continue
            at = ""
            for (j = 1; j <= m; j++) {
                ref = rt["router-reactor", works[j]]
                if (ref > 0 && rt[r, works[j]] > ref) { if (at == "") at = works[j] }
                else at = ""
            }
            ref = rt["router-reactor", works[m]]
            x = ref > 0 ? rt[r, works[m]] / ref : 0
            if (at != "" && x >= 1.1) verdict = "at " at " us"
            else if (x > 0.9) verdict = sprintf("level at %s us (%.2fx): within one run'"'"'s noise", works[m], x)
            else verdict = "never, in these runs"
            printf "  %-44s %s\n", r, verdict
        }
    }' "$results"
