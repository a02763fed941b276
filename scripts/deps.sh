#!/bin/sh
# deps.sh GROUP... - make sure the Debian packages a make target needs are installed.
#   build: compiler, pkg-config, libuv, cmocka    bench: hyperfine, gnuplot, jq
#   fuzz: clang (libFuzzer)                        slides: node and npm
# Installs what is missing when run as root (or with sudo); otherwise prints the command.
set -eu

pkgs=""
need() { # need PACKAGE CHECK-COMMAND...
    pkg=$1; shift
    "$@" >/dev/null 2>&1 || pkgs="$pkgs $pkg"
}

for group in "$@"; do
    case $group in
    build)
        need make command -v make
        need gcc command -v gcc
        need libc6-dev test -e /usr/include/stdio.h # only recommended by gcc
        need pkg-config command -v pkg-config
        need libuv1-dev pkg-config --exists libuv
        need libcmocka-dev pkg-config --exists cmocka
        ;;
    bench)
        need hyperfine command -v hyperfine
        need gnuplot-nox command -v gnuplot
        need jq command -v jq
        ;;
    fuzz)
        need clang command -v clang
        need libclang-rt-dev sh -c 'ls /usr/lib/llvm-*/lib/clang/*/lib/linux/libclang_rt.fuzzer-x86_64.a'
        ;;
    slides)
        need nodejs command -v node
        need npm command -v npm
        ;;
    *)
        echo "deps.sh: unknown group '$group'" >&2
        exit 2
        ;;
    esac
done

[ -z "$pkgs" ] && exit 0

if [ "$(id -u)" = 0 ]; then
    sudo=""
elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
    sudo="sudo"
else
    echo "missing packages:$pkgs" >&2
    echo "install them with: sudo apt-get install -y$pkgs" >&2
    exit 1
fi
# apt_get ARGS...: apt-get, waiting while another apt-get or dpkg holds the package lock (a
# second `make` beside this one, unattended upgrades): at most LOCK_WAIT seconds, with a message.
LOCK_WAIT=${DEPS_LOCK_WAIT:-300}
apt_get() {
    waited=0
    while :; do
        if out=$($sudo env DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=10 "$@" 2>&1); then
            [ -z "$out" ] || printf '%s\n' "$out" >&2
            return 0
        fi
        case $out in
        *"Could not get lock"* | *"Unable to acquire"* | *"Unable to lock"* | *"is held by process"*) ;;
        *)
            printf '%s\n' "$out" >&2
            return 1
            ;;
        esac
        if [ "$waited" -ge "$LOCK_WAIT" ]; then
            echo "deps.sh: gave up after $waited s: another apt-get or dpkg still holds the package lock" >&2
            printf '%s\n' "$out" | tail -n 2 >&2
            return 1
        fi
        [ "$waited" -eq 0 ] &&
            echo "deps.sh: another apt-get or dpkg holds the package lock; waiting for it (at most $LOCK_WAIT s)" >&2
        sleep 5
        waited=$((waited + 15)) # the 10 s apt-get waited, and these 5
    done
}

echo "installing missing packages:$pkgs" >&2
apt_get update -qq
apt_get install -y -qq --no-install-recommends $pkgs
