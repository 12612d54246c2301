#!/usr/bin/env bash
# bench_proxy.sh: what HAProxy in front of a shard costs, and how long an
# account sees 503 while it moves.
#
# DESIGN.md ("Past one machine") puts shards behind HAProxy 2.6
# (deploy/haproxy.cfg). This script measures, in one run:
#
#   1. get by id through HAProxy beside the same requests sent to the shard
#      directly, the same request list (100,000 ids of the account, shuffled)
#      and the same load generator: HTTP/1.1 with wrk (-t2 -c64, paths.lua)
#      and HTTP/2 with h2load (-t2 -c16 -m16; HAProxy in the clear with
#      prior knowledge), REPS times interleaved; rates, p99, and the CPU time
#      per request of the shard and of HAProxy (user + system, from
#      /proc/PID/stat around each run);
#   2. with the move's admin routes on the shards: `contactd-cluster move`
#      of the whole account to a second shard while a client reads one of
#      its contacts through HAProxy every 5 ms: the seconds of 503 it saw
#      (first to last), the move's wall time and each step's.
#
# The account is bulk-loaded with `contactctl load` before the shard starts
# (COUNT generated contacts, default 1,000,000). On a 2-core machine the
# shard, HAProxy and the load generator share both cores, so the figures
# are each side's cost per request, not throughput scaling: a machine this
# size cannot show that more shards serve more requests.
#
# usage: bench/bench_proxy.sh [--count N] [--duration S] [--reps R]
#          [--no-move] [--keep] [--build-dir DIR] [--no-build]
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BUILD="$ROOT/build-proxybench"
COUNT=1000000
DURATION=10
REPS=3
MOVE=1
KEEP=0
BUILD_IT=1

usage() {
  sed -n '/^# usage:/,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d; s/^# \{0,1\}//'
  cat <<'EOF'

  --count N       contacts of the account (default 1,000,000)
  --duration S    seconds per measurement (default 10)
  --reps R        repetitions of every measurement (default 3; medians)
  --no-move       leave the move out
  --keep          keep the work directory
  --build-dir DIR the Release build directory (default build-proxybench)
  --no-build      use the build directory as it is
EOF
}

while [ $# -gt 0 ]; do
  case "$1" in
    --count) COUNT=$2; shift ;;
    --duration) DURATION=$2; shift ;;
    --reps) REPS=$2; shift ;;
    --no-move) MOVE=0 ;;
    --keep) KEEP=1 ;;
    --build-dir) BUILD=$2; shift ;;
    --no-build) BUILD_IT=0 ;;
    -h|--help) usage; exit 0 ;;
    *) echo "bench_proxy.sh: unknown option $1" >&2; usage >&2; exit 2 ;;
  esac
  shift
done

for tool in wrk h2load curl python3 cmake haproxy bc; do
  command -v "$tool" >/dev/null || { echo "bench_proxy.sh: $tool is not installed" >&2; exit 1; }
