#!/bin/sh
# routers.sh COMMAND - read the router descriptions, impl-*/router.desc, for the tools that
# need per-router facts: tests/run.sh, tests/race_check.sh, bench/run.sh, the README's tables
# (make docs) and the slides. A router's facts live in its own folder and nowhere else.
#
#   check        every impl-*/ with C sources has a valid router.desc; says what is wrong
#   configs      one tab-separated line per configuration, in the routers' order:
#                  impl binary key label integrity forwards isolates memory stress
#                  race-free bench arguments
#                key: the binary for a router's first configuration, else binary-name;
#                label: the binary, plus " (name)" for configurations after the first
#   table NAME   a Markdown table made from the descriptions: "routers" (how each shares
#                state, and its lesson) or "properties" (what the conformance suite and the
#                race check expect of each configuration)
#   readme       rewrite README.md's tables (between "<!-- routers: table NAME -->" and
#                "<!-- end routers -->") from the descriptions git tracks (make docs)
#   readme-check the same, but only compare, and fail if README.md differs (make test): a
#                router a participant copies into the tree is not in git, and is left out
#
# The format (see CONTRIBUTING.md): "KEY VALUE..." lines, # comments.
#   binary router-X | order N | shares TEXT | lesson TEXT | integrity yes|no
#   config NAME FORWARDS ISOLATES MEMORY STRESS RACE-FREE BENCH [ARGUMENTS...]
# The five expectations are yes, no, any (observed, never judged) or - (not measured); BENCH
# is yes or no (measured by make bench or not). The first config runs with no arguments
# added by the suite beyond its own; a router with no variants has one config, "default".
set -eu

root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"

