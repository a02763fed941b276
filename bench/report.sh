#!/usr/bin/env bash
# report.sh OUT - turn a benchmark run's raw results into OUT/REPORT.md, OUT/SUMMARY.md and
# the SVG charts, with jq and gnuplot only. Reads OUT/raw/results.jsonl (one loadgen result
# per run, see harness.sh), OUT/raw/hyperfine/*.json, OUT/routers.tsv and OUT/meta.json.
# It can be run again on an old OUT to redraw its report.
set -euo pipefail

out=${1:?usage: bench/report.sh RESULTS_DIR}
here=$(cd "$(dirname "$0")" && pwd)
cd "$out"
mkdir -p data
J() { jq -L "$here" "$@"; }

# ---- reduce: one summary per router and scenario ----
jq -R -s 'split("\n") | map(select(length > 0) | split("\t")
    | {key: .[0], name: .[1], portmode: .[2], target: .[3], claims: (.[4] == "yes"),
       loc: .[5], cmd: .[6]})' routers.tsv > data/routers.json
J -s --slurpfile routers data/routers.json 'include "report";
    aggregate as $b | $routers[0] | map(. + {benches: ($b[.key] // {})})' \
    raw/results.jsonl > data/summary.json
n=$(jq length data/summary.json)
rates=$(jq -r '[.[].benches | keys[] | select(startswith("open-loop-")) | ltrimstr("open-loop-") | tonumber]
    | unique | map(tostring) | join(" ")' data/summary.json)
idles=$(jq -r '[.[].benches | keys[] | select(startswith("conn-")) | ltrimstr("conn-") | tonumber]
    | unique | map(tostring) | join(" ")' data/summary.json)
works=$(jq -r '[.[].benches | keys[] | select(startswith("cpu-")) | ltrimstr("cpu-") | tonumber]
    | unique | map(tostring) | join(" ")' data/summary.json)

# ---- charts ----
plot() { # plot SCRIPT DATA SVG [extra gnuplot assignments]
    gnuplot -e "dir='$here/plot'; data='$2'; out='$3'; n=$n; ${4:-}" "$here/plot/$1" 2>> plot.log ||
        echo "report: gnuplot $1 failed (see $out/plot.log)" >&2
}
for b in pingpong pairs pipeline-64; do
    jq -r --arg b "$b" '.[] | "\(.name)\tx\tus", ((.benches[$b].curve // [])[] | "\(.[0])\t\(if .[0] >= 100 then 100000 else 100 / (100 - .[0]) end)\t\(.[1])"), "", ""' \
        data/summary.json > "data/latency-$b.tsv"
done
jq -r '"router\tpipeline 64 B, frames/s\tpipeline 4 KiB, frames/s\t16 pairs, round trips/s",
    (.[] | "\(.name | ltrimstr("router-"))\t\(.benches["pipeline-64"].frames // "NaN")\t\(.benches["pipeline-4k"].frames // "NaN")\t\(.benches.pairs.trips // "NaN")")' \
    data/summary.json > data/throughput.tsv
jq -r '.[] | "\(.name | ltrimstr("router-"))\toffered\tp99\tsaturated",
    ([.benches | to_entries[] | select(.key | startswith("open-loop-")) | .value | select(.p99 != null)]
     | sort_by(.offered)[] | "\(.offered)\t\(.p99)\t\(if .saturated_runs > 0 then 1 else 0 end)"), "", ""' \
    data/summary.json > data/openloop.tsv
jq -r '.[] | "\(.name | ltrimstr("router-"))\tconnections\tMiB",
    ([.benches | to_entries[] | select(.key | startswith("conn-")) | {idle: (.key | ltrimstr("conn-") | tonumber), rss: .value.rss}
      | select(.rss != null)] | sort_by(.idle)[] | "\(.idle + 8)\t\(.rss / 1024)"), "", ""' \
    data/summary.json > data/memory.tsv
jq -r '"router\twithout the flood\twith the flood",
    (.[] | "\(.name | ltrimstr("router-"))\t\(.benches["slow-consumer"].base_p99 // "NaN")\t\(.benches["slow-consumer"].flood_p99 // "NaN")")' \
    data/summary.json > data/slow.tsv
# cpu: one block per router; cross-overs where a router overtakes router-reactor for good (linear
# interpolation between the two measured work values around its last crossing). A router that
# ends under 1.1x the reactor is said to overtake nothing: a loop that tracks the reactor
# lands up to 1.07x either side of it by chance. workshop/parallelism.sh uses the same rule.
J -r '.[] | select(.benches["cpu-0"] != null) | "\(.name | ltrimstr("router-"))\twork\trt",
    ([.benches | to_entries[] | select(.key | startswith("cpu-")) | {w: (.key | ltrimstr("cpu-") | tonumber), rt: .value.trips}
      | select(.rt != null)] | sort_by(.w)[] | "\(.w)\t\(.rt)"), "", ""' data/summary.json > data/cpu.tsv
J -r 'include "report";
    (map(select(.key == "router-reactor")) | first | .benches) as $r
    | def pts(b): [b | to_entries[] | select(.key | startswith("cpu-")) | {w: (.key | ltrimstr("cpu-") | tonumber), rt: .value.trips} | select(.rt != null)] | sort_by(.w);
      if $r == null then empty else
      (pts($r)) as $ref
      | .[] | select(.key != "router-reactor" and .benches["cpu-0"] != null) | .name as $n
      | pts(.benches) as $p
      | select(($p | length) > 0 and ($p | last.w) == ($ref | last.w) and ($p | last.rt) >= 1.1 * ($ref | last.rt))
      | [range(1; [$p, $ref] | map(length) | min) as $i
          | ($p[$i - 1].rt - $ref[$i - 1].rt) as $d0 | ($p[$i].rt - $ref[$i].rt) as $d1
          | select($d0 < 0 and $d1 >= 0)
          | ($d0 / ($d0 - $d1)) as $t
          | {w: ($p[$i - 1].w + $t * ($p[$i].w - $p[$i - 1].w)), rt: ($p[$i - 1].rt + $t * ($p[$i].rt - $p[$i - 1].rt))}]
      | last // empty | "\(.w)\t\(.rt)\t\($n | ltrimstr("router-")) ≈ \(.w | r(0)) µs"
      end' data/summary.json > data/cpu-cross.tsv
rm -f plot.log
plot latency.gp data/latency-pingpong.tsv latency-pingpong.svg "ttl='pingpong: round-trip time by percentile (1 pair, 32 B)'"
plot latency.gp data/latency-pairs.tsv latency-pairs.svg "ttl='pairs: round-trip time by percentile (16 pairs, 32 B)'"
plot latency.gp data/latency-pipeline-64.tsv latency-pipeline-64.svg "ttl='pipeline: one-way latency by percentile (8 senders, 256 in flight, 64 B)'"
plot throughput.gp data/throughput.tsv throughput.svg
plot openloop.gp data/openloop.tsv openloop.svg
plot memory.gp data/memory.tsv memory.svg
plot slow.gp data/slow.tsv slow-consumer.svg
ncpu=$(jq '[.[] | select(.benches["cpu-0"] != null)] | length' data/summary.json)
cross=data/cpu-cross.tsv
[ -s $cross ] || cross=""
if [ "$ncpu" -gt 0 ]; then n=$ncpu plot cpu.gp data/cpu.tsv cpu.svg "cross='$cross'"; fi

# ---- the summary table ----
J -r 'include "report";
    (map(select(.target == "relay")) | first | .benches) as $floor
    | "| router | pingpong RTT p50 | ×floor | 16-pair round trips/s | ×floor | syscalls / switches per frame | pipelined frames/s (64 B) | ×floor | slow consumer: healthy p99 with flood (without) | stalled | RSS at 10,000 conns | integrity | lines of code |",
      "|---|--:|--:|--:|--:|--:|--:|--:|--:|:-:|--:|---|--:|",
      (.[] | .benches as $b | [
        .name,
        cell($b.pingpong; .p50 | us),
        cell($b.pingpong; per(.p50; $floor.pingpong.p50) | ratio),
        cell($b.pairs; .trips | commas),
        cell($b.pairs; per(.trips; $floor.pairs.trips) | ratio),
        cell($b.pairs; if .reads_per_frame == null then "–" else "\(.reads_per_frame + .writes_per_frame | r(1)) / \(.switches_per_frame | r(1))" end),
        cell($b["pipeline-64"]; .frames | commas),
        cell($b["pipeline-64"]; per(.frames; $floor["pipeline-64"].frames) | ratio),
        cell($b["slow-consumer"]; "\(.flood_p99 | us) (\(.base_p99 | us))"),
        cell($b["slow-consumer"]; of_runs(.stalled_runs; .ok_runs)),
        cell($b["conn-9992"]; .rss | mib),
        integrity_text,
        .loc
      ] | md_row)' data/summary.json > summary-table.md

meta() { jq -r "$1" meta.json; }
{
    echo "Benchmark summary, $(meta .stamp) ($(meta .mode) run), $(meta .cpu), $(meta .cores) cores, commit $(meta .commit)$(meta 'if .dirty then " + uncommitted changes" else "" end')."
    echo "×floor: the router's figure over the relay floor's, measured in the same run (RTT: above 1 is slower; frames/s: below 1 is slower)."
    echo
    cat summary-table.md
} > SUMMARY.md

# ---- the report ----
{
    cat << EOF
# Router benchmark, $(meta .stamp)

| | |
|---|---|
| machine | $(meta .cpu), $(meta .cores) cores, $(meta .memory), $(meta .kernel) |
| load average | $(meta .load_start) at the start, $(meta '.load_end // "?"') at the end (the machine may be shared: read spreads with that in mind) |
| tools | $(meta .tools.hyperfine), $(meta .tools.gnuplot), $(meta .tools.jq), libuv $(meta .tools.libuv), $(meta .tools.cc) |
| placement | $(meta .pinning) |
| commit | $(meta .commit)$(meta 'if .dirty then " with uncommitted changes" else "" end') |
| mode | $(meta .mode): per scenario $(meta .warmups) hyperfine warmup run(s) and $(meta .runs) measured runs ($(meta .few_runs) for the slow-consumer, connections and open-loop scenarios); each run a fresh router, $(meta .warmup_s) s unmeasured then $(meta .duration_s) s measured; $(meta '.wall_s // "?"') s in all |

## Summary

EOF
    cat summary-table.md
    cat << 'EOF'

How to read it. Every figure is the median over the measured runs; each run starts the router
afresh. The **relay floor** is `loadgen relay`: one thread that copies bytes from each sender to
its partner without parsing or routing, driven by the same scenarios in the same run, so it is
what these sockets cost on this machine; **×floor** sets each router beside it. loadgen itself is
one thread and takes one of the machine's cores, so a router has the other. **Integrity** counts,
over every run (warmups too), frames that were lost, duplicated, out of order, misrouted,
corrupted, or answered with an error frame, and runs that failed (router not listening, closed a
connection, stopped answering); every frame is checked. router-naive makes no integrity claim:
it has data races on purpose. **Lines of code** are the router's own sources without comments
and blank lines (common/ is shared by all and not counted).
EOF

    # pingpong and pairs
    for b in pingpong pairs; do
        if [ $b = pingpong ]; then
            printf '\n## pingpong: one pair, one frame in flight (32 B)\n\nThe round-trip time: A sends to B, B answers, A sends the next. Nothing else is happening,\nso this is the router'"'"'s latency at its best.\n\n'
        else
            printf '\n## pairs: 16 pairs, one frame in flight each (32 B)\n\nThe same round trip on 16 pairs at once: how many round trips per second the router completes,\nand what that costs each one in latency.\n\n'
        fi
        J -r --arg b $b 'include "report";
            (map(select(.target == "relay")) | first | .benches[$b]) as $f
            | "| router | round trips/s | ×floor | RTT p50 | p90 | p99 | p99.9 | max | router CPU per run | router peak RSS |",
              "|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|",
              (.[] | .benches[$b] as $s | [.name,
                cell($s; .trips | commas), cell($s; per(.trips; $f.trips) | ratio),
                cell($s; .p50 | us), cell($s; .p90 | us), cell($s; .p99 | us), cell($s; .p999 | us),
                cell($s; .max | us), cell($s; if .cpu == null then "–" else "\(.cpu | r(2)) s" end),
                cell($s; .hwm | mib)] | md_row)' data/summary.json
        printf '\n![%s latency](latency-%s.svg)\n' $b $b
    done

    # pipeline
    cat << 'EOF'

## pipeline: 8 senders to 8 receivers, up to 256 frames in flight each

Throughput with the router kept busy: each sender keeps up to 256 frames on their way to its
receiver (loadgen sees both ends, so it knows how many are in flight without acknowledgements).
Latency is one way, from send to arrival, and includes the queueing that 256 frames in flight
cause. **loadgen busy** is loadgen's CPU time over the run's wall time: near 100%, loadgen's one
core, not the router, set the pace, and the figure is a lower bound of what the router can do.

EOF
    J -r 'include "report";
        (map(select(.target == "relay")) | first | .benches) as $f
        | "| router | 64 B frames/s | MB/s | ×floor | p50 | p99 | p99.9 | loadgen busy | 4 KiB frames/s | MB/s | ×floor | p50 | p99 | loadgen busy |",
          "|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|",
          (.[] | .benches["pipeline-64"] as $s | .benches["pipeline-4k"] as $k | [.name,
            cell($s; .frames | commas), cell($s; .mb | r(1) | tostring), cell($s; per(.frames; $f["pipeline-64"].frames) | ratio),
            cell($s; .p50 | us), cell($s; .p99 | us), cell($s; .p999 | us), cell($s; .loadgen_busy | pct),
            cell($k; .frames | commas), cell($k; .mb | r(1) | tostring), cell($k; per(.frames; $f["pipeline-4k"].frames) | ratio),
            cell($k; .p50 | us), cell($k; .p99 | us), cell($k; .loadgen_busy | pct)] | md_row)' data/summary.json
    printf '\n![throughput](throughput.svg)\n\n![pipeline latency](latency-pipeline-64.svg)\n'

    # system calls and switches
    cat << 'EOF'

## why: system calls, context switches and CPU per frame

What each router spent on one delivered frame during the measured window of the pairs and the
pipeline scenarios, read from `/proc` as the window opened and shut: read-like and write-like
system calls (`syscr`, `syscw` in `/proc/PID/io`, every thread, exited ones too), context
switches (the threads alive then), and CPU time. A frame costs at least one read and one write
somewhere; what a router adds on top is its pattern's price: wake-ups of other threads show as
context switches, and a write per frame instead of per batch shows in writes per frame.

EOF
    J -r 'include "report";
        def f(x): if x == null then "–" else x | r(2) | tostring end;
        "| router | pairs: reads | writes | switches | CPU µs | pipeline 64 B: reads | writes | switches | CPU µs |",
        "|---|--:|--:|--:|--:|--:|--:|--:|--:|",
        (.[] | .benches.pairs as $p | .benches["pipeline-64"] as $q
            | [.name, cell($p; f(.reads_per_frame)), cell($p; f(.writes_per_frame)),
               cell($p; f(.switches_per_frame)), cell($p; f(.cpu_us_per_frame)),
               cell($q; f(.reads_per_frame)), cell($q; f(.writes_per_frame)),
               cell($q; f(.switches_per_frame)), cell($q; f(.cpu_us_per_frame))] | md_row)' data/summary.json

    # crossing loops
    if jq -e '[.[].benches[] | select(.crossed_share != null)] | length > 0' data/summary.json > /dev/null; then
        cat << 'EOF'

## frames that crossed loops

A router that runs several loops (router-sharded) prints at exit how many of the frames it
routed went to a client of another loop: each of those paid a hand-off between loops. The
share, over every run of each scenario:

EOF
        J -r 'include "report";
            ([.[] | .benches | to_entries[] | select(.value.crossed_share != null) | .key] | unique) as $s
            | "| router | " + ($s | join(" | ")) + " |",
              "|---|" + ($s | map("--:") | join("|")) + "|",
              (.[] | .benches as $b | select([$b[] | .crossed_share // empty] | length > 0)
               | [.name] + ($s | map($b[.].crossed_share | if . == null then "–" else "\(. * 100 | round)%" end)) | md_row)' \
            data/summary.json
    fi

    # cpu
    if [ -n "$works" ]; then
        cat << 'EOF'

## cpu: when does parallelism pay?

16 pairs, one frame in flight each (32 B), with `--work-us` N: every frame gets N microseconds
of CPU work in the router (a checksum over the payload, repeated, calibrated at startup), where
its pattern handles a frame: in the sender's thread for naive, mutex and channels, outside any
lock; on the loop for the reactor (so it serializes). Here, unlike the other scenarios, the
router is free to use every core (loadgen keeps to its one thread). **×reactor** is the
router's round trips over router-reactor's at the same work; **CPU per frame** and **cores**
are the router's CPU time in the measured window, per delivered frame and per second of wall
time.

EOF
        J -r --arg works "$works" 'include "report";
            ($works | split(" ") | map(select(length > 0))) as $w
            | (map(select(.key == "router-reactor")) | first | .benches) as $r
            | "| router | " + ($w | map("\(.) µs: round trips/s (×reactor), p99 | CPU per frame, cores") | join(" | ")) + " |",
              "|---|" + ($w | map("--:|--:") | join("|")) + "|",
              (.[] | select(.benches["cpu-0"] != null) | .benches as $b | [.name] + ($w | map(. as $k
                | $b["cpu-" + $k] as $s
                | (cell($s; "\(.trips | commas) (\(per(.trips; $r["cpu-" + $k].trips) | ratio)), \(.p99 | us)"),
                   cell($s; if .cpu_us_per_frame == null then "–" else "\(.cpu_us_per_frame | r(1)) µs, \(.cores | r(2))" end))))
               | md_row)' data/summary.json
        printf '\n![round trips against work per frame](cpu.svg)\n\n'
        if [ -s data/cpu-cross.tsv ]; then
            echo "Cross-overs (where a router overtakes router-reactor for good, ending at least 1.1× ahead; interpolated between measured points):"
            awk -F'\t' '{ printf "%s%s", sep, $3; sep = "; " } END { print "." }' data/cpu-cross.tsv
        else
            echo "No router overtook router-reactor between the work values measured."
        fi
        cat << 'EOF'

The price of threads is paid on every frame (hand-offs, wake-ups, locks); their reward comes
only when frames carry work that can run on another core at the same time. A single loop is
capped by one core's budget: at 50 µs per frame and two frames per round trip, about
1,000,000 / (2 × 50) = 10,000 round trips per second, whatever the machine's other cores do.
EOF
    fi

    # open loop
    cat << EOF

## open loop: 16 senders at fixed total rates (32 B)

Each frame has a slot on a fixed schedule and its latency is measured from that slot, not from
when it could be sent: when a router stalls, the frames queued behind the stall count their
wait (no coordinated omission). The rates run from light load to past the slowest router's
pipelined throughput (64 B). A rate is **saturated** when the router delivered less than 90% of
it or loadgen fell more than 1% of the frames behind schedule (a sender waits once 1,024 of its
frames are in flight); its latency then says how far behind it fell in a short run, not a steady
state. Cells: p50 / p99 one-way latency.

EOF
    J -r --arg rates "$rates" 'include "report";
        ($rates | split(" ") | map(select(length > 0))) as $r
        | "| router | " + ($r | map("\(tonumber | commas)/s") | join(" | ")) + " |",
          "|---|" + ($r | map("--:") | join("|")) + "|",
          (.[] | .benches as $b | [.name] + ($r | map($b["open-loop-" + .] as $s
            | cell($s; "\(.p50 | us) / \(.p99 | us)" + (if .saturated_runs > 0 then " **saturated** (\(.achieved | commas)/s delivered)" else "" end))))
           | md_row)' data/summary.json
    printf '\n![latency against offered load](openloop.svg)\n'

    # slow consumer
    cat << 'EOF'

## slow consumer: 4 healthy pairs at 2,000 frames/s, then a stalled receiver under a flood

Four pairs send at a fixed rate (open loop, 32 B) for one measured period; then a fifth
receiver stops reading while its sender floods it with 4 KiB frames as fast as the router takes
them, for a second period of the same length (50 ms later, so that no frame of the first period
is caught by the flood). The healthy pairs' p99 in the first period is the baseline of the same
run. **Stalled**: some healthy frame sent during the flood waited more than half of that period,
and the flood's p99 is ten times the baseline's. At the end the stalled receiver disconnects,
which frees a router that was stuck writing to it; the frames it held then arrive late, and
count.

EOF
    J -r 'include "report";
        "| router | healthy p99 without the flood | with the flood | ratio | max with the flood | stalled | flood the router took | router peak RSS |",
        "|---|--:|--:|--:|--:|:-:|--:|--:|",
        (.[] | .benches["slow-consumer"] as $s | [.name,
            cell($s; .base_p99 | us), cell($s; .flood_p99 | us), cell($s; per(.flood_p99; .base_p99) | ratio),
            cell($s; .flood_max | us), cell($s; of_runs(.stalled_runs; .ok_runs)),
            cell($s; if .flood_mb == null then "–" else "\(.flood_mb | r(1)) MB" end), cell($s; .hwm | mib)] | md_row)' data/summary.json
    printf '\n![slow consumer](slow-consumer.svg)\n'

    # connections
    cat << EOF

## connections: idle connections beside 4 active pairs

$(echo $idles | sed 's/ /, /g') idle connections are opened (one after another, each waiting
for its ID), then 4 pairs do round trips (32 B, one in flight). The router's resident memory
(VmRSS) and its thread count are read at the end, while everything is still connected.

EOF
    J -r --arg idles "$idles" 'include "report";
        ($idles | split(" ") | map(select(length > 0))) as $i
        | "| router | idle connections | round trips/s | RTT p50 | p99 | router RSS | threads | time to connect all |",
          "|---|--:|--:|--:|--:|--:|--:|--:|",
          (.[] | . as $r | $i[] | $r.benches["conn-" + .] as $s | [$r.name, (tonumber | commas),
            cell($s; .trips | commas), cell($s; .p50 | us), cell($s; .p99 | us), cell($s; .rss | mib),
            cell($s; .threads // "–" | tostring), cell($s; if .connect_s == null then "–" else "\(.connect_s | r(2)) s" end)] | md_row)' \
        data/summary.json
    printf '\n![memory against connections](memory.svg)\n'

    # integrity and failures
    cat << 'EOF'

## integrity and failures

Every frame of every run, warmups included. Lost: sent by a healthy sender and never delivered
(a run that completes has delivered them all, so frames are lost only in a failed run).
Out of order: arrived after a later frame of the same sender. Error frames: the router answered
a healthy frame with an error ("unknown destination"...).

EOF
    J -r 'include "report";
        "| router | claims integrity | misrouted | lost | duplicated | out of order | corrupted | error frames | failed runs |",
        "|---|:-:|--:|--:|--:|--:|--:|--:|--:|",
        (.[] | [.benches[]] as $s
            | (reduce ($s[] | .integrity | to_entries[]) as $e ({}; .[$e.key] += $e.value)) as $t
            | [.name, (if .claims then "yes" else "no" end),
               ($t.misrouted // 0 | tostring), ($t.lost // 0 | tostring), ($t.duplicated // 0 | tostring),
               ($t.out_of_order // 0 | tostring), ($t.corrupted // 0 | tostring), ($t.error_frames // 0 | tostring),
               ($s | map(.failed) | add // 0 | tostring)] | md_row)' data/summary.json
    echo
    J -r '.[] | .name as $n | .key as $k | .benches | to_entries[]
        | select(.value.failed > 0 or .value.first_error_frame != null or (.value.exits | map(select(. != "exit 0")) | length > 0))
        | "- \($n), \(.key): " + ([
            (if .value.failed > 0 then "\(.value.failed) of \(.value.runs) runs failed: \(.value.errors | join("; "))" else empty end),
            (if .value.first_error_frame != null then "error frame \"\(.value.first_error_frame)\"" else empty end),
            (.value.exits | map(select(. != "exit 0")) | if length > 0 then "router at the end: \(join(", "))" else empty end)
          ] | join("; ")) + " (logs/\($k).\(.key).log)"' data/summary.json > failures.md
    if [ -s failures.md ]; then
        cat failures.md
    else
        echo "No run failed, and every router exited cleanly on SIGTERM."
    fi
    rm -f failures.md

    # hyperfine
    cat << 'EOF'

## runs

hyperfine ran every scenario (`--warmup`, `--runs`, `--export-json`); the wall time of a run
includes starting and stopping the router. The figures above come from loadgen's result lines
in `raw/results.jsonl`; hyperfine's exports are in `raw/hyperfine/`, logs in `logs/`.

<details><summary>Wall time per run (hyperfine)</summary>

| router | scenario | runs | wall time per run | non-zero exits |
|---|---|--:|--:|--:|
EOF
    for f in raw/hyperfine/*.json; do
        [ -e "$f" ] || continue
        J -r 'include "report"; .results[] | (.command | split(" ")) as $c
            | [$c[0], $c[1], (.times | length | tostring),
               "\(.mean | r(2)) s ± \(.stddev // 0 | r(2))",
               ((.exit_codes // []) | map(select(. != 0)) | length | tostring)] | md_row' "$f"
    done
    echo
    echo "</details>"
} > REPORT.md
