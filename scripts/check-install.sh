#!/usr/bin/env bash
# The package as users install it: `npm pack` (which builds dist/ afresh), then
# `npm install -g` of the tarball into a temporary prefix, then that `kith`:
# --help, version, a systemd unit that systemd-analyze accepts, and the dashboard
# served by the installed agent.
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
# The installed package serves the dashboard from its own dist/ (the page is compiled in, not copied beside it).
if command -v etcd >/dev/null 2>&1; then
  free_port() { node -e 'const s=require("net").createServer().listen(0,"127.0.0.1",()=>{console.log(s.address().port);s.close()})'; }
  ep=$(free_port); pp=$(free_port); ap=$(free_port)
  etcd --name ci --data-dir "$work/etcd" --listen-client-urls "http://127.0.0.1:$ep" --advertise-client-urls "http://127.0.0.1:$ep" \
    --listen-peer-urls "http://127.0.0.1:$pp" --initial-advertise-peer-urls "http://127.0.0.1:$pp" --initial-cluster "ci=http://127.0.0.1:$pp" \
    --log-level error >"$work/etcd.log" 2>&1 &
  etcd_pid=$!
  "$kith" agent --name check-install --plugins api --etcd-endpoints "http://127.0.0.1:$ep" --api-listen "127.0.0.1:$ap" --data-dir "$work/data" >"$work/agent.log" 2>&1 &
  agent_pid=$!
  trap 'kill "$agent_pid" "$etcd_pid" 2>/dev/null || true; wait "$agent_pid" "$etcd_pid" 2>/dev/null || true; rm -rf "$work"' EXIT
  # At most 30 s for the agent to answer, then the page and its script, with their headers.
  if ! node -e '
    const base = `http://127.0.0.1:${process.argv[1]}`;
    const deadline = Date.now() + 30000;
    const get = async (p) => { const r = await fetch(base + p); return { status: r.status, csp: r.headers.get("content-security-policy") || "", nosniff: r.headers.get("x-content-type-options"), text: await r.text() }; };
    (async () => {
      for (;;) {
        try { if ((await get("/healthz")).status === 200) break; } catch {}
        if (Date.now() > deadline) throw new Error("the installed agent did not answer /healthz within 30 s");
        await new Promise((r) => setTimeout(r, 200));
      }
      const page = await get("/ui"), script = await get("/ui/app.js");
      if (page.status !== 200 || !page.text.includes("/ui/app.js") || !page.csp.includes("script-src") || page.nosniff !== "nosniff") throw new Error(`GET /ui: ${page.status}`);
      if (script.status !== 200 || !script.text.includes("watch=1")) throw new Error(`GET /ui/app.js: ${script.status}`);
    })().catch((e) => { console.error(`check-install: ${e.message}`); process.exit(1); });
  ' "$ap"; then
    cat "$work/agent.log" >&2
    exit 1
  fi
  kill -TERM "$agent_pid"
  wait "$agent_pid" || { echo "check-install: the installed agent did not stop cleanly" >&2; exit 1; }
  kill "$etcd_pid"
  wait "$etcd_pid" 2>/dev/null || true
  echo "check-install: the installed agent serves the dashboard at /ui"
fi
[ -f "$work/prefix/lib/node_modules/kith/build/Release/kith_udp.node" ] || echo "check-install: the native UDP engine was not built; the agent uses node:dgram" >&2
echo "check-install: $version installs and runs from $tgz"
