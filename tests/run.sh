#!/bin/sh
# run.sh BUILD_DIR - everything `make test` checks, in order:
#   1. every unit test program BUILD_DIR/unit_*, and router-sansio's simulator (sim_sansio);
#   2. the conformance suite against every router configuration built in BUILD_DIR, each with
#      what its description (impl-*/router.desc, read by scripts/routers.sh) says it lacks;
#   3. tests/race_check.sh on the ThreadSanitizer build (build/tsan, or $TSAN_BUILD);
#   4. slides/check-regions.sh: every code region a slide quotes still exists in the sources;
#   5. the README's router tables agree with the router descriptions (scripts/routers.sh);
#   6. every slide of both decks fits its frame (slides/fit-check.mjs), when Chromium, node and
#      npm are installed; skipped with a message otherwise.
# Prints what failed and a last summary line; exits 1 if anything failed.
set -u

if [ $# -ne 1 ] || [ ! -d "$1" ]; then
    echo "usage: tests/run.sh BUILD_DIR" >&2
    exit 2
fi
build=$1
tests=$(dirname "$0")
tsan_build=${TSAN_BUILD:-$(cd "$tests/.." && pwd)/build/tsan}

checks=0 failures=0 failure_list=""
passed() { checks=$((checks + 1)); }
failed() {
    checks=$((checks + 1)) failures=$((failures + 1))
    failure_list="$failure_list  $1
"
}

# ---- 1. Unit tests ----
units=0
for unit in "$build"/unit_*; do
    [ -x "$unit" ] || continue
    units=$((units + 1))
    echo "== $(basename "$unit")"
    if "$unit"; then passed; else failed "$(basename "$unit")"; fi
done

# The sans-IO core against simulated clients: its default seeds (fewer steps when sanitized).
if [ -x "$build/sim_sansio" ]; then
    units=$((units + 1))
    echo "== sim_sansio"
    if "$build/sim_sansio" --quiet; then passed; else failed "sim_sansio"; fi
fi

# ---- 2. Conformance ----
routers=0
suite_env="" # VAR=VALUE settings for one configuration's run
# conformance ROUTER "EXPECTATIONS" [ROUTER_ARGS...]: one configuration, if ROUTER is built.
conformance() {
    router=$1 expectations=$2
    shift 2
    if [ ! -x "$build/$router" ]; then
        echo "== conformance: $build/$router not built, not checked"
        return
    fi
    label="$router${*:+ $*}"
    routers=$((routers + 1))
    echo
    echo "== conformance: $label${expectations:+ ($expectations)}"
    # $expectations and $suite_env are lists: split on purpose.
    # shellcheck disable=SC2086
    if env $suite_env "$build/conformance" $expectations "$build/$router" "$@"; then
        passed
    else
        failed "conformance: $label"
    fi
}

# Each router configuration, with what its description (impl-*/router.desc) says it lacks.
# A configuration expected not to be data-race free (router-naive) has its races and memory
# errors as its lesson, not as a regression (race_check.sh asserts them), and under a sanitizer
# they surface anywhere, often at shutdown. exitcode=0 keeps them from failing whichever case
# they land in: the suite prints each as a note, and the stress cases count them against
# survives-stress. An ASan report would still end the router (a use after free when a slow
# consumer's own thread frees it under its sender's last store, say): halt_on_error=0 lets it
# go on, as it would unsanitized (the Makefile builds with -fsanitize-recover=address for this).
# The settings reach the suite's own process too, the one run in which its own reports, if any,
# would be printed without failing it.
racy_env="ASAN_OPTIONS=${ASAN_OPTIONS:+$ASAN_OPTIONS:}exitcode=0:halt_on_error=0"
racy_env="$racy_env UBSAN_OPTIONS=${UBSAN_OPTIONS:+$UBSAN_OPTIONS:}exitcode=0"
racy_env="$racy_env TSAN_OPTIONS=${TSAN_OPTIONS:+$TSAN_OPTIONS:}exitcode=0"
configs=$(mktemp)
trap 'rm -f "$configs"' EXIT INT TERM
if ! "$tests/../scripts/routers.sh" configs > "$configs"; then
    failed "router descriptions (scripts/routers.sh check)"
fi
tab=$(printf '\t')
while IFS=$tab read -r _ binary key _ _ forwards isolates memory stress race _ args <&3; do
    if [ "$forwards$isolates$memory$stress" = "----" ]; then
        echo
        echo "== conformance: $key: its description measures nothing here (benchmark only)"
        continue
    fi
    expectations=""
    for pair in forwards=$forwards isolates-slow-consumers=$isolates bounds-memory=$memory \
        survives-stress=$stress; do
        case ${pair#*=} in no | any) expectations="$expectations --expect $pair" ;; esac
    done
    suite_env=""
    [ "$race" = no ] && suite_env=$racy_env
    # $args is the configuration's own argument list: split on purpose.
    # shellcheck disable=SC2086
    conformance "$binary" "${expectations# }" $args
done 3< "$configs"

# ---- 3. Race check ----
race="not present"
if [ -x "$tests/race_check.sh" ]; then
    echo
    echo "== race check: $tsan_build"
    if [ ! -d "$tsan_build" ]; then
        echo "no ThreadSanitizer build there: make SAN=tsan builds it"
        failed "race check: no build in $tsan_build"
    elif "$tests/race_check.sh" "$tsan_build"; then
        passed
    else
        failed "race check"
    fi
    race="run"
fi

# ---- 4. Slide regions ----
echo
echo "== slide regions"
if "$tests/../slides/check-regions.sh"; then passed; else failed "slide regions (slides/check-regions.sh)"; fi

echo
echo "== README tables"
if "$tests/../scripts/routers.sh" readme-check; then passed; else failed "README tables (make docs)"; fi

echo
echo "== slide fit"
chrome=${CHROME_PATH:-$(command -v chromium || command -v chromium-browser || command -v google-chrome || true)}
if [ -z "$chrome" ] || ! command -v node > /dev/null || ! command -v npm > /dev/null; then
    echo "slide-fit check skipped: it needs Chromium, node and npm (apt-get install chromium nodejs npm)"
elif CHROME_PATH=$chrome make --no-print-directory -C "$tests/../slides" fit; then
    passed
else
    failed "slide fit (make -C slides fit)"
fi

echo
summary="$units unit test programs, conformance on $routers router configurations, race check $race"
if [ "$failures" -eq 0 ]; then
    echo "all passed: $summary"
    exit 0
fi
echo "FAILED: $failures of $checks checks ($summary):"
printf '%s' "$failure_list"
exit 1
