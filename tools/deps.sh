#!/usr/bin/env bash
# Installs what building, running and testing contactd needs: Debian 12
# packages, and the npm packages of the OpenAPI tests (below). Idempotent:
# apt-get skips what is already installed, npm ci what is up to date.
# Runs apt-get as root, through sudo when not root.
# --bench also installs what only the benchmarks need (bench/README.md):
# PostgreSQL 15's server and libpq for bench_pg, which the tests never use.
set -euo pipefail

bench=0
for arg in "$@"; do
  case "$arg" in
  --bench) bench=1 ;;
  *) echo "usage: deps.sh [--bench]" >&2 && exit 2 ;;
  esac
done

packages=(
  build-essential cmake pkg-config git
  libh2o-evloop-dev libssl-dev libmsgpack-dev libxxhash-dev libyajl-dev
  libutf8proc-dev libroaring-dev libcsv-dev libcmocka-dev libsqlite3-dev
  libcurl4-openssl-dev libarchive-dev libsystemd-dev libnghttp2-dev
  curl nghttp2-client wrk openssl python3 clang clang-format libclang-rt-14-dev
  fuse3 libfuse3-dev
  haproxy
  lintian man-db file
)
if [ "$bench" -eq 1 ]; then
  packages+=(postgresql-15 libpq-dev)
fi

as_root() {
  if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi
}

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "installing: ${missing[*]}" >&2
  as_root apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}"
fi

# promtool, which tests/e2e/e2e_observe.py runs on /metrics, from Debian's
# prometheus package: only that one program is unpacked, so no Prometheus
# server is installed, configured or started.
if ! command -v promtool >/dev/null 2>&1; then
  tmp=$(mktemp -d)
  (cd "$tmp" && { apt-get download -qq prometheus 2>/dev/null ||
    { as_root apt-get update -qq && apt-get download -qq prometheus 2>/dev/null; }; })
  dpkg-deb --fsys-tarfile "$tmp"/prometheus_*.deb | tar -x -O ./usr/bin/promtool >"$tmp/promtool"
  as_root install -m 0755 "$tmp/promtool" /usr/local/bin/promtool
  rm -rf "$tmp"
fi

# The OpenAPI tests' tools (tests/npm: @redocly/cli, openapi-typescript,
# openapi-fetch, typescript), from the npm registry into that directory,
# at the versions its package-lock.json pins. Debian 12's nodejs (18) and
# npm run them; npm ci runs again only when the lock file changed.
if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
  echo "installing: nodejs npm" >&2
  as_root apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nodejs npm
fi
npm_dir="$(cd "$(dirname "$0")/../tests/npm" && pwd)"
if [ ! -f "$npm_dir/node_modules/.package-lock.json" ] ||
  [ "$npm_dir/package-lock.json" -nt "$npm_dir/node_modules/.package-lock.json" ]; then
  echo "installing: tests/npm (npm ci)" >&2
  (cd "$npm_dir" && npm ci --ignore-scripts --no-audit --no-fund --loglevel=error)
fi
