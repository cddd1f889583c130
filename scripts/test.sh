#!/usr/bin/env bash
# The whole suite: type-check everything, then every test under test/ (not the benchmarks).
# Ends with one line "N passed, N failed" and mocha's exit code.
set -euo pipefail
cd "$(dirname "$0")/.."
npx tsc -p tsconfig.test.json
out=$(mktemp)
trap 'rm -f "$out"' EXIT
args=("$@")
# KITH_TEST_JOBS=2 runs the files two at a time (each makes its own etcd, test hosts, networks and
# chains, so they share nothing but the machine): faster, but a timing-sensitive file can then fail
# under the load; the default runs them one after another.
jobs=${KITH_TEST_JOBS:-1}
if [ ${#args[@]} -eq 0 ]; then
  args=(--recursive 'test/**/*.test.ts')
  [ "$jobs" -le 1 ] || args=(--parallel --jobs "$jobs" "${args[@]}")
fi
set +e
npx mocha --color "${args[@]}" 2>&1 | tee "$out"
code=${PIPESTATUS[0]}
set -e
plain=$(sed 's/\x1b\[[0-9;]*m//g' "$out")
passed=$(grep -oE '^ +[0-9]+ passing' <<<"$plain" | grep -oE '[0-9]+' | tail -1 || true)
failed=$(grep -oE '^ +[0-9]+ failing' <<<"$plain" | grep -oE '[0-9]+' | tail -1 || true)
pending=$(grep -oE '^ +[0-9]+ pending' <<<"$plain" | grep -oE '[0-9]+' | tail -1 || true)
echo
echo "${passed:-0} passed, ${failed:-0} failed${pending:+, $pending skipped}"
exit "$code"
