#!/usr/bin/env bash
# harness.sh OUT KEY BENCH WARMUPS LOADGEN [LOADGEN_ARGS...] - one benchmark run, as hyperfine
# runs it: start router KEY fresh, drive it with loadgen, stop it, and append loadgen's JSON
# line, plus what we saw of the router, to OUT/raw/results.jsonl.
#
# KEY's line in OUT/routers.tsv says how to start it (see run.sh). Port modes:
#   zero   append --port 0 and read the "listening on HOST:PORT" line from its stdout
#   subst  replace {port} in the command by a free port, wait until that port listens
#   fixed  the command listens on 8080 by itself; wait until 8080 listens
# Before stopping the router we read its peak resident memory (VmHWM) and its CPU time
# (utime + stime) from /proc. Runs are numbered per KEY and BENCH; the first
# WARMUPS are hyperfine's warmup runs: their figures are left out of the report, but their
# frames are integrity-checked like all others.
# Environment (from run.sh): BENCH_ROUTER_CPUS and BENCH_LOADGEN_CPU pin the two with taskset
# (BENCH_ROUTER_FREE=yes leaves the router free to use every core); BENCH_ROUTER_ARGS are added
# to the router's command (the cpu scenario's --work-us); BENCH_STOP_GRACE is how long the router
# gets to exit after SIGTERM before SIGKILL (2 s).
# Exit status: loadgen's, or 1 if the router could not be started.
set -uo pipefail

out=$1 key=$2 bench=$3 warmups=$4 loadgen=$5
shift 5
tmp=$out/tmp/$key.$bench
mkdir -p "$tmp" "$out/logs" "$out/raw"
log=$out/logs/$key.$bench.log
router_log=$out/logs/$key.router.log

IFS=$'\t' read -r _ _ portmode target _ _ cmd < <(awk -F'\t' -v k="$key" '$1 == k' "$out/routers.tsv")
if [ -z "${cmd:-}" ]; then
    echo "harness: no router '$key' in $out/routers.tsv" >&2
    exit 2
fi

counter=$tmp/runs
run=$(cat "$counter" 2>/dev/null || echo 0)
echo $((run + 1)) > "$counter"
warmup=false
[ "$run" -lt "$warmups" ] && warmup=true

# Emit the result line: loadgen's JSON (or a failure record) with our fields added.
finish() { # finish RESULT_FILE STATS_JSON
    jq -c --arg router "$key" --arg bench "$bench" --argjson run "$run" \
        --argjson warmup "$warmup" --argjson stats "$2" \
        '. + {router: $router, bench: $bench, run: $run, warmup: $warmup, router_stats: $stats}' \
        "$1" >> "$out/raw/results.jsonl"
}

fail_record() { # fail_record MESSAGE
    jq -n --arg e "$1" '{ok: false, error: $e, integrity_errors: 0, integrity: {}}' > "$tmp/result.json"
}

# Sockets in /proc/net/tcp*: "sl local_address rem_address st ...", addresses as hex IP:PORT,
# state 0A = LISTEN. grep, because thousands of TIME_WAIT lines may follow a big run.
port_listening() { # is anything listening on PORT (seen in /proc, without connecting to it)
    grep -qE "^ *[0-9]+: [0-9A-F]+:$(printf '%04X' "$1") [0-9A-F]+:[0-9A-F]+ 0A " \
        /proc/net/tcp /proc/net/tcp6 2>/dev/null
}

free_port() { # a port no socket uses, in any state
    local p
    for _ in $(seq 1 100); do
        p=$((20000 + RANDOM % 40000))
        if ! grep -qE "^ *[0-9]+: [0-9A-F]+:$(printf '%04X' $p) " /proc/net/tcp /proc/net/tcp6 2>/dev/null; then
            echo $p
            return 0
        fi
    done
    return 1
}

# ---- start the router ----
# Where this run's lines begin in the router's log (it is shared by the router's runs).
log_from=$(($(wc -l < "$router_log" 2>/dev/null || echo 0) + 1))
# run.sh may pin the router and loadgen to separate CPUs (BENCH_ROUTER_CPUS, BENCH_LOADGEN_CPU).
router_pin=() loadgen_pin=()
[ -n "${BENCH_ROUTER_CPUS:-}" ] && [ "${BENCH_ROUTER_FREE:-}" != yes ] &&
    router_pin=(taskset -c "$BENCH_ROUTER_CPUS")
# The routers' own options (--work-us, --max-clients) are for the routers only: not the relay
# floor, and not an extra router, which may not know them.
[ -n "${BENCH_ROUTER_ARGS:-}" ] && [ "$target" = router ] && [[ $key != extra-* ]] &&
    cmd="$cmd $BENCH_ROUTER_ARGS"
