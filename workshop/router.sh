#!/usr/bin/env bash
# router.sh - start and stop a router the same way in every exercise: on a free port.
#
#   eval "$(workshop/router.sh start LOGFILE ROUTER [ARGS...])"
#       Starts ROUTER ARGS --port 0 in the background, its stderr (warnings, sanitizer reports,
#       the summary line) in LOGFILE, waits for its "listening on HOST:PORT" line, and prints
#       shell assignments for eval:  PORT=...; ROUTER_PID=...; ROUTER_LOG=... (exported)
#       On stderr it says the same for people: copy the port into the other terminals.
#
#   workshop/router.sh stop [PID]
#       Sends SIGTERM to the router ($ROUTER_PID if no PID is given), waits for it to exit
#       (10 s at most), and prints its summary line from its log.
#
#   workshop/router.sh port [PID]
#       Prints the port the router ($ROUTER_PID) listens on, from its log's companion file.
#
# Example:
#   eval "$(workshop/router.sh start build/reactor.log build/router-reactor)"
#   build/loadgen pingpong --port "$PORT" --duration 0.5 | jq .latency_us.p50
#   workshop/router.sh stop
set -euo pipefail

usage() {
    sed -n '3,21p' "$0" | sed 's/^# \{0,1\}//' >&2
    exit 2
}

# The file that keeps a router's "listening on" line (its stdout), beside its log.
out_file() { printf '%s.out' "$1"; }

start() {
    [ $# -ge 2 ] || usage
    local log=$1
    shift
    mkdir -p "$(dirname "$log")"
    local out
    out=$(out_file "$log")
    : > "$out"
    # Not a child of the caller's shell (eval runs us in a command substitution): stdin from
    # /dev/null, stdout and stderr to files, so that nothing holds the substitution open.
    "$@" --port 0 < /dev/null > "$out" 2> "$log" &
    local pid=$!
    local port="" line=""
    for _ in $(seq 100); do # 10 s: a sanitizer build can be slow to start
        line=$(head -n 1 "$out")
        port=$(printf '%s\n' "$line" | sed -n 's/^listening on .*:\([0-9][0-9]*\)$/\1/p')
        [ -n "$port" ] && break
        if ! kill -0 "$pid" 2> /dev/null; then
            echo "router.sh: $* exited before listening; its log ($log) ends with:" >&2
            tail -n 5 "$log" | sed 's/^/    /' >&2
            echo "false"
            exit 1
        fi
        sleep 0.1
    done
    if [ -z "$port" ]; then
        echo "router.sh: $* printed no 'listening on HOST:PORT' line in 10 s; stopping it" >&2
        kill -TERM "$pid" 2> /dev/null || true
        echo "false"
        exit 1
    fi
    echo "router.sh: $1 (pid $pid) $line; its log: $log; stop it with: workshop/router.sh stop" >&2
    printf 'PORT=%s; ROUTER_PID=%s; ROUTER_LOG=%q; export PORT ROUTER_PID ROUTER_LOG\n' "$port" "$pid" "$log"
}

# The log a running router writes its stderr to.
log_of() { readlink "/proc/$1/fd/2" 2> /dev/null || true; }

stop() {
    local pid=${1:-${ROUTER_PID:-}}
    if [ -z "$pid" ]; then
        echo "router.sh: which router? workshop/router.sh stop PID (or eval the start line first, which sets ROUTER_PID)" >&2
        exit 2
    fi
    if ! kill -0 "$pid" 2> /dev/null; then
        echo "router.sh: no process $pid: the router has already exited" >&2
        exit 1
    fi
    local log
    log=$(log_of "$pid")
    kill -TERM "$pid"
    for _ in $(seq 100); do
        kill -0 "$pid" 2> /dev/null || break
        sleep 0.1
    done
    if kill -0 "$pid" 2> /dev/null; then
        echo "router.sh: $pid is still running 10 s after SIGTERM (kill -KILL $pid ends it)" >&2
        exit 1
    fi
    if [ -n "$log" ] && [ -f "$log" ]; then
        # The summary is the router's last line that says "served" (sanitizer output may follow).
        grep 'served [0-9]* clients' "$log" | grep -v ': stats: ' | tail -n 1 ||
            echo "router.sh: $pid stopped, with no summary line in $log (see the end of that file)" >&2
    else
        echo "router.sh: $pid stopped"
    fi
}

port() {
    local pid=${1:-${ROUTER_PID:-}}
    [ -n "$pid" ] || usage
    local log
    log=$(log_of "$pid")
    [ -n "$log" ] || { echo "router.sh: no running router $pid" >&2; exit 1; }
    sed -n 's/^listening on .*:\([0-9][0-9]*\)$/\1/p' "$(out_file "$log")"
}

case ${1:-} in
start) shift; start "$@" ;;
stop) shift; stop "$@" ;;
port) shift; port "$@" ;;
*) usage ;;
esac
