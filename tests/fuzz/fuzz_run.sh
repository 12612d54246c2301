#!/bin/sh
# fuzz_run.sh: one bounded libFuzzer run, as a ctest.
#
# Usage: fuzz_run.sh FUZZER SEED_CORPUS WORKDIR   (FUZZ_SECONDS, default 20)
# Fuzzes from a scratch copy of the seed corpus so new inputs never land in
# the source tree; a crash leaves its input in WORKDIR/crash-* (copy it into
# the seed corpus to make it a regression test) and fails the test. The
# final stats line (executions, coverage) is printed for the record.
set -eu
fuzzer=$1 seeds=$2 work=$3
seconds=${FUZZ_SECONDS:-20}
mkdir -p "$work/corpus"
set +e
"$fuzzer" -max_total_time="$seconds" -timeout=30 -rss_limit_mb=2048 \
  -malloc_limit_mb=1000000 \
  -print_final_stats=1 -artifact_prefix="$work/" \
  "$work/corpus" "$seeds" 2>"$work/log"
rc=$?
set -e
grep -E '^(stat::number_of_executed_units|stat::average_exec_per_sec|stat::new_units_added|stat::peak_rss_mb)' "$work/log" || true
grep -E '^#[0-9]+ +DONE' "$work/log" | tail -1 || true
if [ $rc -ne 0 ]; then
  tail -60 "$work/log"
  echo "fuzzer failed (exit $rc); the input is in $work/"
  exit 1
fi
