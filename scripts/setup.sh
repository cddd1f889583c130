#!/usr/bin/env bash
# Idempotent set-up of a fresh Debian host for kith: system packages, podman
# configuration, npm dependencies, the build, and the test image.
# Every step checks first and does nothing when its work is already done.
set -euo pipefail
cd "$(dirname "$0")/.."

log() { printf 'setup: %s\n' "$*" >&2; }
as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

# Debian packages: binary -> package.
packages=(
  etcd:etcd-server etcdctl:etcd-client podman:podman runc:runc
  iptables:iptables dig:dnsutils busybox:busybox-static ip:iproute2
  nsenter:util-linux nsd:nsd dnsperf:dnsperf
  # the DNS tests send a datagram from source port 0 through a raw socket
  python3:python3
  # the etcd TLS tests make their certificates with openssl; the unit test checks 'kith systemd-unit' with systemd-analyze
  openssl:openssl systemd-analyze:systemd
  /usr/lib/podman/netavark:netavark
  # podman builds its pod infra (pause) image from catatonit; no registry to pull one from.
  catatonit:catatonit
  # the dashboard's browser test drives Debian's headless Chromium with puppeteer-core (no browser download)
  chromium:chromium
  # node-gyp builds the DNS plugin's native UDP engine (dns/native/udp.cc) with these.
  g++:g++ make:make
)
missing=()
for entry in "${packages[@]}"; do
  bin=${entry%%:*}; pkg=${entry#*:}
  # busybox-static installs /bin/busybox; check the package itself for it.
  if [ "$bin" = busybox ]; then
    dpkg -s busybox-static >/dev/null 2>&1 || missing+=("$pkg")
  elif [ "${bin#/}" != "$bin" ]; then
    [ -x "$bin" ] || missing+=("$pkg")
  elif ! command -v "$bin" >/dev/null 2>&1 && ! [ -x "/usr/sbin/$bin" ]; then
    missing+=("$pkg")
  fi
done
if [ ${#missing[@]} -gt 0 ]; then
  log "installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  as_root apt-get update -qq
  as_root apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
# Debian starts etcd and nsd as services on install; kith runs its own.
for svc in etcd nsd; do
  if command -v systemctl >/dev/null 2>&1 && systemctl is-active --quiet "$svc" 2>/dev/null; then
    as_root systemctl stop "$svc" || true
    as_root systemctl disable "$svc" >/dev/null 2>&1 || true
  fi
done

# podman on these hosts: hybrid cgroups and a 20000 open-files hard limit.
conf=/etc/containers/containers.conf
want='# written by kith scripts/setup.sh
[containers]
default_ulimits = ["nofile=1024:1024", "nproc=1024:1024"]

[network]
network_backend = "netavark"

[engine]
cgroup_manager = "cgroupfs"
runtime = "runc"
events_logger = "file"
'
if [ "$(cat "$conf" 2>/dev/null)" != "$(printf '%s' "$want")" ]; then
  log "writing $conf"
  as_root mkdir -p /etc/containers
  printf '%s' "$want" | as_root tee "$conf" >/dev/null
fi

# npm dependencies and the build.
if [ ! -d node_modules ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  log "npm ci"
  npm ci --no-audit --no-fund --loglevel=error
fi
# The native UDP engine: npm ci builds it; rebuilt here when its source is newer.
native=build/Release/kith_udp.node
if [ ! -f "$native" ] || [ dns/native/udp.cc -nt "$native" ] || [ binding.gyp -nt "$native" ]; then
  log "building the native UDP engine"
  bash scripts/build-native.sh
fi
log "build"
npx tsc -p tsconfig.json

# The test image, from busybox-static: no registry is reachable.
if ! podman image exists localhost/kith/busybox 2>/dev/null; then
  log "building localhost/kith/busybox"
  bash scripts/build-image.sh
fi
log "ready"
