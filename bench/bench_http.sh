#!/usr/bin/env bash
# bench_http.sh: contactd over HTTP beside a trivial h2o handler, in one run.
#
# DESIGN.md ("Performance") holds get-by-id, a one-result exact search and a
# one-result query (POST /contacts/query) to at least 80% of the requests
# per second of a trivial h2o handler (a fixed JSON body) built and run by
# the same benchmark on the same machine, over HTTP/1.1 (wrk) and HTTP/2
# (h2load), with p99 latency reported. This script does exactly that, and
# measures a 100-result search and durable creates beside them:
#
#   1. builds contactd, its plugins, trivial_h2o, http_load and h2_post in
#      Release (with -g, which only adds debug information, for perf);
#   2. starts trivial_h2o and contactd (fresh data directory, durability
#      fsync, the default) on 127.0.0.1 with the same worker thread count;
#   3. loads the generated contacts through POST /contacts/batch
#      (http_load: 1000 a request) and writes the request lists: 100,000
#      contacts spread over the whole data set (all of them when fewer), in
#      a shuffled order, as ids, emails and query bodies;
#   4. warms both servers up, then runs every measurement REPS times,
#      interleaved: per repetition the ceiling, then each contactd case, on
#      HTTP/1.1 (wrk -t2 -c64) and on HTTP/2 (h2load -t2 -c16 -m16), then the
#      durable creates (wrk, a Lua script making unique bodies), with
#      contactd's commit and fsync counters read from /metrics around them;
#   5. prints one Markdown table of medians, each contactd rate also as a
#      ratio to the ceiling of the same repetition (median of those ratios).
#
# The load generator runs the same request lists against the ceiling (it
# answers any path), so the client does the same work on both sides of a
# ratio. The query's bodies differ request by request, which h2load cannot
# do (-d sends one file as every body): over HTTP/2 the query, and its
# ceiling, are driven by h2_post (bench/h2_post.c, on nghttp2) with
# h2load's shape (2 threads, 16 connections, 16 streams each); over
# HTTP/1.1 by wrk with bench/wrk/bodies.lua. Both servers are always killed
# on exit.
#
# usage: bench/bench_http.sh [--quick] [--count N] [--duration S] [--reps R]
#          [--threads N] [--cpus shared|split] [--perf] [--keep]
#          [--build-dir DIR] [--no-build]
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BUILD="$ROOT/build-httpbench"
COUNT=1000000
DURATION=10
REPS=3
THREADS=""
CPUS=shared
PERF=0
KEEP=0
BUILD_IT=1
QUICK=0

usage() {
  sed -n '/^# usage:/,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d; s/^# \{0,1\}//'
  cat <<'EOF'

  --quick         20,000 contacts and 3 s runs: a smoke test of about 2 minutes
  --count N       contacts to load (default 1,000,000)
  --duration S    seconds per measurement (default 10)
  --reps R        repetitions of every measurement (default 3; medians)
  --threads N     worker threads of both servers (default: the server CPUs)
  --cpus MODE     shared: servers and load generators share every CPU
                  (default); split: servers on CPU 0, load generators on
                  the others (taskset)
  --perf          afterwards, profile contactd (perf record) under each read
                  load and print where the time goes
  --keep          keep the work directory (data, lists, raw outputs)
  --build-dir DIR the Release build directory (default build-httpbench)
  --no-build      use the build directory as it is
EOF
}

while [ $# -gt 0 ]; do
  case "$1" in
    --quick) QUICK=1 ;;
    --count) COUNT=$2; shift ;;
    --duration) DURATION=$2; shift ;;
    --reps) REPS=$2; shift ;;
    --threads) THREADS=$2; shift ;;
    --cpus) CPUS=$2; shift ;;
    --perf) PERF=1 ;;
    --keep) KEEP=1 ;;
    --build-dir) BUILD=$2; shift ;;
    --no-build) BUILD_IT=0 ;;
    -h|--help) usage; exit 0 ;;
    *) echo "bench_http.sh: unknown option $1" >&2; usage >&2; exit 2 ;;
  esac
  shift
