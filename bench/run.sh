#!/usr/bin/env bash
# run.sh MODE BUILD_DIR [NAME=COMMAND ...] - benchmark every router and write a report.
#
#   MODE       full (make bench: about 5 minutes on 2 cores) or quick (make bench-quick: every
#              scenario briefly, under a minute; CI runs it)
#   BUILD_DIR  where make put loadgen and the routers (every configuration that a router's
#              description, impl-*/router.desc, marks for the benchmark, if it is built there)
#   NAME=COMMAND  one more router to measure, e.g. make bench EXTRA='mine=./my-router --port {port}'
#              {port} is replaced by a free port; a command without {port} must listen on 8080.
#              NAME starts with a letter; words after it that do not look like NAME=... are
#              the command's arguments (make passes EXTRA to us split into words).
#
# Each scenario is run by hyperfine (warmup, runs, --export-json) through harness.sh, which
# starts the router fresh for every run and stops it after. The relay floor (loadgen relay) is
# measured in the same run, the same way. The report goes to bench/results/<timestamp>/, and
# bench/results/latest points at the newest one.
#
# Exit status: 0; 1 if the report is missing, or a router that claims integrity (its
# description's "integrity yes"; all but router-naive) lost, duplicated, reordered, misrouted or
# corrupted a frame, or failed a run.
set -euo pipefail

usage() {
    echo "usage: bench/run.sh full|quick BUILD_DIR [NAME=COMMAND ...]" >&2
    exit 2
}
die() {
    echo "bench: $*" >&2
    exit 1
}

[ $# -ge 2 ] || usage
mode=$1 build=$2
shift 2
case $mode in full | quick) ;; *) usage ;; esac
here=$(cd "$(dirname "$0")" && pwd)
repo=$(dirname "$here")
[ -d "$build" ] || die "no build directory $build: run make first"
build=$(cd "$build" && pwd)
loadgen=$build/loadgen
[ -x "$loadgen" ] || die "no $loadgen: run make first"
for tool in hyperfine jq gnuplot; do
    command -v $tool > /dev/null || die "$tool is not installed (scripts/deps.sh bench installs it)"
done

started=$(date +%s)
stamp=$(date +%Y%m%d-%H%M%S)
out=$here/results/$stamp
mkdir -p "$out/raw/hyperfine" "$out/logs"
: > "$out/raw/results.jsonl"

# ---- what to run ----
if [ "$mode" = full ]; then
    warmups=1 runs=3 few=2 warm=0.2 dur=1 drain=3
    idles="0 1000 5000 9992"
    factors="0.05 0.2 0.5 0.9 1.3"
    works="0 10 25 50"
else
    warmups=0 runs=1 few=1 warm=0.05 dur=0.2 drain=2
    idles="0 1000 5000 9992"
    factors="0.1 0.6 1.3"
    works="0 10 25 50"
fi
common="--warmup $warm --duration $dur --drain $drain"
[ "$mode" = quick ] && export BENCH_STOP_GRACE=1

# loadgen on the last CPU, the router on the others: each run places them the same way, and
# the router never competes with loadgen for a core. (Left to the scheduler, the two sometimes
# share a core and sometimes not, and on a virtual machine a wakeup across cores can cost ten
# times the whole round trip on one core: pingpong figures would swing with placement luck.)
# BENCH_PIN=no leaves placement to the scheduler.
cpus=$(nproc)
pinning="none (BENCH_PIN=no, or fewer than 2 CPUs)"
if [ "${BENCH_PIN:-yes}" != no ] && [ "$cpus" -ge 2 ] && command -v taskset > /dev/null; then
    export BENCH_LOADGEN_CPU=$((cpus - 1))
    export BENCH_ROUTER_CPUS=0
    [ "$cpus" -gt 2 ] && BENCH_ROUTER_CPUS=0-$((cpus - 2))
    pinning="loadgen on CPU $BENCH_LOADGEN_CPU, the router on CPU $BENCH_ROUTER_CPUS (taskset)"
fi

# Lines of code: lines with something besides comments and blanks.
loc() {
    local f
    for f in "$@"; do if [ -f "$f" ]; then cat "$f"; fi; done | awk '
        { line = $0; code = 0
          while (length(line) > 0) {
              if (incomment) {
                  i = index(line, "*/"); if (!i) { line = ""; break }
                  line = substr(line, i + 2); incomment = 0
              } else {
                  i = index(line, "/*"); j = index(line, "//")
                  if (j && (!i || j < i)) { if (substr(line, 1, j - 1) ~ /[^ \t]/) code = 1; line = ""; break }
                  if (!i) { if (line ~ /[^ \t]/) code = 1; line = ""; break }
                  if (substr(line, 1, i - 1) ~ /[^ \t]/) code = 1
                  line = substr(line, i + 2); incomment = 1
              }
          }
          n += code }
        END { print n + 0 }'
}

