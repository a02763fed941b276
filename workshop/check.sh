#!/usr/bin/env bash
# check.sh [BUILD_DIR] - is this machine ready for the workshop? (make workshop-check)
#
# Checks, and says what to do about each thing missing:
#   required  the build (routers, loadgen, the conformance suite), python3, jq, gdb, and that
#             gdb may attach to a running process (ptrace), that a router can listen on a port
#             of the kernel's choosing (--port 0) and be reached over loopback
#   optional  rustc (exercise 1's compiler error), taskset (exercise 6), the open-file limit
#             (exercise 3's idle connections), two cores or more, routers left running
# Exits 0 when everything required is there; optional items only warn.
set -uo pipefail

build=${1:-build}
here=$(cd "$(dirname "$0")" && pwd)
root=$(dirname "$here")
missing=0 warnings=0

ok() { printf '  ok    %s\n' "$1"; }
bad() {
    printf '  MISS  %s\n' "$1"
    shift
    printf '%s\n' "$@" | sed 's/^/        /'
    missing=$((missing + 1))
}
warn() {
    printf '  warn  %s\n' "$1"
    shift
    printf '%s\n' "$@" | sed 's/^/        /'
    warnings=$((warnings + 1))
}
# The command that installs Debian packages, as this user may run it.
install() {
    if [ "$(id -u)" -eq 0 ]; then echo "apt-get install $*"; else echo "sudo apt-get install $*"; fi
}

echo "workshop check: $(uname -sr), $(nproc) cores, user $(id -un)"

# ---- the build ----
echo "the build ($build/)"
want=()
while IFS=$'\t' read -r _ binary _; do
    [[ " ${want[*]} " == *" $binary "* ]] || want+=("$binary")
done < <("$root/scripts/routers.sh" configs 2> /dev/null)
want+=(loadgen conformance)
absent=()
for b in "${want[@]}"; do [ -x "$build/$b" ] || absent+=("$b"); done
if [ ${#absent[@]} -eq 0 ]; then
    ok "built: ${want[*]}"
else
    bad "not built: ${absent[*]}" "run: make   (it installs the missing Debian packages when run as root, or says what to install)"
fi
if [ -d "$build/tsan" ] && [ -x "$build/tsan/router-naive" ]; then
    ok "ThreadSanitizer build (exercise 1): $build/tsan/"
else
    echo "  note  exercise 1 builds $build/tsan/ itself (make race-build)"
fi

# ---- tools ----
echo "tools"
if command -v python3 > /dev/null && python3 -c 'import selectors, socket, struct' 2> /dev/null; then
    ok "python3: $(python3 --version 2>&1) (peer.py, example-router.py)"
else
    bad "python3 (peer.py, exercise 5's example router)" "$(install python3)"
fi
if command -v jq > /dev/null; then
    ok "jq: $(jq --version) (reads loadgen's results)"
else
    bad "jq (exercises 3, 4 and 6 read loadgen's JSON with it)" "$(install jq)"
fi
if command -v gdb > /dev/null; then
    ok "gdb: $(gdb --version | head -n 1)"
else
    bad "gdb (exercise 2 attaches it to a deadlocked router)" "$(install gdb)"
fi
if command -v rustc > /dev/null; then
    ok "rustc: $(rustc --version 2>&1) (exercise 1's compiler error; optional)"
else
    warn "rustc is not installed: optional, exercise 1 shows its output instead" "$(install rustc)   (or rustup)"
fi
if command -v taskset > /dev/null; then
    ok "taskset (exercise 6 pins loadgen to one core)"
else
    warn "taskset is missing: exercise 6 then leaves loadgen unpinned (noisier numbers)" "$(install util-linux)"
fi
if command -v hyperfine > /dev/null && command -v gnuplot > /dev/null; then
    ok "hyperfine and gnuplot (make bench-quick)"
else
    echo "  note  make bench-quick installs hyperfine and gnuplot itself as root (scripts/deps.sh bench)"
fi

# ---- gdb may attach ----
echo "debugger permission (exercise 2)"
scope=/proc/sys/kernel/yama/ptrace_scope
root_user=no
[ "$(id -u)" -eq 0 ] && root_user=yes
if [ -r "$scope" ]; then
    case $(cat "$scope") in
    0) ok "ptrace_scope is 0: gdb may attach to your own processes" ;;
    1) if [ $root_user = yes ]; then
           ok "ptrace_scope is 1, and you are root: gdb may attach"
       else
           warn "ptrace_scope is 1: gdb -p attaches only to its own children" \
               "allow it until the next reboot: echo 0 | sudo tee $scope" \
               "or run exercise 2's gdb with sudo"
       fi ;;
    2) if [ $root_user = yes ]; then
           ok "ptrace_scope is 2, and you are root: gdb may attach"
       else
           warn "ptrace_scope is 2: only root may attach" "run exercise 2's gdb with sudo"
       fi ;;
    *) warn "ptrace_scope is $(cat "$scope"): no process may attach until a reboot" \
           "exercise 2 then needs another machine, or a VM" ;;
    esac
