#!/bin/sh
# sim_planted.sh - the proof that the simulator finds bugs (make sim-planted).
#
# impl-sansio/core.c compiles in one realistic bug when PLANT is 1..4 (see its #if PLANT
# blocks). For each, this builds the simulator and router-sansio with that bug into
# build/planted/N/, runs the simulator's default seeds (how many steps it needed, and the
# shortest failing prefix), then the conformance suite against that router (skipped with
# SIM_ONLY=1). The full outputs stay in build/planted/N/.
set -u
cd "$(dirname "$0")/.." || exit 2
out=build/planted
make --no-print-directory build/libcommon.a build/conformance > /dev/null || exit 2
flags="-std=c17 -O2 -g -Wall -Wextra -Werror -D_GNU_SOURCE -Icommon -pthread"

bug() {
    case $1 in
    1) echo "forget to resume the senders blocked on a client that leaves" ;;
    2) echo "reorder: route a read's new frames before the frame it completed" ;;
    3) echo "a closed client's partial frame is kept for the next client on its key" ;;
    4) echo "miscount pending bytes: only what the socket refused, not what was queued since" ;;
    esac
}

for n in 1 2 3 4; do
    mkdir -p "$out/$n"
    echo "== bug $n: $(bug $n)"
    cc $flags -DPLANT=$n -o "$out/$n/sim_sansio" tests/sim_sansio.c impl-sansio/core.c \
        build/libcommon.a || exit 2
    cc $flags -DPLANT=$n -o "$out/$n/router-sansio" impl-sansio/router.c impl-sansio/core.c \
        build/libcommon.a || exit 2
    "$out/$n/sim_sansio" --quiet > "$out/$n/sim.txt"
    grep -m1 "FAILED:" "$out/$n/sim.txt"
    grep -m1 "^replay:" "$out/$n/sim.txt"
    tail -n 2 "$out/$n/sim.txt"
    [ "${SIM_ONLY:-0}" = 1 ] && continue
    start=$(date +%s)
    build/conformance "$out/$n/router-sansio" > "$out/$n/conformance.txt" 2>&1
    rc=$?
    cases=$(grep '\[  FAILED  \] [a-z]' "$out/$n/conformance.txt" | sed 's/.*\] //' | sort -u)
    echo "conformance: exit $rc after $(($(date +%s) - start)) s; failed:" $cases
    sed -n '/^property/,/^conformance:/p' "$out/$n/conformance.txt"
    echo
done