# routers.tsv: key, name, port mode, target, claims integrity, lines of code, command.
routers=$out/routers.tsv
: > "$routers"
add_router() { printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$@" >> "$routers"; }
add_router relay "relay (floor)" zero relay yes "$(loc "$here/relay.c")" "$loadgen relay"
# Every router configuration its description (impl-*/router.desc) has measured, if built.
"$repo/scripts/routers.sh" configs > "$out/configs.tsv" || die "a router description is wrong (scripts/routers.sh check)"
while IFS=$'\t' read -r impl binary key label integrity _ _ _ _ _ bench args; do
    [ "$bench" = yes ] && [ -x "$build/$binary" ] || continue
    add_router "$key" "$label" zero router "$integrity" "$(loc "$repo/$impl"/*.c "$repo/$impl"/*.h)" \
        "$build/$binary${args:+ $args}"
done < "$out/configs.tsv"
# EXTRA arrives as one argument (make quotes it) or as words: split it into words, and a word
# that does not start a new NAME=... belongs to the command before it.
specs=()
words=()
for arg in "$@"; do
    read -r -a split <<< "$arg"
    words+=(${split[@]+"${split[@]}"})
done
for word in ${words[@]+"${words[@]}"}; do
    if [[ $word =~ ^[A-Za-z][A-Za-z0-9._-]*= ]] || [ ${#specs[@]} -eq 0 ]; then
        specs+=("$word")
    else
        specs[-1]+=" $word"
    fi
done
for spec in ${specs[@]+"${specs[@]}"}; do
    name=${spec%%=*}
    cmd=${spec#*=}
    [ "$name" != "$spec" ] && [ -n "$name" ] && [ -n "$cmd" ] ||
        die "extra router: expected NAME=COMMAND, got '$spec'"
    key=extra-$(printf '%s' "$name" | tr -c 'A-Za-z0-9._-' '_')
    grep -q "^$key	" "$routers" && die "extra router: name '$name' given twice"
    pm=fixed
    [[ $cmd == *"{port}"* ]] && pm=subst
    add_router "$key" "$name" $pm router yes "-" "$cmd"
done
nrouters=$(wc -l < "$routers")
keys=$(cut -f1 "$routers")

# ---- the machine, the tools, the commit ----
jq -n \
    --arg mode "$mode" --arg stamp "$stamp" \
    --arg cpu "$(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)" \
    --arg cores "$(nproc)" --arg kernel "$(uname -sr)" \
    --arg mem "$(awk '/^MemTotal/ { printf "%.1f GiB", $2 / 1048576 }' /proc/meminfo)" \
    --arg load "$(cut -d' ' -f1-3 /proc/loadavg)" \
    --arg hyperfine "$(hyperfine --version)" --arg gnuplot "$(gnuplot --version)" \
    --arg jq "$(jq --version)" --arg cc "$(${CC:-cc} --version | head -n 1)" \
    --arg libuv "$(pkg-config --modversion libuv 2> /dev/null || echo unknown)" \
    --arg commit "$(git -C "$repo" rev-parse --short HEAD 2> /dev/null || echo unknown)" \
    --arg dirty "$(git -C "$repo" status --porcelain 2> /dev/null | head -n 1)" \
    --argjson warmups $warmups --argjson runs $runs --argjson few $few \
    --arg warm "$warm" --arg dur "$dur" --arg drain "$drain" --arg pinning "$pinning" \
    '{mode: $mode, stamp: $stamp, cpu: $cpu, cores: $cores, kernel: $kernel, memory: $mem,
      load_start: $load, tools: {hyperfine: $hyperfine, gnuplot: $gnuplot, jq: $jq, cc: $cc,
      libuv: $libuv}, commit: $commit, dirty: ($dirty != ""), warmups: $warmups, runs: $runs,
      few_runs: $few, warmup_s: $warm, duration_s: $dur, drain_s: $drain,
      pinning: $pinning}' > "$out/meta.json"

# ---- running one scenario for one router ----
done_count=0
total=0

# One progress line from the runs just appended.
progress() { # progress KEY BENCH SECONDS
    jq -s -r --arg k "$1" --arg b "$2" --arg t "$3" '
        def r(n): . * pow(10; n) | round / pow(10; n);
        def us: if . == null then "-" elif . >= 1000 then "\(. / 1000 | r(1)) ms" else "\(r(0)) us" end;
        def med: sort | if length == 0 then null else .[(length - 1) / 2 | floor] end;
        map(select(.router == $k and .bench == $b)) as $all
        | ($all | map(select(.warmup | not) | select(.ok))) as $ok
        | ($all | map(.integrity_errors // 0) | add) as $bad
        | ($all | map(select(.ok | not))) as $failed
        | (if ($ok | length) == 0 then "no successful run"
           elif $b | startswith("pipeline") then
               "\($ok | map(.frames_per_s) | med | round) frames/s, \($ok | map(.mb_per_s) | med | r(1)) MB/s, p99 \($ok | map(.latency_us.p99) | med | us)"
           elif $b | startswith("open-loop") then
               "offered \($ok[0].open_loop.offered_per_s | round)/s, delivered \($ok | map(.open_loop.achieved_per_s) | med | round)/s, p99 \($ok | map(.latency_us.p99) | med | us)\(if ($ok | map(.open_loop.saturated) | any) then " SATURATED" else "" end)"
           elif $b == "slow-consumer" then
               "healthy p99 \($ok | map(.slow_consumer.baseline_us.p99) | med | us) -> \($ok | map(.slow_consumer.flood_us.p99) | med | us) under the flood\(if ($ok | map(.slow_consumer.stalled) | any) then ", STALLED" else "" end)"
           else
               "\($ok | map(.round_trips_per_s) | med | round) round trips/s, RTT p50 \($ok | map(.latency_us.p50) | med | us) p99 \($ok | map(.latency_us.p99) | med | us)\(if $b | startswith("conn") then ", RSS \($ok | map(.router_rss_kib // 0) | med / 1024 | r(1)) MiB" else "" end)"
           end) as $fig
        | "\($fig); \(if $bad == 0 then "integrity ok" else "INTEGRITY: \($bad) bad frames" end)\(if ($failed | length) > 0 then "; \($failed | length)/\($all | length) runs FAILED: \($failed[0].error)" else "" end) (\($t) s)"
    ' "$out/raw/results.jsonl"
}

bench_one() { # bench_one KEY BENCH WARMUPS RUNS LOADGEN_ARGS...
    local key=$1 bench=$2 w=$3 n=$4
    shift 4
    local t0 cmdline
    t0=$(date +%s.%N)
    cmdline=$(printf '%q ' "$here/harness.sh" "$out" "$key" "$bench" "$w" "$loadgen" "$@")
    hyperfine -N --style none --ignore-failure --warmup "$w" --runs "$n" \
        --command-name "$key $bench" --export-json "$out/raw/hyperfine/$key.$bench.json" \
        "$cmdline" > /dev/null 2>> "$out/logs/hyperfine.log" ||
        echo "bench: hyperfine failed for $key $bench (see logs/hyperfine.log)" >&2
    done_count=$((done_count + 1))
    # A router that never even started listening is not worth its remaining scenarios.
    if jq -s -e --arg k "$key" --arg b "$bench" 'map(select(.router == $k and .bench == $b))
        | length > 0 and all(.error // "" | test("^router (did not start|exited)"))' \
        "$out/raw/results.jsonl" > /dev/null; then
        dead="$dead $key"
    fi
    printf '[%3d/%d] %-36s %-17s %s\n' "$done_count" "$total" \
        "$(awk -F'\t' -v k="$key" '$1 == k { print $2 }' "$routers")" "$bench" \
        "$(progress "$key" "$bench" "$(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }')")"
}

nidles=$(echo $idles | wc -w)
nrates=$(echo $factors | wc -w)
nworks=$(echo $works | wc -w)
nworkers=$(cut -f1 "$routers" | grep -cv '^relay$\|^extra-' || true)
total=$((nrouters * (5 + nidles + nrates) + nworkers * nworks))
echo "bench: $mode run of $nrouters routers (the relay floor included), $total benchmarks; results in ${out#"$repo"/}"

# Phase 1: everything but the open loop, scenario by scenario. Every router, the relay floor
# first, runs a scenario within a minute or two of the others, so a change in the machine's
# load during the run shifts them alike and the ratios to the floor stay comparable.
dead=""
alive() { [[ " $dead " != *" $1 "* ]]; }
scenario() { # scenario BENCH WARMUPS RUNS LOADGEN_ARGS...: one scenario for every live router
    local key
    for key in $keys; do
        if alive "$key"; then bench_one "$key" "$@"; fi
    done
}
for key in $keys; do
    bench_one "$key" pingpong $warmups $runs pingpong $common
    if ! alive "$key"; then
        echo "bench: $key never started listening: skipping its other scenarios (see logs/$key.router.log)" >&2
        case $key in relay | extra-*) total=$((total - 4 - nidles - nrates)) ;; *) total=$((total - 4 - nidles - nrates - nworks)) ;; esac
    fi
done
scenario pairs $warmups $runs pairs $common
scenario pipeline-64 $warmups $runs pipeline --size 64 $common
scenario pipeline-4k $warmups $runs pipeline --size 4096 $common
scenario slow-consumer 0 $few slow-consumer $common
# 8 active connections besides the idle ones: 9,992 makes 10,000, which --max-clients's default
# (10,000) admits, for our routers and an extra one alike.
for idle in $idles; do
    scenario conn-$idle 0 $few connections --idle "$idle" $common
done

# The cpu scenario: 16 pairs, each frame given --work-us of CPU work by the router, which is
# free to use every core (loadgen stays on its own). The routers only, for their ratio to
# router-reactor at the same work: the relay floor does no work, and an extra router may not
# know --work-us.
export BENCH_ROUTER_FREE=yes
for work in $works; do
    export BENCH_ROUTER_ARGS="--work-us $work"
    for key in $keys; do
        case $key in relay | extra-*) continue ;; esac
        if alive "$key"; then bench_one "$key" cpu-$work $warmups $runs pairs $common; fi
    done
done
unset BENCH_ROUTER_FREE BENCH_ROUTER_ARGS

# Phase 2: the open loop, at rates from light load to past the slowest router's limit (its
# pipelined 64-byte throughput from phase 1), the same rates for every router.
slowest=$(jq -s '[.[] | select(.bench == "pipeline-64" and .ok and (.warmup | not) and .target == "router")]
    | group_by(.router) | map(map(.frames_per_s) | sort | .[(length - 1) / 2 | floor])
    | map(select(. > 0)) | min // 100000' "$out/raw/results.jsonl")
rates=$(for f in $factors; do
    awk -v s="$slowest" -v f="$f" 'BEGIN { r = s * f; m = 10 ^ int(log(r) / log(10) - 1); printf "%d\n", int(r / m + 0.5) * m }'
done)
echo "bench: open-loop rates (frames/s, from the slowest router's $(printf '%.0f' "$slowest") pipelined frames/s):" $rates
for rate in $rates; do
    scenario open-loop-$rate 0 $few open-loop --rate "$rate" $common
done

jq --arg load "$(cut -d' ' -f1-3 /proc/loadavg)" --argjson wall $(($(date +%s) - started)) \
    '. + {load_end: $load, wall_s: $wall}' "$out/meta.json" > "$out/meta.json.new" &&
    mv "$out/meta.json.new" "$out/meta.json"
rm -rf "$out/tmp"

# ---- the report ----
"$here/report.sh" "$out" || echo "bench: report.sh failed" >&2
[ -s "$out/REPORT.md" ] || die "no report was written ($out/REPORT.md)"
ln -sfn "$stamp" "$here/results/latest"

echo
cat "$out/SUMMARY.md"
echo
echo "bench: report in ${out#"$repo"/}/REPORT.md (also bench/results/latest/REPORT.md), $(($(date +%s) - started)) s"

# ---- the verdict ----
bad=$(jq -s -r '
    group_by(.router)[] | {router: .[0].router,
        bad: (map(.integrity_errors // 0) | add), failed: (map(select(.ok | not)) | length)}
    | select(.bad > 0 or .failed > 0) | "\(.router)\t\(.bad)\t\(.failed)"' "$out/raw/results.jsonl")
status=0
while IFS=$'\t' read -r key nbad nfailed; do
    [ -n "$key" ] || continue
    claims=$(awk -F'\t' -v k="$key" '$1 == k { print $5 }' "$routers")
    if [ "$claims" = yes ]; then
        echo "bench: FAIL: $key claims integrity but had $nbad bad frames and $nfailed failed runs" >&2
        status=1
    else
        echo "bench: note: $key (no integrity claim) had $nbad bad frames and $nfailed failed runs"
    fi
done <<< "$bad"
exit $status
