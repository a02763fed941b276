#!/bin/sh
# build.sh [OUT_DIR] - expand the decks' placeholders into Markdown that Marp can render.
#
# For each slides/talk.*.md, writes OUT_DIR/talk.*.md (default slides/generated/) with
#   <!-- region: NAME -->    replaced by the code between /* slide: NAME */ and /* end slide */
#                            in the C sources, as they are now
#   <!-- bench: summary -->  replaced by the summary table of the benchmark report
#   ![..](bench:NAME.svg)    pointed at a copy of that report's chart
#   <!-- routers: table NAME -->  a table made from the router descriptions (scripts/routers.sh)
# and copies the decks' own pictures (slides/img/) and the report's charts next to them.
# The report is the newest local run, bench/results/latest/ (make bench), or else the reference
# run committed in bench/reference/ (make bench-reference), so a fresh clone has numbers; each
# numbers slide names the one it shows. BENCH_REPORT=DIR picks another. A missing region stops
# the build. Needs only sh and awk.
set -eu

slides=$(cd "$(dirname "$0")" && pwd)
root=$(dirname "$slides")
out=${1:-$slides/generated}
if [ -n "${BENCH_REPORT:-}" ]; then
    report_dir=$BENCH_REPORT
elif [ -f "$root/bench/results/latest/REPORT.md" ]; then
    report_dir=bench/results/latest
else
    report_dir=bench/reference
fi

mkdir -p "$out"
out=$(cd "$out" && pwd)
cd "$root"

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# The same checks `make test` runs: malformed or missing regions stop the build here.
slides/check-regions.sh slides/talk.*.md

slides/sources.sh | xargs awk -f slides/regions.awk >"$tmp/index"

rm -rf "$out/bench" "$out/img"
mkdir -p "$out/bench"
if [ -d slides/img ]; then
    cp -R slides/img "$out/img"
fi
if [ -f "$report_dir/REPORT.md" ]; then
    for chart in "$report_dir"/*.svg; do
        [ -e "$chart" ] && cp "$chart" "$out/bench/"
    done
    echo "build.sh: numbers from $report_dir/REPORT.md"
else
    echo "build.sh: no $report_dir/REPORT.md yet: the numbers slides say 'run make bench first'"
fi

scripts/routers.sh table routers > "$tmp/routers-routers.md"
scripts/routers.sh table properties > "$tmp/routers-properties.md"

for deck in slides/talk.*.md; do
    awk -v regions="$tmp/index" -v report="$report_dir/REPORT.md" \
        -v charts=bench -v chartdir="$out/bench" -v tables="$tmp/routers-" \
        -f slides/expand.awk "$deck" >"$tmp/deck"
    mv "$tmp/deck" "$out/$(basename "$deck")"
    echo "build.sh: $deck -> $out/$(basename "$deck")"
done
