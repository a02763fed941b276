# report.jq - helpers for report.sh: formatting, medians, and the reduction of loadgen's
# result lines (one per run) to one summary per router and scenario.

def r(n): . * pow(10; n) | round / pow(10; n);

# Three significant figures, enough for figures that move by a few per cent from run to run.
def sig3: if . < 10 then r(2) elif . < 100 then r(1) else round end | tostring;

def us: if . == null then "–"
    elif . < 1000 then "\(sig3) µs"
    elif . < 1000000 then "\(. / 1000 | sig3) ms"
    else "\(. / 1000000 | sig3) s" end;

def commas: if . == null then "–"
    else round | tostring | explode | reverse | [_nwise(3)] | map(reverse | implode)
         | reverse | join(",") end;

# Two decimals, always shown: 1.00, 0.07.
def fixed2: (. * 100 | round) as $c
    | "\($c / 100 | floor).\($c % 100 | tostring | if length == 1 then "0" + . else . end)";

def ratio: if . == null then "–" elif . < 10 then "\(fixed2)×" else "\(r(1))×" end;

def pct: if . == null then "–" else "\(. * 100 | round)%" end;

def mib: if . == null then "–" else "\(. / 1024 | r(1)) MiB" end;

def med: map(select(. != null)) | sort
    | if length == 0 then null
      elif length % 2 == 1 then .[(length - 1) / 2]
      else (.[length / 2 - 1] + .[length / 2]) / 2 end;

# a / b, or null when either is missing.
def per($a; $b): if $a == null or $b == null or $b == 0 then null else $a / $b end;

# A latency object's field, or null when it holds no sample.
def lat(f): if . != null and .count > 0 then f else null end;

# Runs of one router in one scenario -> one summary. Figures are medians over the measured
# runs that completed; integrity and failures count every run, hyperfine's warmups included.
def summarize:
    . as $all
    | ($all | map(select((.warmup | not) and .ok))) as $ok
    | {
        runs: ($all | length),
        ok_runs: ($ok | length),
        failed: ($all | map(select(.ok | not)) | length),
        errors: ($all | map(select(.ok | not) | .error) | unique),
        bad: ($all | map(.integrity_errors // 0) | add),
        integrity: (reduce ($all[] | .integrity // {} | del(.first_error_frame) | to_entries[]) as $e
            ({}; .[$e.key] += $e.value)),
        first_error_frame: ([$all[] | .integrity.first_error_frame // empty] | first),
        p50: ($ok | map(.latency_us | lat(.p50)) | med),
        p90: ($ok | map(.latency_us | lat(.p90)) | med),
        p99: ($ok | map(.latency_us | lat(.p99)) | med),
        p999: ($ok | map(.latency_us | lat(.p999)) | med),
        max: ($ok | map(.latency_us | lat(.max)) | med),
        curve: ($ok | map(.latency_us | lat(.curve)) | map(select(. != null))
            | if length == 0 then [] else [transpose[] | [.[0][0], (map(.[1]) | med)]] end),
        trips: ($ok | map(.round_trips_per_s) | med),
        frames: ($ok | map(.frames_per_s) | med),
        mb: ($ok | map(.mb_per_s) | med),
        offered: ($ok | map(.open_loop.offered_per_s) | med),
        achieved: ($ok | map(.open_loop.achieved_per_s) | med),
        saturated_runs: ($ok | map(select(.open_loop.saturated)) | length),
        lag_max: ($ok | map(.open_loop.lag_max_us) | med),
        base_p99: ($ok | map(.slow_consumer.baseline_us | lat(.p99)) | med),
        flood_p99: ($ok | map(.slow_consumer.flood_us | lat(.p99)) | med),
        flood_max: ($ok | map(.slow_consumer.flood_us | lat(.max)) | med),
        stalled_runs: ($ok | map(select(.slow_consumer.stalled)) | length),
        flood_mb: ($ok | map(.slow_consumer.flood_bytes) | med | if . == null then null else . / 1e6 end),
        rss: ($ok | map(.router_rss_kib) | med),
        hwm: ($ok | map(.router_stats.vm_hwm_kib) | med),
        threads: ($ok | map(.router_threads) | max),
        cpu: ($ok | map(.router_stats.cpu_s) | med),
        # Over the measured window only (loadgen reads the router's /proc as it opens and shuts).
        reads_per_frame: ($ok | map(.router_window | select(. != null and .frames > 0) | .syscr / .frames) | med),
        writes_per_frame: ($ok | map(.router_window | select(. != null and .frames > 0) | .syscw / .frames) | med),
        switches_per_frame: ($ok | map(.router_window | select(. != null and .frames > 0 and .ctxt != null) | .ctxt / .frames) | med),
        cpu_us_per_frame: ($ok | map(.router_window | select(. != null and .frames > 0) | .cpu_s * 1e6 / .frames) | med),
        crossed_share: ([$all[] | .router_stats | select(. != null and .routed != null and .routed > 0)]
            | if length == 0 then null else (map(.crossed) | add) / (map(.routed) | add) end),
        cores: ($ok | map(select(.router_window != null) | .router_window.cpu_s / .params.duration_s) | med),
        loadgen_busy: ($ok | map(per(.loadgen_cpu_s; .elapsed_s)) | med),
        connect_s: ($ok | map(.connect_s) | med),
        exits: ($all | map(.router_stats.exit // empty) | unique)
      };

# All result lines -> {router key: {bench: summary}}.
def aggregate:
    group_by(.router)
    | map({key: .[0].router,
           value: (group_by(.bench) | map({key: .[0].bench, value: summarize}) | from_entries)})
    | from_entries;

# A scenario's figure for a table cell: "–" if it never ran, "failed" if no run completed.
def cell($s; f): if $s == null then "–" elif $s.ok_runs == 0 then "failed" else ($s | f) end;

# "yes", "no", or "2 of 3 runs" when the runs disagree.
def of_runs($k; $n): if $n == 0 then "–" elif $k == 0 then "no" elif $k == $n then "yes"
    else "\($k) of \($n) runs" end;

# One router's integrity over all its scenarios.
def integrity_text:
    ([.benches[]] | map(.bad) | add // 0) as $bad
    | ([.benches[]] | map(.failed) | add // 0) as $failed
    | (reduce ([.benches[] | .integrity | to_entries[]] | .[]) as $e ({}; .[$e.key] += $e.value)
       | to_entries | map(select(.value > 0)) | map("\(.value) \(.key | gsub("_"; " "))")
       | join(", ")) as $what
    | (if $bad == 0 and $failed == 0 then "ok"
       else [if $bad > 0 then $what else empty end,
             if $failed > 0 then "\($failed) failed runs" else empty end] | join("; ") end)
      + (if .claims then "" else " (no claim)" end);

def md_row: "| " + join(" | ") + " |";
