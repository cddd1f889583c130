#!/usr/bin/env bash
# Builds localhost/kith/busybox from Debian's busybox-static.
set -euo pipefail
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
mkdir -p "$tmp/rootfs/bin" "$tmp/rootfs/etc" "$tmp/rootfs/tmp" "$tmp/rootfs/www"
cp /bin/busybox "$tmp/rootfs/bin/busybox"
chroot "$tmp/rootfs" /bin/busybox --install -s /bin
echo 'root:x:0:0:root:/root:/bin/sh' > "$tmp/rootfs/etc/passwd"
echo 'root:x:0:' > "$tmp/rootfs/etc/group"
tar -C "$tmp/rootfs" -cf "$tmp/rootfs.tar" .
podman import --change 'CMD ["/bin/sh"]' "$tmp/rootfs.tar" localhost/kith/busybox >/dev/null
echo "built localhost/kith/busybox"
