#!/usr/bin/env bash
# The whole suite: type-check everything, then every test under test/ (not the benchmarks).
set -euo pipefail
cd "$(dirname "$0")/.."
npx tsc -p tsconfig.test.json
if [ $# -gt 0 ]; then
  exec npx mocha "$@"
fi
exec npx mocha --recursive 'test/**/*.test.ts'
