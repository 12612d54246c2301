#!/usr/bin/env bash
# Installs what building, running and testing contactd needs, from Debian 12
# packages only. Idempotent: apt-get skips what is already installed.
# Runs apt-get as root, through sudo when not root.
set -euo pipefail

packages=(
  build-essential cmake pkg-config git
  libh2o-evloop-dev libssl-dev libmsgpack-dev libxxhash-dev libyajl-dev
  libutf8proc-dev libroaring-dev libcsv-dev libcmocka-dev libsqlite3-dev
  libcurl4-openssl-dev libarchive-dev
  curl nghttp2-client wrk openssl python3 clang clang-format libclang-rt-14-dev
  fuse3 libfuse3-dev
)

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
