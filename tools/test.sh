#!/usr/bin/env bash
# The README's second command: installs the packages, then builds and runs
# every test twice: a plain build with warnings as errors, and a build with
# AddressSanitizer and UndefinedBehaviorSanitizer.
set -euo pipefail
cd "$(dirname "$0")/.."

bash tools/deps.sh
jobs=$(nproc)
status=0
for variant in plain asan; do
  dir=build-test-$variant
  flags=(-DCMAKE_BUILD_TYPE=RelWithDebInfo -DCS_WERROR=ON -DCS_BENCH=OFF)
  [ "$variant" = asan ] && flags+=(-DCS_SANITIZE=ON)
  echo "== $variant build" >&2
  cmake -S . -B "$dir" "${flags[@]}" >/dev/null
  cmake --build "$dir" -j"$jobs" >/dev/null
  echo "== $variant tests" >&2
  (cd "$dir" && ctest --output-on-failure -j"$jobs" --timeout 600) || status=1
done
exit $status
