#!/usr/bin/env bash
# bench_scale.sh: the engine and HTTP benchmarks at several sizes, side by side.
#
# DESIGN.md ("Performance", "Scale") asks for the same measurements at 100k,
# 1M and 10M contacts: at 10M, get, exact search and query at least 70% of
# their 1M rates; open from a snapshot under 3 s at 10M (0.5 s at 1M) and by
# full replay under 30 s (3 s at 1M); resident bytes per contact after open
# at each scale. This script runs, for each size in turn,
#
#   bench_engine --only engine --count N   (engine-N.md: reads, queries,
#                                           creates, opens, memory)
#   bench_http.sh --count N                (http-N.md: contactd over HTTP
#                                           beside the trivial h2o handler)
#
# keeps every output in OUTDIR, and prints scale_summary.py's tables: one
# per size, one of each rate over its 1M rate, and the opens and memory
# against their targets. Sizes run one after another, never at once: each
# needs the machine to itself as far as it can have it.
#
# Time and space, on a 2-CPU machine: 100k takes about 5 minutes, 1M about
# 20, 10M about 75 (most of it loading 10M contacts through the engine and
# then through HTTP), with about 12 GiB of memory and 15 GB of disk under
# --dir at 10M. It is not part of the tests.
#
# usage: bench/bench_scale.sh [--counts "N ..."] [--no-http] [--no-engine]
#          [--out DIR] [--dir DIR] [--http-args "..."] [--engine-args "..."]
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
COUNTS="100000 1000000 10000000"
RUN_HTTP=1
RUN_ENGINE=1
OUT=""
DATA_DIR=/tmp
HTTP_ARGS=""
ENGINE_ARGS=""

usage() {
  sed -n '/^# usage:/,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d; s/^# \{0,1\}//'
  cat <<'EOF'

  --counts "N ..."     the sizes, in order (default "100000 1000000 10000000")
  --no-http            only bench_engine
  --no-engine          only bench_http.sh
  --out DIR            where the outputs go (default: a new bench_scale.* in /tmp);
                       an existing engine-N.md or http-N.md there is kept and
                       not run again, so an interrupted run can be resumed
  --dir DIR            where bench_engine makes its data directory (default /tmp)
  --http-args "..."    more options for bench_http.sh (e.g. "--reps 5")
  --engine-args "..."  more options for bench_engine (e.g. "--reps 9")
EOF
}

while [ $# -gt 0 ]; do
  case "$1" in
    --counts) COUNTS=$2; shift ;;
    --no-http) RUN_HTTP=0 ;;
    --no-engine) RUN_ENGINE=0 ;;
    --out) OUT=$2; shift ;;
    --dir) DATA_DIR=$2; shift ;;
    --http-args) HTTP_ARGS=$2; shift ;;
    --engine-args) ENGINE_ARGS=$2; shift ;;
    -h|--help) usage; exit 0 ;;
    *) echo "bench_scale.sh: unknown option $1" >&2; usage >&2; exit 2 ;;
  esac
  shift
done
for n in $COUNTS; do
  case "$n" in
    '' | *[!0-9]*) echo "bench_scale.sh: --counts takes whole numbers, not '$n'" >&2; exit 2 ;;
  esac
done
[ -n "$OUT" ] || OUT=$(mktemp -d /tmp/bench_scale.XXXXXX)
mkdir -p "$OUT"

log() { printf '[%s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }

ENGINE_BIN="$ROOT/build-bench/bench/bench_engine"
if [ "$RUN_ENGINE" = 1 ]; then
  log "building bench_engine (Release) in build-bench"
  cmake -S "$ROOT" -B "$ROOT/build-bench" -DCMAKE_BUILD_TYPE=Release -DCS_BENCH=ON \
    >"$OUT/build.log" 2>&1 || { cat "$OUT/build.log" >&2; exit 1; }
  cmake --build "$ROOT/build-bench" -j"$(nproc)" --target bench_engine \
    >>"$OUT/build.log" 2>&1 || { tail -40 "$OUT/build.log" >&2; exit 1; }
fi

HTTP_BUILT=0
for n in $COUNTS; do
  if [ "$RUN_ENGINE" = 1 ] && [ ! -s "$OUT/engine-$n.md" ]; then
    log "bench_engine --count $n"
    # shellcheck disable=SC2086 # ENGINE_ARGS is a list of options
    "$ENGINE_BIN" --only engine --count "$n" --dir "$DATA_DIR" $ENGINE_ARGS \
      >"$OUT/engine-$n.md.part" 2>"$OUT/engine-$n.err" ||
      { tail -20 "$OUT/engine-$n.err" >&2; exit 1; }
    mv "$OUT/engine-$n.md.part" "$OUT/engine-$n.md"
  fi
  if [ "$RUN_HTTP" = 1 ] && [ ! -s "$OUT/http-$n.md" ]; then
    log "bench_http.sh --count $n"
    build_opt=""
    [ "$HTTP_BUILT" = 1 ] && build_opt=--no-build
    # shellcheck disable=SC2086 # HTTP_ARGS is a list of options
    bash "$ROOT/bench/bench_http.sh" --count "$n" $build_opt $HTTP_ARGS \
      >"$OUT/http-$n.md.part" 2>"$OUT/http-$n.err" ||
      { tail -20 "$OUT/http-$n.err" >&2; exit 1; }
    mv "$OUT/http-$n.md.part" "$OUT/http-$n.md"
    HTTP_BUILT=1
  fi
done

log "outputs in $OUT"
python3 "$ROOT/bench/scale_summary.py" "$OUT"
