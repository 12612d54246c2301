#!/usr/bin/env bash
# bench_batch.sh: POST /contacts/batch, durable contacts a second over HTTP.
#
# DESIGN.md holds POST /contacts/batch to at least 150,000 durable contacts
# a second. Each run starts the build's contactd with --durability fsync (an
# answered batch is on disk) on a free 127.0.0.1 port with a fresh data
# directory, loads --count generated contacts through http_load (the
# benchmarks' loader: 1000 contacts a request by default, over N keep-alive
# connections) and stops the server. Reported per case (connections x batch
# size, and build when --baseline names a second one): the median over
# --reps runs of contacts/s, of the server's CPU time a contact (user and
# system, from /proc, over the load) and of its contacts per fsync (from
# /metrics). The runs of every case and build alternate, rep by rep, so
# that each comparison is made side by side on a noisy machine.
#
#   bench/bench_batch.sh [--count N] [--reps N] [--conns "4 8"]
#                        [--batch "1000"] [--build DIR] [--baseline DIR]
#                        [--no-build] [--perf SECONDS] [--keep]
#
# --build DIR     the build to measure (default build-bench, configured
#                 Release and built here unless --no-build)
# --baseline DIR  a second build (contactd, plugins, http_load) measured in
#                 the same runs, e.g. one of the commit before a change
# --perf S        after the table, one more run of the first case with
#                 perf record -g (software clock) on the server for S
#                 seconds; the report goes to $PERF_OUT (default /tmp/bench_batch.perf.txt)
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
COUNT=200000
REPS=3
CONNS="4 8"
BATCHES="1000"
BUILD="$ROOT/build-bench"
BASELINE=""
BUILD_IT=1
PERF=0
KEEP=0
while [ $# -gt 0 ]; do
  case "$1" in
  --count) COUNT=$2 && shift 2 ;;
  --reps) REPS=$2 && shift 2 ;;
  --conns) CONNS=$2 && shift 2 ;;
  --batch) BATCHES=$2 && shift 2 ;;
  --build) BUILD=$(cd "$2" && pwd) && shift 2 ;;
  --baseline) BASELINE=$(cd "$2" && pwd) && shift 2 ;;
  --no-build) BUILD_IT=0 && shift ;;
  --perf) PERF=$2 && shift 2 ;;
  --keep) KEEP=1 && shift ;;
  -h | --help) sed -n '2,26p' "$0" | sed 's/^# \{0,1\}//' && exit 0 ;;
  *) echo "bench_batch.sh: unknown option $1" >&2 && exit 2 ;;
  esac
done

