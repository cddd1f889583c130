#!/usr/bin/env bash
# The package as users install it: `npm pack` (which builds dist/ afresh), then
# `npm install -g` of the tarball into a temporary prefix, then that `kith`:
# --help, version, and a systemd unit that systemd-analyze accepts.
set -euo pipefail
cd "$(dirname "$0")/.."
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
npm pack --pack-destination "$work" --loglevel=error >/dev/null
tgz=$(ls "$work"/kith-*.tgz)
npm install -g --prefix "$work/prefix" --no-audit --no-fund --loglevel=error "$tgz" >/dev/null
kith="$work/prefix/bin/kith"
"$kith" --help >/dev/null
"$kith" agent --help | grep -q -- '--etcd-endpoints'
version=$("$kith" version)
[ "$version" = "kith $(node -p 'require("./package.json").version')" ] || { echo "check-install: kith version said '$version'" >&2; exit 1; }
"$kith" systemd-unit --plugins worker,dns --host-address 10.0.0.11 >"$work/kith.service"
grep -q "^ExecStart=$(command -v node) $work/prefix/lib/node_modules/kith/dist/agent/main.js agent " "$work/kith.service" \
  || { echo "check-install: the unit does not run the installed kith" >&2; exit 1; }
if command -v systemd-analyze >/dev/null 2>&1; then
  # verify exits 0 on lines it ignores: it must have nothing to say about the unit.
  if ! systemd-analyze verify "$work/kith.service" 2>"$work/verify.err" || grep -q 'kith.service:' "$work/verify.err"; then
    cat "$work/verify.err" >&2
    exit 1
  fi
fi
[ -f "$work/prefix/lib/node_modules/kith/build/Release/kith_udp.node" ] || echo "check-install: the native UDP engine was not built; the agent uses node:dgram" >&2
echo "check-install: $version installs and runs from $tgz"