[ -n "${BENCH_LOADGEN_CPU:-}" ] && loadgen_pin=(taskset -c "$BENCH_LOADGEN_CPU")
: > "$tmp/stdout"
port=""
case $portmode in
zero)
    # shellcheck disable=SC2086 # the command is a path and its own arguments
    "${router_pin[@]}" $cmd --port 0 > "$tmp/stdout" 2>> "$router_log" &
    ;;
subst)
    port=$(free_port) || { fail_record "no free port found"; finish "$tmp/result.json" null; exit 1; }
    "${router_pin[@]}" sh -c "exec ${cmd//\{port\}/$port}" > "$tmp/stdout" 2>> "$router_log" &
    ;;
fixed)
    port=8080
    if port_listening 8080; then
        fail_record "port 8080 is already in use: stop whatever listens there, or give the command a {port}"
        finish "$tmp/result.json" null
        exit 1
    fi
    "${router_pin[@]}" sh -c "exec $cmd" > "$tmp/stdout" 2>> "$router_log" &
    ;;
esac
pid=$!

started=false
give_up=$(($(date +%s%N) + 5000000000)) # 5 s
while [ "$(date +%s%N)" -lt $give_up ]; do
    if ! kill -0 "$pid" 2>/dev/null; then
        break
    fi
    if [ "$portmode" = zero ]; then
        line=$(head -n 1 "$tmp/stdout")
        if [[ $line == "listening on "*:* ]] && [ "$(wc -l < "$tmp/stdout")" -ge 1 ]; then
            port=${line##*:}
            started=true
            break
        fi
    elif port_listening "$port"; then
        started=true
        break
    fi
    sleep 0.01
done
if ! $started; then
    if kill -0 "$pid" 2>/dev/null; then
        kill -KILL "$pid" 2>/dev/null
        wait "$pid" 2>/dev/null
        fail_record "router did not start listening within 5 s ($cmd)"
    else
        wait "$pid" 2>/dev/null
        fail_record "router exited with status $? before listening ($cmd); see logs/$key.router.log"
    fi
    finish "$tmp/result.json" null
    exit 1
fi

# ---- drive it ----
rm -f "$tmp/result.json"
echo "== run $run: $loadgen $* --port $port" >> "$log"
timeout -k 2 120 "${loadgen_pin[@]}" "$loadgen" "$@" --host 127.0.0.1 --port "$port" \
    --target "$target" --router-pid "$pid" --label "$key" --json "$tmp/result.json" 2>> "$log"
status=$?
if [ ! -s "$tmp/result.json" ]; then
    fail_record "loadgen produced no result (exit status $status)"
    [ $status = 0 ] && status=1
fi

# ---- look at the router, then stop it ----
hwm=null cpu=null alive=true
if [ -r "/proc/$pid/status" ] && kill -0 "$pid" 2>/dev/null; then
    hwm=$(awk '/^VmHWM:/ { print $2 }' "/proc/$pid/status")
    stat=$(cat "/proc/$pid/stat")
    read -r -a f <<< "${stat##*) }" # fields from the 3rd on: utime is the 14th, stime the 15th
    cpu=$(awk -v u="${f[11]}" -v s="${f[12]}" -v hz="$(getconf CLK_TCK)" 'BEGIN { printf "%.3f", (u + s) / hz }')
    kill -TERM "$pid" 2>/dev/null
else
    alive=false
fi
exit_note="exit 0"
grace=${BENCH_STOP_GRACE:-2} # seconds for a clean exit after SIGTERM
for _ in $(seq 1 $((grace * 100))); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.01
done
if kill -0 "$pid" 2>/dev/null; then
    kill -KILL "$pid" 2>/dev/null
    wait "$pid" 2>/dev/null
    exit_note="killed: did not exit within $grace s of SIGTERM"
else
    wait "$pid" 2>/dev/null
    rs=$?
    if [ $rs -gt 128 ]; then
        exit_note="died of signal $((rs - 128))"
    elif [ $rs != 0 ]; then
        exit_note="exit $rs"
    fi
    $alive || exit_note="crashed during the run ($exit_note)"
fi
[ -z "$hwm" ] && hwm=null

# A router that spreads frames over several loops says how many crossed (router-sharded).
crossed=$(tail -n +"$log_from" "$router_log" 2>/dev/null |
    sed -n 's/.* \([0-9][0-9]*\) of \([0-9][0-9]*\) frames crossed loops.*/[\1,\2]/p' | tail -n 1)
[ -z "$crossed" ] && crossed=null
stats=$(jq -n -c --argjson hwm "$hwm" --argjson cpu "$cpu" --arg exit "$exit_note" --argjson crossed "$crossed" \
    '{vm_hwm_kib: $hwm, cpu_s: $cpu, exit: $exit} + (if $crossed == null then {} else {crossed: $crossed[0], routed: $crossed[1]} end)')
finish "$tmp/result.json" "$stats"
exit $status
