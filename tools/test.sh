#!/usr/bin/env bash
# The README's second command: installs the packages, checks that every C
# file follows .clang-format, then builds and runs every test twice: a plain
# gcc build with warnings as errors, and a clang build with AddressSanitizer,
# UndefinedBehaviorSanitizer and the libFuzzer targets, which it also fuzzes
# for a bounded time (FUZZ_SECONDS a target).
# The sanitizer pass runs the slowest randomized tests with fewer rounds;
# the plain pass runs them in full.
set -euo pipefail
cd "$(dirname "$0")/.."

bash tools/deps.sh
jobs=$(nproc)
status=0

echo "== format check (clang-format)" >&2
bash tools/format.sh --check || status=1

echo "== plain build (gcc)" >&2
cmake -S . -B build-test-plain -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCS_WERROR=ON \
  -DCS_BENCH=OFF >/dev/null
cmake --build build-test-plain -j"$jobs" >/dev/null
echo "== plain tests" >&2
(cd build-test-plain && ctest --output-on-failure -j"$jobs" --timeout 600) || status=1

echo "== sanitizer and fuzz build (clang, ASan+UBSan, libFuzzer)" >&2
CC=clang cmake -S . -B build-test-asan -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DCS_WERROR=ON -DCS_SANITIZE=ON -DCS_FUZZ=ON -DCS_BENCH=OFF >/dev/null
cmake --build build-test-asan -j"$jobs" >/dev/null
echo "== sanitizer tests, and each fuzz target for ${FUZZ_SECONDS:-10} s" >&2
(cd build-test-asan &&
  FUZZ_SECONDS=${FUZZ_SECONDS:-10} POWER_ROUNDS=${POWER_ROUNDS:-150} \
  CRASH_ROUNDS=${CRASH_ROUNDS:-8} COMPACT_ROUNDS=${COMPACT_ROUNDS:-8} \
  ctest --output-on-failure -j"$jobs" --timeout 600) || status=1
exit $status
