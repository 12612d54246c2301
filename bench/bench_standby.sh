#!/usr/bin/env bash
# bench_standby.sh: durable creates with --standby-ack required vs async vs
# no standby (rate, p50, p99; the same wrk, both servers on this machine),
# and failover time (kill -9 of the primary to the first successful write
# on the promoted standby: detection, promotion, first write). Medians of
# a few runs: on 2 cores the figures are noisy. bench_standby.py says how.
#
#   bench/bench_standby.sh [--build DIR] [--reps N] [--seconds N]
#                          [--conns N] [--failovers N]
#
# --build DIR  a build with contactd, contactctl and the plugins (default
#              build)
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BUILD=$ROOT/build
args=()
while [ $# -gt 0 ]; do
  case "$1" in
  --build) BUILD=$2; shift 2 ;;
  --reps | --seconds | --conns | --failovers) args+=("$1" "$2"); shift 2 ;;
  *) echo "usage: bench_standby.sh [--build DIR] [--reps N] [--seconds N] [--conns N] [--failovers N]" >&2; exit 2 ;;
  esac
done
command -v wrk >/dev/null || { echo "bench_standby.sh: needs wrk (tools/deps.sh)" >&2; exit 2; }
exec python3 "$ROOT/bench/bench_standby.py" --contactd "$BUILD/frontend/contactd" \
  --contactctl "$BUILD/tools/contactctl" --plugins "$BUILD/plugins" "${args[@]}"
