#!/usr/bin/env bash
# Applies the committed .clang-format to every C file git tracks (fuzz corpora
# aside); with --check, changes nothing and exits 1 naming the files that
# differ. CI runs the check, so the tree keeps one style.
set -euo pipefail
cd "$(dirname "$0")/.."

mapfile -t files < <(git ls-files '*.c' '*.h' | grep -v '/corpus/')
if [ "${1:-}" = "--check" ]; then
  bad=()
  for f in "${files[@]}"; do
    clang-format --style=file --dry-run -Werror "$f" >/dev/null 2>&1 || bad+=("$f")
  done
  if [ ${#bad[@]} -gt 0 ]; then
    echo "not formatted (run bash tools/format.sh): ${bad[*]}" >&2
    exit 1
  fi
  echo "format: ${#files[@]} files follow .clang-format" >&2
else
  clang-format --style=file -i "${files[@]}"
fi