# Every description, as awk sees them: impl folders that have C sources, sorted by name.
impls() {
    for d in impl-*/; do
        d=${d%/}
        ls "$d"/*.c > /dev/null 2>&1 || continue
        if [ -n "${tracked_only:-}" ] &&
            ! git ls-files --error-unmatch "$d/router.desc" > /dev/null 2>&1; then
            continue
        fi
        echo "$d"
    done
}

# parse: the configurations of every router with a valid description, one TSV line each,
# prefixed by the router's order for sorting; problems go to stderr and make it exit 1.
parse() {
    status=0
    for d in $(impls); do
        desc=$d/router.desc
        if [ ! -f "$desc" ]; then
            echo "routers: $d has sources but no description: add $desc (copy another router's" \
                "and edit it; the format is in CONTRIBUTING.md)" >&2
            status=1
            continue
        fi
        awk -v impl="$d" -v desc="$desc" '
            function bad(msg) { printf "routers: %s:%d: %s\n", desc, NR, msg > "/dev/stderr"; err = 1 }
            function expectation(v) { return v == "yes" || v == "no" || v == "any" || v == "-" }
            /^[ \t]*(#|$)/ { next }
            $1 == "binary" { binary = $2; next }
            $1 == "order" { if ($2 !~ /^[0-9]+$/) bad("order is a number"); order = $2; next }
            $1 == "shares" || $1 == "lesson" {
                text = $0; sub(/^[ \t]*[a-z]+[ \t]+/, "", text); facts[$1] = text; next }
            $1 == "integrity" {
                if ($2 != "yes" && $2 != "no") bad("integrity is yes or no")
                integrity = $2; next }
            $1 == "config" {
                if (NF < 8) { bad("config NAME FORWARDS ISOLATES MEMORY STRESS RACE-FREE BENCH [ARGS]"); next }
                for (i = 3; i <= 7; i++) if (!expectation($i)) bad("\"" $i "\": an expectation is yes, no, any or -")
                if ($8 != "yes" && $8 != "no") bad("\"" $8 "\": bench is yes or no")
                args = ""; for (i = 9; i <= NF; i++) args = args (args == "" ? "" : " ") $i
                n++; name[n] = $2; line[n] = $3 "\t" $4 "\t" $5 "\t" $6 "\t" $7 "\t" $8 "\t" args
                next }
            { bad("unknown key \"" $1 "\"") }
            END {
                want = "router-" substr(impl, 6)
                if (binary != want) { printf "routers: %s: binary must be %s (make builds impl-X/ into build/router-X)\n", desc, want > "/dev/stderr"; err = 1 }
                if (integrity == "") { printf "routers: %s: no integrity line\n", desc > "/dev/stderr"; err = 1 }
                if (facts["lesson"] == "" || facts["shares"] == "") { printf "routers: %s: needs a shares line and a lesson line\n", desc > "/dev/stderr"; err = 1 }
                if (n == 0) { printf "routers: %s: no config line\n", desc > "/dev/stderr"; err = 1 }
                if (err) exit 1
                for (i = 1; i <= n; i++) {
                    key = i == 1 ? binary : binary "-" name[i]
                    label = i == 1 ? binary : binary " (" name[i] ")"
                    printf "%05d\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", (order == "" ? 99 : order), impl, binary,
                        key, label, integrity, line[i], facts["shares"], facts["lesson"]
                }
            }' "$desc" || status=1
    done
    return $status
}

# sorted: parse's lines in the routers' order, the order column dropped. Returns 1 if some
# description is missing or wrong, after printing the lines of all the others.
sorted() {
    ok=0
    lines=$(parse) || ok=1
    [ -z "$lines" ] || printf '%s\n' "$lines" | sort -t "$(printf '\t')" -k1,1n -k2,2 -s | cut -f2-
    return $ok
}

table() {
    case $1 in
    routers)
        echo "| router | how state is shared | its lesson |"
        echo "|---|---|---|"
        sorted | awk -F'\t' '!seen[$1]++ { printf "| `%s/` | %s | %s |\n", $1, $13, $14 }'
        ;;
    properties)
        sorted | awk -F'\t' '
            function cell(v) {
                if (v == "yes") return "yes"
                if (v == "no") return "**no** (expected)"
                if (v == "any") return "varies (observed, not judged)"
                return "not measured"
            }
            { n++; head[n] = substr($2, 8); if ($3 != $2) head[n] = head[n] " `" substr($3, length($2) + 2) "`"
              for (p = 0; p < 5; p++) v[n, p] = $(6 + p) }
            END {
                split("forwards frames|isolates slow consumers|bounds memory under a stalled reader|survives stress|data-race free (ThreadSanitizer)", title, "|")
                printf "| property |"; for (i = 1; i <= n; i++) printf " %s |", head[i]; print ""
                printf "|---|"; for (i = 1; i <= n; i++) printf "---|"; print ""
                for (p = 0; p < 5; p++) {
                    printf "| %s |", title[p + 1]
                    for (i = 1; i <= n; i++) printf " %s |", cell(v[i, p])
                    print ""
                }
            }'
        ;;
    *)
        echo "routers: no table '$1' (routers, properties)" >&2
        exit 2
        ;;
    esac
}

# readme write|check: README.md with its tables made anew, into $1's file or compared.
readme() {
    if ! git rev-parse --is-inside-work-tree > /dev/null 2>&1; then
        echo "routers: not a git checkout: README.md's tables not checked"
        return 0
    fi
    tracked_only=1
    new=$(mktemp)
    tables=$(mktemp)
    trap 'rm -f "$new" "$tables"' EXIT
    for name in routers properties; do
        printf '%s\n' "@@ $name"
        table $name
    done > "$tables"
    awk -v tables="$tables" '
        BEGIN { while ((getline l < tables) > 0) {
                    if (l ~ /^@@ /) { name = substr(l, 4); continue }
                    text[name] = text[name] l "\n" } }
        /^<!-- routers: table [a-z]+ -->$/ {
            print; name = $4; if (!(name in text)) { bad = bad " " name } else printf "%s", text[name]
            skipping = 1; next }
        /^<!-- end routers -->$/ { skipping = 0 }
        !skipping { print }
        END { if (bad != "") { print "routers: README.md names unknown tables:" bad > "/dev/stderr"; exit 1 } }
    ' README.md > "$new"
    if [ "$1" = write ]; then
        if cmp -s "$new" README.md; then
            echo "routers: README.md's tables are up to date"
        else
            cp "$new" README.md
            echo "routers: README.md's tables rewritten from the router descriptions"
        fi
    elif ! cmp -s "$new" README.md; then
        echo "routers: README.md's tables differ from the router descriptions (make docs rewrites them):"
        diff README.md "$new" | sed 's/^/    /' | head -20
        return 1
    else
        echo "routers: README.md's tables agree with the router descriptions"
    fi
}

case ${1:-} in
check) parse > /dev/null ;;
readme) readme write ;;
readme-check) readme check ;;
configs)
    ok=0
    all=$(sorted) || ok=1
    [ -z "$all" ] || printf '%s\n' "$all" | cut -f1-12
    exit $ok
    ;;
table)
    sorted > /dev/null || exit 1
    table "${2:-}"
    ;;
*)
    echo "usage: scripts/routers.sh check | configs | table routers|properties | readme | readme-check" >&2
    exit 2
    ;;
esac
