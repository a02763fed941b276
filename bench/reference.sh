#!/bin/sh
# reference.sh RESULTS_DIR - keep a benchmark run in bench/reference/, the run the decks and the
# README quote when no local run exists (a fresh clone). make bench-reference runs a full make
# bench and then this. It keeps what a reader needs to check the figures: the report and its
# summary, the charts, the machine and commit (meta.json), every run's result line
# (raw/results.jsonl) and their reduction (data/summary.json); not the logs.
set -eu
src=${1:?usage: bench/reference.sh RESULTS_DIR}
here=$(cd "$(dirname "$0")" && pwd)
dst=$here/reference
[ -f "$src/REPORT.md" ] || { echo "reference: no report in $src" >&2; exit 1; }
mode=$(jq -r .mode "$src/meta.json")
[ "$mode" = full ] || { echo "reference: $src is a $mode run; the reference is a full make bench" >&2; exit 1; }
rm -rf "$dst"
mkdir -p "$dst/raw" "$dst/data"
cp "$src/REPORT.md" "$src/SUMMARY.md" "$src/meta.json" "$src/routers.tsv" "$dst/"
cp "$src"/*.svg "$dst/"
cp "$src/raw/results.jsonl" "$dst/raw/"
cp "$src/data/summary.json" "$dst/data/"
jq -r '"# The reference benchmark run\n\nOne full `make bench` of commit \(.commit)\(if .dirty then " (with uncommitted changes)" else "" end), \(.stamp), on \(.cpu), \(.cores) cores, \(.memory), \(.kernel); load average \(.load_start) at the start, \(.load_end // "?") at the end; \(.wall_s // "?") s in all. Its report is [REPORT.md](REPORT.md), its summary [SUMMARY.md](SUMMARY.md).\n\nThe decks (`make slides`) and the README quote this run when no local one exists (`bench/results/latest/`, which `make bench` writes and git ignores), so that a fresh clone shows real numbers; each numbers slide names the run it shows.\n\nTo make a new one, on the project'"'"'s 2-core machine: `make bench-reference` (a full `make bench`, about 10 minutes, then `bench/reference.sh`), and commit `bench/reference/`."' \
    "$src/meta.json" > "$dst/README.md"
echo "reference: $(jq -r .stamp "$src/meta.json") copied to bench/reference/"
