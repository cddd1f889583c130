#!/usr/bin/env bash
# `npm run bench -- NAME...` runs test/bench/NAME.ts (all of them without a name).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
names=("$@")
if [ ${#names[@]} -eq 0 ]; then
  for f in test/bench/*.ts; do names+=("$(basename "$f" .ts)"); done
fi
for n in "${names[@]}"; do
  echo "== bench $n"
  npx tsx "test/bench/$n.ts"
done