done
if [ "$QUICK" = 1 ]; then
  COUNT=20000
  DURATION=3
fi

NCPU=$(nproc)
case "$CPUS" in
  shared)
    SERVER_SET=(); CLIENT_SET=(); SERVER_CPUS=$NCPU ;;
  split)
    [ "$NCPU" -ge 2 ] || { echo "bench_http.sh: --cpus split needs 2 CPUs" >&2; exit 2; }
    SERVER_SET=(taskset -c 0); CLIENT_SET=(taskset -c "1-$((NCPU - 1))")
    SERVER_CPUS=1 ;;
  *) echo "bench_http.sh: --cpus shared or split" >&2; exit 2 ;;
esac
THREADS=${THREADS:-$SERVER_CPUS}

for tool in wrk h2load curl python3 cmake taskset bc; do
  command -v "$tool" >/dev/null || { echo "bench_http.sh: $tool is not installed" >&2; exit 1; }
done
if [ "$PERF" = 1 ]; then
  command -v perf >/dev/null || { echo "bench_http.sh: perf is not installed" >&2; exit 1; }
fi

log() { printf '[%s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }

# ------------------------------------------------------------------ build

if [ "$BUILD_IT" = 1 ]; then
  log "building (Release) in $BUILD"
  mkdir -p "$BUILD"
  cmake -S "$ROOT" -B "$BUILD" -DCMAKE_BUILD_TYPE=Release -DCMAKE_C_FLAGS=-g \
    -DCS_TESTS=OFF >"$BUILD/bench_http.cmake.log" 2>&1 ||
    { cat "$BUILD/bench_http.cmake.log" >&2; exit 1; }
  cmake --build "$BUILD" -j"$NCPU" --target contactd plugin_contacts \
    plugin_health plugin_metrics plugin_openapi trivial_h2o http_load h2_post \
    >"$BUILD/bench_http.build.log" 2>&1 || { tail -40 "$BUILD/bench_http.build.log" >&2; exit 1; }
fi
CONTACTD="$BUILD/frontend/contactd"
TRIVIAL="$BUILD/bench/trivial_h2o"
LOADER="$BUILD/bench/http_load"
H2POST="$BUILD/bench/h2_post"
for f in "$CONTACTD" "$TRIVIAL" "$LOADER" "$H2POST"; do
  [ -x "$f" ] || { echo "bench_http.sh: $f is missing (build first)" >&2; exit 1; }
done

# ------------------------------------------------------ servers and cleanup

WORK=$(mktemp -d /tmp/bench_http.XXXXXX)
PIDS=()
cleanup() {
  for pid in "${PIDS[@]}"; do
    kill -TERM "$pid" 2>/dev/null || true
  done
  for pid in "${PIDS[@]}"; do
    for _ in $(seq 50); do
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.1
    done
    kill -KILL "$pid" 2>/dev/null || true
  done
  if [ "$KEEP" = 1 ]; then
    log "work directory kept: $WORK"
  else
    rm -rf "$WORK"
  fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# start_server NAME LOGFILE CMD...: starts CMD, waits for its "listening on"
# line, and sets PORT and SERVER_PID.
start_server() {
  local name=$1 logf=$2
  shift 2
  "$@" >"$logf" 2>&1 &
  SERVER_PID=$!
  PIDS+=("$SERVER_PID")
  for _ in $(seq 200); do
    PORT=$(grep -o 'listening on http://127\.0\.0\.1:[0-9]*' "$logf" | head -1 | sed 's/.*://' || true)
    [ -n "$PORT" ] && return 0
    kill -0 "$SERVER_PID" 2>/dev/null || break
    sleep 0.05
  done
  echo "bench_http.sh: $name did not start:" >&2
  cat "$logf" >&2
  exit 1
}

start_server trivial_h2o "$WORK/trivial.log" "${SERVER_SET[@]}" "$TRIVIAL" \
  --listen 127.0.0.1:0 --threads "$THREADS"
TPORT=$PORT
TPID=$SERVER_PID
start_server contactd "$WORK/contactd.log" "${SERVER_SET[@]}" "$CONTACTD" \
  --data "$WORK/data" --listen 127.0.0.1:0 --threads "$THREADS"
CPORT=$PORT
CPID=$SERVER_PID
for _ in $(seq 100); do [ -s "$WORK/data/default.key" ] && break; sleep 0.05; done
KEY=$(cat "$WORK/data/default.key")
log "trivial_h2o on :$TPORT, contactd on :$CPORT (pid $CPID), $THREADS threads each, cpus $CPUS"

# ------------------------------------------------------------------- load

log "loading $COUNT contacts through POST /contacts/batch"
# Lists far larger than any cache of the server's: 100,000 contacts of the
# whole store, or all of them.
SAMPLE=$((COUNT < 100000 ? COUNT : 100000))
"${CLIENT_SET[@]}" "$LOADER" --port "$CPORT" --key "$KEY" --count "$COUNT" \
  --sample "$SAMPLE" --out "$WORK" | tee "$WORK/load.txt" >&2

# The request lists: paths for wrk, whole URLs for h2load (-i).
sed 's|^|/contacts/|' "$WORK/ids.txt" >"$WORK/get.paths"
sed 's|^|/contacts?searchby=email\&search=|' "$WORK/emails.txt" >"$WORK/exact.paths"
cut -f2 "$WORK/companies.txt" | sed 's|^|/contacts?searchby=company\&search=|' >"$WORK/search100.paths"
for c in get exact search100; do
  sed "s|^|http://127.0.0.1:$CPORT|" "$WORK/$c.paths" >"$WORK/$c.contactd.urls"
  sed "s|^|http://127.0.0.1:$TPORT|" "$WORK/$c.paths" >"$WORK/$c.trivial.urls"
done

# Check the answers once: one contact, exactly one result, a full page.
check() {
  local path=$1 want=$2
  local got
  got=$(curl -s -H "x-api-key: $KEY" "http://127.0.0.1:$CPORT$path" |
        python3 -c 'import json,sys; d=json.load(sys.stdin); print(d.get("count", 1 if "id" in d else -1))')
  if [ "$got" != "$want" ]; then
    echo "bench_http.sh: $path answered $got contacts, expected $want" >&2
    exit 1
  fi
}
check "$(head -1 "$WORK/get.paths")" 1
check "$(head -1 "$WORK/exact.paths")" 1
check "$(head -1 "$WORK/search100.paths")" 100
got=$(curl -s -H "x-api-key: $KEY" -H 'content-type: application/json' \
  --data-binary "$(head -1 "$WORK/queries.txt")" "http://127.0.0.1:$CPORT/contacts/query" |
  python3 -c 'import json,sys; print(json.load(sys.stdin).get("count", -1))')
if [ "$got" != 1 ]; then
  echo "bench_http.sh: the first query answered $got contacts, expected 1" >&2
  exit 1
fi
SEARCH100_TOTALS=$(cut -f1 "$WORK/companies.txt" | sort -n | sed -n '1p;$p' | paste -sd- -)

# ------------------------------------------------------------ measuring

RESULTS="$WORK/results.tsv"
: >"$RESULTS"

metric() { # metric NAME: the value of one of contactd's counters
  curl -s "http://127.0.0.1:$CPORT/metrics" | awk -v m="$1" '$1 == m { print $2 }'
}

# CPU seconds (user + system) a server has used so far, from /proc. On a
# machine shared with other work the wall-clock rates move with that work;
# the server's CPU time per request does much less.
TICKS=$(getconf CLK_TCK)
cpu_seconds() {
  local pid=$TPID
  [ "$1" = contactd ] && pid=$CPID
  awk -v t="$TICKS" '{ printf "%.2f", ($14 + $15) / t }' "/proc/$pid/stat"
}

# wrk_run REP CASE SERVER PORT LUA ARGS...: one wrk measurement, one line of
# results: rep proto case server rps p50_ms p99_ms bad requests cpu_s.
wrk_run() {
  local rep=$1 case=$2 server=$3 port=$4 lua=$5
  shift 5
  local out="$WORK/raw.$rep.h1.$case.$server.txt" cpu0 cpu1
  cpu0=$(cpu_seconds "$server")
  "${CLIENT_SET[@]}" wrk -t2 -c64 -d"${DURATION}s" --latency --timeout 10s \
    -s "$ROOT/bench/wrk/$lua" "http://127.0.0.1:$port" -- "$@" >"$out" 2>&1 || true
  cpu1=$(cpu_seconds "$server")
  awk -v rep="$rep" -v c="$case" -v s="$server" -v cpu="$(echo "$cpu1 - $cpu0" | bc)" '
    function ms(v) {
      if (v ~ /us$/) return v / 1000
      if (v ~ /ms$/) return v + 0
      if (v ~ /m$/) return v * 60000
      if (v ~ /s$/) return v * 1000
      return v
    }
    /^ +50%/ { p50 = ms($2) }
    /^ +99%/ { p99 = ms($2) }
    /requests in/ { n = $1 }
    /Requests\/sec:/ { rps = $2 }
    /Non-2xx/ { bad += $NF }
    /Socket errors/ { for (i = 1; i <= NF; i++) if ($i ~ /^[0-9]+,?$/) bad += $i }
    END { printf "%s\th1\t%s\t%s\t%.1f\t%.3f\t%.3f\t%d\t%d\t%.2f\n", rep, c, s, rps, p50, p99, bad, n, cpu }
  ' "$out" >>"$RESULTS"
  tail -1 "$RESULTS" | cut -f3- | tr '\t' ' ' | sed 's/^/  h1 /' >&2
}

# h2_run REP CASE SERVER URLS: one h2load measurement; the percentiles come
# from its per-request log (h2load itself prints min/max/mean/sd only).
h2_run() {
  local rep=$1 case=$2 server=$3 urls=$4
  local out="$WORK/raw.$rep.h2.$case.$server.txt" reqlog="$WORK/h2log.tmp" cpu0 cpu1
  cpu0=$(cpu_seconds "$server")
  "${CLIENT_SET[@]}" h2load -t2 -c16 -m16 -D "$DURATION" -H "x-api-key: $KEY" \
    -i "$urls" --log-file "$reqlog" >"$out" 2>&1 || true
  cpu1=$(cpu_seconds "$server")
  python3 - "$out" "$reqlog" "$rep" "$case" "$server" "$(echo "$cpu1 - $cpu0" | bc)" >>"$RESULTS" <<'EOF'
import re, sys
out, reqlog, rep, case, server, cpu = sys.argv[1:7]
text = open(out).read()
m = re.search(r"finished in [0-9.]+s, ([0-9.]+) req/s", text)
rps = float(m.group(1)) if m else 0.0
m = re.search(r"requests: (\d+) total, .* (\d+) failed, (\d+) errored, (\d+) timeout", text)
total, failed, errored, timeout = (int(x) for x in m.groups()) if m else (0, 0, 0, 0)
m = re.search(r"status codes: \d+ 2xx, (\d+) 3xx, (\d+) 4xx, (\d+) 5xx", text)
non2xx = sum(int(x) for x in m.groups()) if m else 1
times = []
with open(reqlog) as f:
    for line in f:
        parts = line.split("\t")
        if len(parts) >= 3:
            times.append(int(parts[2]))
times.sort()
def pct(p):
    return times[min(len(times) - 1, int(p * len(times)))] / 1000.0 if times else 0.0
bad = failed + errored + timeout + non2xx
print(f"{rep}\th2\t{case}\t{server}\t{rps:.1f}\t{pct(0.50):.3f}\t{pct(0.99):.3f}\t{bad}\t{total}\t{cpu}")
EOF
  rm -f "$reqlog"
  tail -1 "$RESULTS" | cut -f3- | tr '\t' ' ' | sed 's/^/  h2 /' >&2
}

# h2post_run REP CASE SERVER PORT: one h2_post measurement of the query
# bodies, in h2load's shape; its one line of results becomes a RESULTS row.
h2post_run() {
  local rep=$1 case=$2 server=$3 port=$4
  local out="$WORK/raw.$rep.h2.$case.$server.txt" cpu0 cpu1
  cpu0=$(cpu_seconds "$server")
  "${CLIENT_SET[@]}" "$H2POST" --port "$port" --key "$KEY" \
    --bodies "$WORK/queries.txt" --path /contacts/query --threads 2 \
    --conns 16 --streams 16 --duration "$DURATION" >"$out" 2>&1 || true
  cpu1=$(cpu_seconds "$server")
  awk -v rep="$rep" -v c="$case" -v s="$server" -v cpu="$(echo "$cpu1 - $cpu0" | bc)" '
    $1 == "requests" { printf "%s\th2\t%s\t%s\t%.1f\t%.3f\t%.3f\t%d\t%d\t%.2f\n", rep, c, s, $12, $14, $16, $6 + $8, $2, cpu; found = 1 }
    END { if (!found) printf "%s\th2\t%s\t%s\t0\t0\t0\t1\t0\t%.2f\n", rep, c, s, cpu }
  ' "$out" >>"$RESULTS"
  tail -1 "$RESULTS" | cut -f3- | tr '\t' ' ' | sed 's/^/  h2 /' >&2
}

CREATES="$WORK/creates.tsv"
: >"$CREATES"
creates_run() {
  local rep=$1
  local c0 f0 c1 f1
  c0=$(metric contactd_store_commits_total); f0=$(metric contactd_store_fsyncs_total)
  wrk_run "$rep" create contactd "$CPORT" creates.lua "$KEY" "r$rep.$$"
  c1=$(metric contactd_store_commits_total); f1=$(metric contactd_store_fsyncs_total)
  printf '%s\t%s\t%s\n' "$rep" "$((c1 - c0))" "$((f1 - f0))" >>"$CREATES"
  log "  creates: $((c1 - c0)) commits, $((f1 - f0)) fsyncs"
}

log "warming up (not recorded)"
SAVED=$DURATION
DURATION=2
for s in trivial contactd; do
  p=$TPORT; [ $s = contactd ] && p=$CPORT
  for c in get exact search100; do
    "${CLIENT_SET[@]}" wrk -t2 -c64 -d2s -s "$ROOT/bench/wrk/paths.lua" \
      "http://127.0.0.1:$p" -- "$WORK/$c.paths" "$KEY" >/dev/null 2>&1 || true
    "${CLIENT_SET[@]}" h2load -t2 -c16 -m16 -D 2 -H "x-api-key: $KEY" \
      -i "$WORK/$c.$s.urls" >/dev/null 2>&1 || true
  done
  "${CLIENT_SET[@]}" wrk -t2 -c64 -d2s -s "$ROOT/bench/wrk/bodies.lua" \
    "http://127.0.0.1:$p" -- "$WORK/queries.txt" "$KEY" /contacts/query >/dev/null 2>&1 || true
  "${CLIENT_SET[@]}" "$H2POST" --port "$p" --key "$KEY" --bodies "$WORK/queries.txt" \
    --duration 2 >/dev/null 2>&1 || true
done
DURATION=$SAVED

T0=$(date +%s)
LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)
for rep in $(seq "$REPS"); do
  log "repetition $rep of $REPS"
  wrk_run "$rep" ceiling trivial "$TPORT" paths.lua "$WORK/get.paths" "$KEY"
  for c in get exact search100; do
    wrk_run "$rep" "$c" contactd "$CPORT" paths.lua "$WORK/$c.paths" "$KEY"
  done
  wrk_run "$rep" ceiling-query trivial "$TPORT" bodies.lua "$WORK/queries.txt" "$KEY" /contacts/query
  wrk_run "$rep" query contactd "$CPORT" bodies.lua "$WORK/queries.txt" "$KEY" /contacts/query
  h2_run "$rep" ceiling trivial "$WORK/get.trivial.urls"
  for c in get exact search100; do
    h2_run "$rep" "$c" contactd "$WORK/$c.contactd.urls"
  done
  h2post_run "$rep" ceiling-query trivial "$TPORT"
  h2post_run "$rep" query contactd "$CPORT"
  creates_run "$rep"
done
T1=$(date +%s)

# --------------------------------------------------------------- report

{
  echo "date: $(date -u +%Y-%m-%dT%H:%MZ); host: $(uname -r), $NCPU CPUs ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')); load average before measuring: $LOAD_BEFORE, after: $(cut -d' ' -f1-3 /proc/loadavg)"
  echo "tree: $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo '?')$(git -C "$ROOT" diff --quiet HEAD -- engine frontend plugins 2>/dev/null || echo ' with uncommitted changes in engine/frontend/plugins')"
  echo "contactd $("$CONTACTD" --version 2>&1 | head -1 | sed 's/^contactd //'), Release build; $(wrk --version 2>&1 | head -1 | cut -d' ' -f1-2); $(h2load --version | head -1)"
  echo "data: $(head -1 "$WORK/load.txt")"
  echo "servers: $THREADS worker threads each; cpus: $CPUS; ${DURATION} s a measurement, $REPS repetitions interleaved, medians; measuring took $((T1 - T0)) s"
  echo "search100: companies with $SEARCH100_TOTALS contacts (one page of 100 returned)"
  echo "request lists: $(wc -l <"$WORK/ids.txt") contacts of the store (ids, emails, query bodies), shuffled; h2 query: h2_post -t2 -c16 -m16"
} >"$WORK/env.txt"

python3 "$ROOT/bench/http_summary.py" "$RESULTS" "$CREATES" "$WORK/env.txt"

# ---------------------------------------------------------------- perf

if [ "$PERF" = 1 ]; then
  # Where contactd's time goes under each read load: self time by shared
  # object, and inclusive time (children) by function, from DWARF call
  # graphs (the Release build carries -g). Raw data stays in the work
  # directory with --keep.
  for proto in h2 h1; do
    for c in get exact query search100; do
      log "perf: contactd under $c ($proto)"
      if [ "$c" = query ] && [ "$proto" = h1 ]; then
        "${CLIENT_SET[@]}" wrk -t2 -c64 -d"$((DURATION + 2))s" -s "$ROOT/bench/wrk/bodies.lua" \
          "http://127.0.0.1:$CPORT" -- "$WORK/queries.txt" "$KEY" /contacts/query >/dev/null 2>&1 &
      elif [ "$c" = query ]; then
        "${CLIENT_SET[@]}" "$H2POST" --port "$CPORT" --key "$KEY" --bodies "$WORK/queries.txt" \
          --duration "$((DURATION + 2))" >/dev/null 2>&1 &
      elif [ "$proto" = h1 ]; then
        "${CLIENT_SET[@]}" wrk -t2 -c64 -d"$((DURATION + 2))s" -s "$ROOT/bench/wrk/paths.lua" \
          "http://127.0.0.1:$CPORT" -- "$WORK/$c.paths" "$KEY" >/dev/null 2>&1 &
      else
        "${CLIENT_SET[@]}" h2load -t2 -c16 -m16 -D "$((DURATION + 2))" -H "x-api-key: $KEY" \
          -i "$WORK/$c.contactd.urls" >/dev/null 2>&1 &
      fi
      LOAD_PID=$!
      sleep 1
      data="$WORK/perf.$proto.$c.data"
      perf record -q -F 499 --call-graph dwarf,16384 -p "$CPID" -o "$data" \
        -- sleep "$DURATION" >/dev/null 2>&1 || true
      wait "$LOAD_PID" || true
      {
        echo "### perf: $c over $proto: self time by shared object"
        perf report -i "$data" --no-children --sort dso --stdio -g none 2>/dev/null |
          grep -v '^#' | grep -v '^$' | head -12
        echo "### perf: $c over $proto: inclusive time by function (>= 1.5%)"
        perf report -i "$data" --children --sort symbol --stdio -g none \
          --percent-limit 1.5 2>/dev/null | grep -v '^#' | grep -v '^$' |
          grep -v '\] 0x0000' | head -70
      } | tee "$WORK/perf.$proto.$c.txt"
    done
  done
fi
