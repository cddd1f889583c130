#!/usr/bin/env bash
# Builds the DNS plugin's native UDP engine (dns/native/udp.cc, binding.gyp)
# into build/Release/kith_udp.node with node-gyp, against the headers of the
# node that runs it. Run by `npm ci` (the install script) and by setup.sh when
# the source is newer than the build. A failed build is reported and leaves
# the agent on its node:dgram path (`--dns-udp-engine auto`); it never fails
# the install.
set -uo pipefail
cd "$(dirname "$0")/.."

gyp=$(command -v node-gyp || true)
if [ -z "$gyp" ]; then
  # npm puts its own node-gyp on PATH for scripts; outside npm, find npm's copy.
  npm_root=$(dirname "$(dirname "$(readlink -f "$(command -v npm)")")")
  for c in "$npm_root/node_modules/node-gyp/bin/node-gyp.js" "$npm_root/lib/node_modules/npm/node_modules/node-gyp/bin/node-gyp.js"; do
    [ -f "$c" ] && gyp="node $c" && break
  done
fi
# Build against the installed node's headers: no download (there may be no route to nodejs.org).
nodedir=${npm_config_nodedir:-}
if [ -z "$nodedir" ]; then
  prefix=$(dirname "$(dirname "$(readlink -f "$(command -v node)")")")
  [ -f "$prefix/include/node/node_api.h" ] && nodedir=$prefix
fi
if [ -z "$gyp" ]; then
  echo "kith: node-gyp not found; the DNS plugin will use node:dgram for UDP" >&2
  exit 0
fi
log=$(mktemp)
trap 'rm -f "$log"' EXIT
if $gyp rebuild ${nodedir:+--nodedir="$nodedir"} >"$log" 2>&1; then
  exit 0
fi
grep -E 'error|ERR!' "$log" | head -20 >&2
echo "kith: building the native UDP engine failed (above); the DNS plugin will use node:dgram for UDP" >&2
exit 0
