#!/bin/sh
# sources.sh - the C and Rust sources whose slide regions the decks may quote, one path a line,
# relative to the repository's root, in a stable order. In a git checkout, the files git
# tracks: a participant's copy of a router (workshop exercise 4) repeats every region name of
# the router it copies, and must not break the decks or `make test`. Elsewhere (a tarball),
# every source outside build/ and node's tree.
set -eu
cd "$(dirname "$0")/.."
if git rev-parse --is-inside-work-tree > /dev/null 2>&1; then
    git ls-files '*.c' '*.h' '*.rs'
else
    find . \( -path ./build -o -path ./.git -o -path ./slides/node_modules \) -prune -o \
        -type f \( -name '*.c' -o -name '*.h' -o -name '*.rs' \) -print | sed 's|^\./||'
fi | LC_ALL=C sort
