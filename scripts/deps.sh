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
echo "installing missing packages:$pkgs" >&2
$sudo apt-get update -qq >&2
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends $pkgs >&2
