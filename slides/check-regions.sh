#!/bin/sh
# check-regions.sh [DECK...] - do the code regions the slides quote still exist?
#
# Indexes every /* slide: NAME */ ... /* end slide */ region in the C (and Rust) sources and
# checks that each one is well formed (closed, not nested, not empty, its name used once) and
# that every <!-- region: NAME --> a deck asks for is there. Decks default to slides/talk.*.md.
# Exits 0 when all is well, 1 listing what is wrong. Needs only sh and awk (no node), so
# `make test` can run it.
set -eu

slides=$(cd "$(dirname "$0")" && pwd)
root=$(dirname "$slides")

# Deck paths are taken relative to where we were called from; everything else from the root.
if [ $# -eq 0 ]; then
    set -- "$slides"/talk.*.md
fi
for deck in "$@"; do
    [ -f "$deck" ] || { echo "check-regions: no deck $deck" >&2; exit 2; }
    case $deck in
    /*) abs=$deck ;;
    *) abs=$PWD/$deck ;;
    esac
    shift
    set -- "$@" "$abs"
done
cd "$root"

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# Every C and Rust source of the project that git tracks (see sources.sh), in a stable order.
slides/sources.sh >"$tmp/files"

status=0
if ! xargs awk -f slides/regions.awk <"$tmp/files" >"$tmp/index" 2>"$tmp/problems"; then
    echo "check-regions: malformed slide regions in the sources:" >&2
    sed 's/^/  /' "$tmp/problems" >&2
    status=1
fi

# The names the decks quote, and which deck quotes each.
for deck in "$@"; do
    sed -n 's/^<!-- region: \([a-z0-9-]*\) -->[ \t]*$/\1/p' "$deck" | sed "s|\$|	${deck#"$root"/}|"
done | LC_ALL=C sort -u >"$tmp/wanted"

missing=$(cut -f1 "$tmp/index" | LC_ALL=C sort -u | LC_ALL=C join -t '	' -v1 "$tmp/wanted" - || true)
if [ -n "$missing" ]; then
    echo "check-regions: slides quote regions that no source marks any more:" >&2
    echo "$missing" | awk -F '\t' '{ printf "  %s (quoted by %s)\n", $1, $2 }' >&2
    status=1
fi

# The decks are translations of each other: the same slides, quoting the same code and
# numbers in the same order. Compare their skeletons: slide breaks and placeholders.
first=""
for deck in "$@"; do
    grep -E '^(---|<!-- (region|bench|routers): .* -->)[ \t]*$|\]\(bench:' "$deck" |
        sed 's/^!\[[^]]*\]/![]/' >"$tmp/skeleton"
    if [ -z "$first" ]; then
        first=$deck
        cp "$tmp/skeleton" "$tmp/first"
    elif ! cmp -s "$tmp/first" "$tmp/skeleton"; then
        echo "check-regions: ${deck#"$root"/} and ${first#"$root"/} differ in structure" \
            "(slides or placeholders):" >&2
        diff "$tmp/first" "$tmp/skeleton" | sed 's/^/  /' >&2
        status=1
    fi
done

# Long regions do not fit a slide; say so, but the sources decide what they need.
awk -F '\t' '$4 - $3 + 1 > 20 {
    printf "check-regions: warning: region %s (%s:%d) has %d lines; a slide fits about 18\n",
        $1, $2, $3, $4 - $3 + 1 }' "$tmp/index" >&2

if [ "$status" -eq 0 ]; then
    echo "check-regions: $(wc -l <"$tmp/index") regions marked in the sources, \
$(cut -f1 "$tmp/wanted" | sort -u | wc -l) quoted by $# decks, none missing"
fi
exit "$status"
