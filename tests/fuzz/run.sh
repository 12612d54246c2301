#!/bin/sh
# run.sh: builds the fuzz targets with clang and libFuzzer (ASan+UBSan) and
# fuzzes each one for a bounded time, for CI and for longer runs by hand.
#
# Usage: sh tests/fuzz/run.sh [SECONDS_PER_TARGET]   (default 20; or set
#        FUZZ_SECONDS)  Build dir: build-fuzz (FUZZ_BUILD_DIR to change).
# Each target starts from a copy of tests/fuzz/corpus/<target> and its new
# inputs stay in the build dir. A crash fails the run and leaves the input in
# $FUZZ_BUILD_DIR/tests/fuzz/work/<target>/crash-*: add it to the corpus
# (git add tests/fuzz/corpus/<target>/crash-NAME) and it becomes a
# regression test in every build. Exits 0 when every target ran clean, 1 on
# a crash, 77 when clang is not installed.
set -eu
root=$(cd "$(dirname "$0")/../.." && pwd)
seconds=${1:-${FUZZ_SECONDS:-20}}
build=${FUZZ_BUILD_DIR:-$root/build-fuzz}
if ! command -v clang >/dev/null 2>&1; then
  echo "run.sh: clang is not installed; fuzzing skipped"
  exit 77
fi
CC=clang cmake -S "$root" -B "$build" -DCS_FUZZ=ON -DCS_SANITIZE=ON \
  -DCS_BENCH=OFF -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
targets="body request query record segment snapshot http1"
for t in $targets; do
  cmake --build "$build" -j"$(nproc)" --target "fuzz_$t" "fuzz_${t}_replay" >/dev/null
done
FUZZ_SECONDS=$seconds
export FUZZ_SECONDS
cd "$build"
ctest --output-on-failure -R '^fuzz_(run|replay)_' --timeout $((seconds * 2 + 300))