done
log() { printf '[%s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }

if [ "$BUILD_IT" = 1 ]; then
  log "building (Release) in $BUILD"
  mkdir -p "$BUILD"
  cmake -S "$ROOT" -B "$BUILD" -DCMAKE_BUILD_TYPE=Release -DCS_TESTS=OFF \
    -DCS_BENCH=OFF >"$BUILD/bench_proxy.cmake.log" 2>&1 ||
    { cat "$BUILD/bench_proxy.cmake.log" >&2; exit 1; }
  cmake --build "$BUILD" -j"$(nproc)" >"$BUILD/bench_proxy.build.log" 2>&1 ||
    { tail -40 "$BUILD/bench_proxy.build.log" >&2; exit 1; }
fi
CONTACTD="$BUILD/frontend/contactd"
CTL="$BUILD/tools/contactctl"
CLUSTER="$ROOT/tools/contactd-cluster"
for f in "$CONTACTD" "$CTL"; do
  [ -x "$f" ] || { echo "bench_proxy.sh: $f is missing (build first)" >&2; exit 1; }
done

WORK=$(mktemp -d /tmp/bench_proxy.XXXXXX)
PIDS=()
cleanup() {
  for pid in "${PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${PIDS[@]}"; do
    for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null || true
  done
  if [ "$KEEP" = 1 ]; then log "work directory kept: $WORK"; else rm -rf "$WORK"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ------------------------------------------------------------ the shards

# Both shards are left at the default shard number (0): the target of
# the move holds no contacts of its own, so no id of the account can meet
# one of its, and the move's cost is the same as between numbered shards.
admin_key() { # admin_key DIR FILE: an operator key made before the first start
  "$CTL" --data "$1" keys add --account ops --admin | grep -o 'ck_[A-Za-z0-9]\{40\}' >"$2"
  chmod 600 "$2"
}
admin_key "$WORK/s0" "$WORK/s0.key"
admin_key "$WORK/s1" "$WORK/s1.key"
KEY=$("$CTL" --data "$WORK/s0" keys add --account bench | grep -o 'ck_[A-Za-z0-9]\{40\}')

log "generating and loading $COUNT contacts (contactctl load)"
python3 - "$COUNT" >"$WORK/contacts.jsonl" <<'EOF'
import json, random, sys
n = int(sys.argv[1])
rnd = random.Random(7)
first = ["Ada", "Grace", "Alan", "Linus", "Barbara", "Ken", "Edsger", "Donald"]
last = ["Lovelace", "Hopper", "Turing", "Torvalds", "Liskov", "Thompson", "Dijkstra", "Knuth"]
out = sys.stdout
for i in range(n):
    out.write(json.dumps({"first_name": rnd.choice(first), "last_name": rnd.choice(last),
                          "email": f"c{i}@example.com", "company": f"Company {i % 5000}",
                          "phone": f"+1 555 {i:07d}"}) + "\n")
EOF
T0=$(date +%s.%N)
"$CTL" --data "$WORK/s0" load --account bench "$WORK/contacts.jsonl" >"$WORK/load.txt" 2>&1 ||
  { tail -5 "$WORK/load.txt" >&2; exit 1; }
log "loaded in $(echo "$(date +%s.%N) - $T0" | bc | cut -c1-6) s"
rm -f "$WORK/contacts.jsonl"
"$CTL" --data "$WORK/s0" dump --account bench |
  python3 -c '
import json, random, sys
ids = [json.loads(l)["id"] for l in sys.stdin if l.strip()]
random.Random(11).shuffle(ids)
print("\n".join(ids[:100000]))' >"$WORK/ids.txt"
sed 's|^|/contacts/|' "$WORK/ids.txt" >"$WORK/get.paths"

start_shard() { # start_shard K: sets PORT and SERVER_PID
  local k=$1 logf="$WORK/s$1.log"
  "$CONTACTD" --data "$WORK/s$k" --listen 127.0.0.1:0 --threads "$(nproc)" >"$logf" 2>&1 &
  SERVER_PID=$!
  PIDS+=("$SERVER_PID")
  for _ in $(seq 600); do
    PORT=$(grep -so 'listening on http://127\.0\.0\.1:[0-9]*' "$logf" | head -1 | sed 's/.*://' || true)
    grep -qs ' ready (' "$logf" && [ -n "$PORT" ] && return 0
    kill -0 "$SERVER_PID" 2>/dev/null || break
    sleep 0.1
  done
  echo "bench_proxy.sh: shard $k did not start:" >&2; cat "$logf" >&2; exit 1
}
start_shard 0; P0=$PORT; SPID=$SERVER_PID
start_shard 1; P1=$PORT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
HPORT=$(free_port)
cat >"$WORK/cluster.json" <<EOF
{"shards": [{"name": "s0", "url": "http://127.0.0.1:$P0", "admin_key_file": "s0.key"},
            {"name": "s1", "url": "http://127.0.0.1:$P1", "admin_key_file": "s1.key"}],
 "haproxy": {"socket": "admin.sock", "keys_map": "keys.map", "accounts_map": "accounts.map",
             "config": "haproxy.cfg", "bind": "127.0.0.1:$HPORT",
             "check_path": "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$P0/healthz/primary" | grep -q 200 && echo /healthz/primary || echo /healthz)"}}
EOF
cl() { python3 "$CLUSTER" --cluster "$WORK/cluster.json" "$@"; }
cl config >&2
haproxy -db -f "$WORK/haproxy.cfg" >"$WORK/haproxy.log" 2>&1 &
HPID=$!
PIDS+=("$HPID")
for _ in $(seq 100); do [ -S "$WORK/admin.sock" ] && break; sleep 0.1; done
cl maps --push >&2
for _ in $(seq 100); do
  [ "$(curl -s -o /dev/null -w '%{http_code}' -H "x-api-key: $KEY" "http://127.0.0.1:$HPORT$(head -1 "$WORK/get.paths")")" = 200 ] && break
  sleep 0.1
done
log "shard s0 on :$P0 (pid $SPID), s1 on :$P1, HAProxy on :$HPORT (pid $HPID)"

# ------------------------------------------------------------- measuring

TICKS=$(getconf CLK_TCK)
cpu() { awk -v t="$TICKS" '{ printf "%.3f", ($14 + $15) / t }' "/proc/$1/stat"; }
RESULTS="$WORK/results.tsv"
: >"$RESULTS"

# run REP PROTO PATHKIND PORT: one measurement; a row rep proto path rps
# p99_ms bad requests shard_cpu_s haproxy_cpu_s.
run() {
  local rep=$1 proto=$2 via=$3 port=$4 out="$WORK/raw.$1.$2.$3.txt"
  local s0 h0 s1 h1
  s0=$(cpu "$SPID"); h0=$(cpu "$HPID")
  if [ "$proto" = h1 ]; then
    wrk -t2 -c64 -d"${DURATION}s" --latency --timeout 10s -s "$ROOT/bench/wrk/paths.lua" \
      "http://127.0.0.1:$port" -- "$WORK/get.paths" "$KEY" >"$out" 2>&1 || true
  else
    sed "s|^|http://127.0.0.1:$port|" "$WORK/get.paths" >"$WORK/urls"
    h2load -t2 -c16 -m16 -D "$DURATION" -H "x-api-key: $KEY" -i "$WORK/urls" \
      --log-file "$WORK/h2log" >"$out" 2>&1 || true
  fi
  s1=$(cpu "$SPID"); h1=$(cpu "$HPID")
  python3 - "$out" "$WORK/h2log" "$rep" "$proto" "$via" "$(echo "$s1 - $s0" | bc)" \
    "$(echo "$h1 - $h0" | bc)" >>"$RESULTS" <<'EOF'
import re, sys
out, h2log, rep, proto, via, scpu, hcpu = sys.argv[1:8]
t = open(out).read()
if proto == "h1":
    def ms(v):
        for suf, f in (("us", 0.001), ("ms", 1), ("s", 1000)):
            if v.endswith(suf):
                return float(v[:-len(suf)]) * f
        return float(v)
    rps = float(re.search(r"Requests/sec:\s+([0-9.]+)", t).group(1))
    n = int(re.search(r"(\d+) requests in", t).group(1))
    p99 = ms(re.search(r"^\s+99%\s+(\S+)", t, re.M).group(1))
    m = re.search(r"Non-2xx or 3xx responses: (\d+)", t)
    bad = int(m.group(1)) if m else 0
    m = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", t)
    bad += sum(int(x) for x in m.groups()) if m else 0
else:
    rps = float(re.search(r"finished in [0-9.]+s, ([0-9.]+) req/s", t).group(1))
    m = re.search(r"requests: (\d+) total, .* (\d+) failed, (\d+) errored, (\d+) timeout", t)
    n = int(m.group(1))
    bad = sum(int(x) for x in m.groups()[1:])
    m = re.search(r"status codes: (\d+) 2xx, (\d+) 3xx, (\d+) 4xx, (\d+) 5xx", t)
    bad += sum(int(x) for x in m.groups()[1:])
    times = sorted(int(l.split("\t")[2]) for l in open(h2log) if l.count("\t") >= 2)
    p99 = times[min(len(times) - 1, int(0.99 * len(times)))] / 1000.0 if times else 0
print(f"{rep}\t{proto}\t{via}\t{rps:.1f}\t{p99:.3f}\t{bad}\t{n}\t{scpu}\t{hcpu}")
EOF
  tail -1 "$RESULTS" | cut -f2- | tr '\t' ' ' | sed 's/^/  /' >&2
}

log "warming up"
DURATION_SAVED=$DURATION; DURATION=3
run 0 h1 direct "$P0"; run 0 h1 proxy "$HPORT"
DURATION=$DURATION_SAVED
for rep in $(seq "$REPS"); do
  log "repetition $rep of $REPS ($DURATION s each)"
  run "$rep" h1 direct "$P0"
  run "$rep" h1 proxy "$HPORT"
  run "$rep" h2 direct "$P0"
  run "$rep" h2 proxy "$HPORT"
done

echo
echo "### get by id: direct vs through HAProxy ($(date -u +%Y-%m-%d), $COUNT contacts, $(nproc) CPUs, $REPS x ${DURATION} s, medians)"
echo
python3 - "$RESULTS" <<'EOF'
import statistics, sys
rows = [l.rstrip("\n").split("\t") for l in open(sys.argv[1])]
rows = [r for r in rows if r[0] != "0"]
def med(proto, via, col):
    return statistics.median(float(r[col]) for r in rows if r[1] == proto and r[2] == via)
def per(proto, via, col):
    return statistics.median(float(r[col]) / max(1, int(r[6])) * 1e6
                             for r in rows if r[1] == proto and r[2] == via)
bad = sum(int(r[5]) for r in rows)
print("| protocol | direct req/s | through HAProxy req/s | ratio | p99 direct / proxy (ms) | shard CPU us/req direct / proxy | HAProxy CPU us/req |")
print("|---|---:|---:|---:|---|---|---:|")
for proto, name in (("h1", "HTTP/1.1 (wrk -t2 -c64)"), ("h2", "h2 (h2load -t2 -c16 -m16)")):
    d, p = med(proto, "direct", 3), med(proto, "proxy", 3)
    print(f"| {name} | {d:,.0f} | {p:,.0f} | {p / d:.2f} | {med(proto, 'direct', 4):.2f} / {med(proto, 'proxy', 4):.2f} "
          f"| {per(proto, 'direct', 7):.1f} / {per(proto, 'proxy', 7):.1f} | {per(proto, 'proxy', 8):.1f} |")
print()
print(f"Requests that failed or were not 2xx: {bad}.")
EOF

# ------------------------------------------------------------- the move

if [ "$MOVE" = 1 ]; then
  code=$(curl -s -o /dev/null -w '%{http_code}' -H "x-api-key: $(cat "$WORK/s0.key")" \
    "http://127.0.0.1:$P0/admin/accounts/bench/digest")
  if [ "$code" != 200 ]; then
    echo
    echo "The move was not measured: the shards have no account moves (digest answered $code)."
    exit 0
  fi
  log "moving the account ($COUNT contacts) while a reader polls it every 5 ms"
  python3 - "http://127.0.0.1:$HPORT$(head -1 "$WORK/get.paths")" "$KEY" "$WORK/poll.tsv" "$WORK/poll.stop" <<'EOF' &
import http.client, os, sys, time, urllib.parse
url, key, out, stop = sys.argv[1:5]
u = urllib.parse.urlsplit(url)
with open(out, "w") as f:
    c = None
    while not os.path.exists(stop):
        try:
            if c is None:
                c = http.client.HTTPConnection(u.hostname, u.port, timeout=10)
            c.request("GET", u.path, headers={"x-api-key": key})
            r = c.getresponse(); r.read(); s = r.status
        except (OSError, http.client.HTTPException):
            c = None; s = 0
        f.write(f"{time.time():.4f}\t{s}\n")
        time.sleep(0.005)
EOF
  POLL=$!
  sleep 1
  T0=$(date +%s.%N)
  cl move bench --to s1 >"$WORK/move.txt" 2>&1 || { cat "$WORK/move.txt" >&2; touch "$WORK/poll.stop"; exit 1; }
  T1=$(date +%s.%N)
  sleep 1
  touch "$WORK/poll.stop"
  wait "$POLL"
  echo
  echo "### the move of a $COUNT-contact account ($(date -u +%Y-%m-%d))"
  echo
  python3 - "$WORK/poll.tsv" "$T0" "$T1" "$WORK/move.txt" <<'EOF'
import sys
rows = [l.split("\t") for l in open(sys.argv[1])]
t0, t1 = float(sys.argv[2]), float(sys.argv[3])
bad = [(float(t), int(s)) for t, s in rows if int(s) != 200]
other = sorted({s for _, s in bad if s != 503})
print(f"- `contactd-cluster move` took {t1 - t0:.2f} s; its steps:")
for line in open(sys.argv[4]):
    if line.startswith("  ") and "done" in line:
        print(f"  - {line.strip()}")
if bad:
    w = [t for t, s in bad if s == 503]
    print(f"- the reader saw 503 for {w[-1] - w[0]:.2f} s ({len(w)} of {len(rows)} polls), "
          f"from {w[0] - t0:.2f} s to {w[-1] - t0:.2f} s after the move began"
          + (f"; other statuses: {other}" if other else ""))
else:
    print("- the reader saw no 503")
EOF
fi