log() { printf '[%s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }

if [ "$BUILD_IT" = 1 ]; then
  log "building (Release) in $BUILD"
  cmake -S "$ROOT" -B "$BUILD" -DCMAKE_BUILD_TYPE=Release -DCMAKE_C_FLAGS=-g \
    -DCS_BENCH=ON -DCS_TESTS=OFF >"/tmp/bench_batch.cmake.$$.log" 2>&1 ||
    { cat "/tmp/bench_batch.cmake.$$.log" >&2; exit 1; }
  cmake --build "$BUILD" -j"$(nproc)" --target contactd plugin_contacts \
    plugin_health plugin_metrics plugin_openapi http_load \
    >"/tmp/bench_batch.build.$$.log" 2>&1 ||
    { tail -40 "/tmp/bench_batch.build.$$.log" >&2; exit 1; }
  rm -f "/tmp/bench_batch.cmake.$$.log" "/tmp/bench_batch.build.$$.log"
fi
BUILDS=("$BUILD")
[ -n "$BASELINE" ] && BUILDS+=("$BASELINE")
for b in "${BUILDS[@]}"; do
  for f in "$b/frontend/contactd" "$b/bench/http_load"; do
    [ -x "$f" ] || { echo "bench_batch.sh: $f is missing (build first)" >&2; exit 1; }
  done
done

WORK=$(mktemp -d /tmp/bench_batch.XXXXXX)
SPID=""
stop_server() {
  [ -n "$SPID" ] || return 0
  kill -TERM "$SPID" 2>/dev/null || true
  for _ in $(seq 100); do
    kill -0 "$SPID" 2>/dev/null || break
    sleep 0.1
  done
  kill -KILL "$SPID" 2>/dev/null || true
  wait "$SPID" 2>/dev/null || true
  SPID=""
}
cleanup() {
  stop_server
  if [ "$KEEP" = 1 ]; then log "work directory kept: $WORK"; else rm -rf "$WORK"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM HUP

# CPU ticks (user + system) of process $1.
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }

# metric NAME PORT: a counter from /metrics.
metric() {
  curl -s "http://127.0.0.1:$2/metrics" | awk -v m="$1" '$1 == m {print $2}'
}

# start BUILD DIR: starts contactd on a free port; sets SPID, PORT, KEY.
start() {
  local b=$1 dir=$2
  mkdir -p "$dir"
  "$b/frontend/contactd" --data "$dir/data" --listen 127.0.0.1:0 \
    --durability fsync --plugins "$b/plugins" >"$dir/contactd.log" 2>&1 &
  SPID=$!
  PORT=""
  for _ in $(seq 200); do
    PORT=$(grep -o 'listening on http://127\.0\.0\.1:[0-9]*' "$dir/contactd.log" | head -1 | sed 's/.*://' || true)
    [ -n "$PORT" ] && break
    kill -0 "$SPID" 2>/dev/null || break
    sleep 0.05
  done
  [ -n "$PORT" ] || { echo "bench_batch.sh: contactd did not start:" >&2; cat "$dir/contactd.log" >&2; exit 1; }
  for _ in $(seq 100); do [ -s "$dir/data/default.key" ] && break; sleep 0.05; done
  KEY=$(cat "$dir/data/default.key")
}

# one BUILD CONNS BATCH TAG: one run; prints "rate cpu_us_per_contact per_fsync".
one() {
  local b=$1 c=$2 n=$3 tag=$4 dir="$WORK/$4"
  start "$b" "$dir"
  local t0 f0 k0 out
  t0=$(cpu_ticks "$SPID")
  f0=$(metric contactd_store_fsyncs_total "$PORT")
  k0=$(metric contactd_store_commits_total "$PORT")
  out=$("$b/bench/http_load" --port "$PORT" --key "$KEY" --count "$COUNT" \
    --conns "$c" --batch "$n" --sample 1000 --out "$dir") ||
    { echo "bench_batch.sh: http_load failed: $out" >&2; exit 1; }
  local t1 f1 k1
  t1=$(cpu_ticks "$SPID")
  f1=$(metric contactd_store_fsyncs_total "$PORT")
  k1=$(metric contactd_store_commits_total "$PORT")
  stop_server
  [ "$KEEP" = 1 ] || rm -rf "$dir"
  local rate
  rate=$(echo "$out" | sed -n 's/.* s, \([0-9]*\) contacts\/s.*/\1/p')
  local hz
  hz=$(getconf CLK_TCK)
  awk -v r="$rate" -v dt=$((t1 - t0)) -v hz="$hz" -v n="$COUNT" \
    -v df=$((${f1%.*} - ${f0%.*})) -v dk=$((${k1%.*} - ${k0%.*})) \
    'BEGIN {printf "%s %.2f %.1f\n", r, dt / hz * 1e6 / n, (df > 0 ? dk / df : 0)}'
}

median() { sort -g | awk '{v[NR] = $1} END {print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2}'; }

log "load average $(cut -d' ' -f1-3 /proc/loadavg); $COUNT contacts a run, $REPS reps"
RES="$WORK/results.txt"
: >"$RES"
for rep in $(seq "$REPS"); do
  for c in $CONNS; do
    for n in $BATCHES; do
      for bi in "${!BUILDS[@]}"; do
        b=${BUILDS[$bi]}
        r=$(one "$b" "$c" "$n" "r$rep.$c.$n.$bi")
        echo "$bi $c $n $r" >>"$RES"
        log "rep $rep, $(basename "$b"), $c connections, $n a batch: $r (contacts/s, server CPU us a contact, contacts per fsync)"
      done
    done
  done
done

echo
echo "bench_batch.sh: $(date -u '+%Y-%m-%d %H:%M UTC'), $COUNT contacts a run into a fresh store, --durability fsync, median of $REPS; load average at the end $(cut -d' ' -f1-3 /proc/loadavg)"
echo
if [ -n "$BASELINE" ]; then
  echo "| connections | batch | $(basename "$BUILD") contacts/s | $(basename "$BASELINE") contacts/s | ratio | server CPU a contact (us) | baseline's | contacts per fsync | baseline's | target 150,000/s |"
  echo "|--:|--:|--:|--:|--:|--:|--:|--:|--:|:-:|"
else
  echo "| connections | batch | contacts/s | server CPU a contact (us) | contacts per fsync | target 150,000/s |"
  echo "|--:|--:|--:|--:|--:|:-:|"
fi
for c in $CONNS; do
  for n in $BATCHES; do
    col() { awk -v b="$1" -v c="$c" -v n="$n" -v k="$2" '$1 == b && $2 == c && $3 == n {print $k}' "$RES" | median; }
    r0=$(col 0 4)
    u0=$(col 0 5)
    p0=$(col 0 6)
    met=$(awk -v r="$r0" 'BEGIN {print (r >= 150000) ? "yes" : "**NO**"}')
    if [ -n "$BASELINE" ]; then
      r1=$(col 1 4)
      u1=$(col 1 5)
      p1=$(col 1 6)
      ratio=$(awk -v a="$r0" -v b="$r1" 'BEGIN {printf "%.2fx", (b > 0 ? a / b : 0)}')
      printf '| %s | %s | %.0f | %.0f | %s | %.2f | %.2f | %.1f | %.1f | %s |\n' "$c" "$n" "$r0" "$r1" "$ratio" "$u0" "$u1" "$p0" "$p1" "$met"
    else
      printf '| %s | %s | %.0f | %.2f | %.1f | %s |\n' "$c" "$n" "$r0" "$u0" "$p0" "$met"
    fi
  done
done

if [ "$PERF" != 0 ]; then
  c=${CONNS%% *}
  n=${BATCHES%% *}
  dir="$WORK/perf"
  start "$BUILD" "$dir"
  perf record --call-graph dwarf,16384 -e cpu-clock -F 499 -p "$SPID" -o "$WORK/perf.data" -- sleep "$PERF" >/dev/null 2>&1 &
  PP=$!
  "$BUILD/bench/http_load" --port "$PORT" --key "$KEY" --count "$COUNT" \
    --conns "$c" --batch "$n" --sample 1000 --out "$dir" >&2 || true
  wait "$PP" || true
  stop_server
  perf report -i "$WORK/perf.data" --no-children --percent-limit 0.5 --stdio \
    >"${PERF_OUT:-/tmp/bench_batch.perf.txt}" 2>/dev/null || true
  perf report -i "$WORK/perf.data" --children --percent-limit 2 --stdio -g none \
    >>"${PERF_OUT:-/tmp/bench_batch.perf.txt}" 2>/dev/null || true
  log "perf report in ${PERF_OUT:-/tmp/bench_batch.perf.txt}"
fi
