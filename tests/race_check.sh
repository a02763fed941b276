#!/bin/sh
# race_check.sh TSAN_BUILD_DIR - the naive router's flaw, shown by ThreadSanitizer.
#
# Drives every router configuration built in TSAN_BUILD_DIR (a SAN=tsan build) with
# TSAN_BUILD_DIR/race_driver: several clients connect, exchange frames at once and leave.
# Then it reads what ThreadSanitizer wrote on the router's stderr and compares it with the
# configuration's "race-free" expectation in its description (impl-*/router.desc):
#   no   it must report a data race (router-naive; the racing functions are printed);
#   yes  it must report none;
#   any  either is accepted and reported;
#   -    not driven (router-mutex --variant deadlock forwards nothing to a client that waits,
#        so a drive would only show it stuck).
# Each drive lasts about two seconds; a timeout bounds each one.
# Exits 1 if an expectation fails, 2 if the driver is missing.
set -u

if [ $# -ne 1 ] || [ ! -d "$1" ]; then
    echo "usage: tests/race_check.sh TSAN_BUILD_DIR" >&2
    exit 2
fi
dir=$1
driver=$dir/race_driver
if [ ! -x "$driver" ]; then
    echo "race_check: $driver is not built (make SAN=tsan BUILD=$dir $driver)" >&2
    exit 2
fi

logs=$(mktemp -d)
trap 'rm -rf "$logs"' EXIT INT TERM
# Keep going after a report, and keep the router's exit status its own.
export TSAN_OPTIONS="${TSAN_OPTIONS:+$TSAN_OPTIONS:}halt_on_error=0:exitcode=0"

failed=0
checked=0

# The functions a report names: for each racing access, its first frame outside the
# sanitizer's own interceptors.
racing_functions() {
    awk '/^ *(Previous )?([Aa]tomic )?([Rr]ead|[Ww]rite) of size / { want = 1; next }
         want && /#[0-9]+ / && !/sanitizer|libtsan/ { print $2; want = 0 }' "$1" |
        sort -u | paste -sd ' ' -
}

# drive EXPECT ROUTER [ARGS...]: EXPECT is "race", "clean" or "any".
drive() {
    expect=$1 router=$2
    shift 2
    [ -x "$dir/$router" ] || return 0
    checked=$((checked + 1))
    label="$router${*:+ $*}"
    log=$logs/$checked.log
    if ! timeout -k 5 40 "$driver" "$log" "$dir/$router" "$@" >"$logs/$checked.out" 2>&1; then
        echo "$label: the drive failed:"
        sed 's/^/    /' "$logs/$checked.out"
        failed=1
        return
    fi
    if grep -q "WARNING: ThreadSanitizer" "$logs/$checked.out"; then
        echo "$label: race_driver itself has ThreadSanitizer reports:"
        sed 's/^/    /' "$logs/$checked.out"
        failed=1
    fi
    races=$(grep -c "WARNING: ThreadSanitizer: data race" "$log")
    others=$(grep "WARNING: ThreadSanitizer:" "$log" | grep -vc "data race")
    if [ "$races" -gt 0 ]; then
        verdict="no"
    else
        verdict="yes"
    fi
    case $expect in
    race) [ "$verdict" = no ] && note=" (expected)" || note=" (UNEXPECTED: it is expected to race)" ;;
    any) note=" (any accepted)" ;;
    *) [ "$verdict" = yes ] && note="" || note=" (UNEXPECTED)" ;;
    esac
    echo "$label: data-race free: $verdict$note"
    if [ "$races" -gt 0 ]; then
        echo "    $races data race reports; racing functions: $(racing_functions "$log")"
    fi
    if [ "$others" -gt 0 ]; then
        echo "    also $others other ThreadSanitizer reports:" \
            "$(grep "WARNING: ThreadSanitizer:" "$log" | grep -v "data race" |
                sed 's/.*ThreadSanitizer: //; s/ (pid=.*//' | sort | uniq -c |
                awk '{ printf "%s%s x%s", sep, $2, $1; sep = ", " }')"
    fi
    case $note in *UNEXPECTED*)
        failed=1
        echo "    first report:"
        awk '/WARNING: ThreadSanitizer/ { p = 1 } p { print "    " $0 } p && /SUMMARY/ { exit }' "$log" |
            head -40
        ;;
    esac
}

configs=$logs/configs
"$(dirname "$0")/../scripts/routers.sh" configs > "$configs" || exit 1
tab=$(printf '\t')
while IFS=$tab read -r _ binary _ _ _ _ _ _ _ race _ args <&3; do
    # $args is the configuration's own argument list: split on purpose.
    # shellcheck disable=SC2086
    case $race in
    no) drive race "$binary" $args ;;
    yes) drive clean "$binary" $args ;;
    any) drive any "$binary" $args ;;
    esac
done 3< "$configs"

if [ "$checked" -eq 0 ]; then
    echo "race_check: no router-* built in $dir" >&2
    exit 1
fi
exit $failed
