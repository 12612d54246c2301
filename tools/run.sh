#!/usr/bin/env bash
# The README's first command: installs the packages, builds contactd in
# release mode and starts it on 127.0.0.1:8080 with its data in ./data.
# Extra arguments go to contactd (see contactd --help).
set -euo pipefail
cd "$(dirname "$0")/.."

bash tools/deps.sh
cmake -S . -B build-release -DCMAKE_BUILD_TYPE=Release -DCS_TESTS=OFF -DCS_BENCH=OFF >/dev/null
cmake --build build-release -j"$(nproc)" >/dev/null

data=${CONTACTD_DATA:-./data}
cat >&2 <<MSG
contactd: starting with data in $data, on http://127.0.0.1:8080 unless --listen says otherwise
  On the first start it prints an API key for account "default" and keeps it
  in $data/default.key. Then, from another shell:
    key=\$(cat $data/default.key)
    curl -s -H "x-api-key: \$key" -d '{"first_name":"Ada","email":"ada@example.com"}' http://127.0.0.1:8080/contacts
    curl -s -H "x-api-key: \$key" 'http://127.0.0.1:8080/contacts?searchby=first_name&search=ada'
  Stop it with Ctrl-C (it finishes what is in flight and writes a snapshot).
MSG
exec build-release/frontend/contactd --data "$data" --plugins build-release/plugins "$@"