else
    echo "  note  no $scope (no Yama): the usual rules apply, you may attach to your own processes"
fi
if command -v gdb > /dev/null; then
    sleep 30 &
    target=$!
    if gdb -p "$target" -batch -ex 'info inferiors' > /tmp/workshop-check-gdb.$$ 2>&1 &&
        grep -q "process $target" /tmp/workshop-check-gdb.$$; then
        ok "gdb attached to a test process (pid $target) and let it go"
    else
        bad "gdb could not attach to a process of yours:" \
            "$(grep -m1 -i 'ptrace\|permission\|not permitted' /tmp/workshop-check-gdb.$$ || tail -n 1 /tmp/workshop-check-gdb.$$)" \
            "on a machine: echo 0 | sudo tee $scope (or run gdb with sudo)" \
            "in a container: start it with --cap-add=SYS_PTRACE (docker, podman)"
    fi
    kill "$target" 2> /dev/null
    wait "$target" 2> /dev/null
    rm -f /tmp/workshop-check-gdb.$$
fi

# ---- ports and loopback ----
echo "network (loopback only)"
if [ -x "$build/router-reactor" ]; then
    log=$(mktemp)
    if started=$("$here/router.sh" start "$log" "$build/router-reactor" 2> /dev/null) && eval "$started" &&
        [ -n "${PORT:-}" ]; then
        if exec 3<> "/dev/tcp/127.0.0.1/$PORT" && id=$(timeout 3 head -c 4 <&3 | od -An -tu1 | tr -s ' ') &&
            [ "$id" = " 0 0 0 1" ]; then
            ok "a router listened on 127.0.0.1:$PORT (--port 0) and a client got its ID over loopback"
        else
            bad "a router listened on port $PORT but a client could not reach it over loopback" \
                "is the loopback interface up? ip link set lo up (as root); a firewall on lo?"
        fi
        exec 3>&- 2> /dev/null
        "$here/router.sh" stop "$ROUTER_PID" > /dev/null 2>&1
    else
        bad "build/router-reactor could not listen on a port of the kernel's choosing:" \
            "$(tail -n 1 "$log")"
    fi
    rm -f "$log" "$log.out"
elif command -v python3 > /dev/null; then
    if python3 -c '
import socket
l = socket.create_server(("127.0.0.1", 0)); c = socket.create_connection(l.getsockname())
s, _ = l.accept(); s.sendall(b"ok"); assert c.recv(2) == b"ok"' 2> /dev/null; then
        ok "a socket listened on a port of the kernel's choosing and loopback carried bytes"
    else
        bad "could not listen on 127.0.0.1 with port 0, or loopback carried nothing" "ip link set lo up (as root)"
    fi
else
    echo "  note  loopback not checked: build the routers first (make)"
fi
# Routers left running from an earlier exercise: harmless (every exercise uses --port 0), but
# they take CPU that the measurements need.
left=$(pgrep -a -f 'router-|example-router' 2> /dev/null | awk '
    { prog = $2; sub(/.*\//, "", prog); script = $3; sub(/.*\//, "", script) }
    prog ~ /^router-/ || (prog ~ /^python/ && script ~ /router/) { print "  " $0 }' | head -n 5)
if [ -n "$left" ]; then
    warn "routers still running (they take CPU from the measurements):" \
        "$left" "stop each one of yours: workshop/router.sh stop PID"
else
    ok "no router left running from an earlier exercise"
fi

# ---- limits ----
echo "limits"
nofile=$(ulimit -n)
hard=$(ulimit -Hn)
if [ "$nofile" = unlimited ] || [ "$nofile" -ge 4096 ]; then
    ok "open-file limit $nofile (4096 or more: exercise 3's idle connections fit)"
elif [ "$hard" = unlimited ] || [ "$hard" -ge 4096 ]; then
    warn "open-file limit $nofile: the routers raise it themselves (hard limit $hard), but loadgen's" \
        "idle connections need it too: ulimit -n 4096 in each terminal you use"
else
    warn "open-file limit $nofile, hard limit $hard: fewer than 4096 descriptors" \
        "the routers lower --max-clients to fit, and loadgen --idle 1000 fails" \
        "raise the hard limit in /etc/security/limits.conf (nofile), then log in again"
fi
cores=$(nproc)
if [ "$cores" -ge 2 ]; then
    ok "$cores cores"
else
    warn "1 core: exercises 3 and 6 measure contention between cores; expect other shapes"
fi

echo
if [ "$missing" -eq 0 ]; then
    echo "workshop check: ready ($warnings warning(s))"
    exit 0
fi
echo "workshop check: $missing thing(s) missing, $warnings warning(s): see MISS above"
exit 1
