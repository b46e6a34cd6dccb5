#!/usr/bin/env bash
# Installs berth as a service: the binaries in $PREFIX/bin (berthd finds
# berth-shim beside itself), systemd's unit and socket unit (socket activation
# through fd://), enabled and started when systemd runs this machine.
#   scripts/install.sh              # build (release) and install under /usr/local
#   DESTDIR=/tmp/pkg scripts/install.sh   # stage into a directory, start nothing
#   BIN_DIR=target/.../debug ...    # install binaries already built
set -euo pipefail
cd "$(dirname "$0")/.."
prefix=${PREFIX:-/usr/local}
dest=${DESTDIR:-}
# BIN_DIR: binaries already built (the tests stage their debug build).
bin=${BIN_DIR:-}
if [ -z "$bin" ]; then
  bin=target/$(rustc -vV | sed -n 's/^host: //p')/release
  cargo build --release --workspace --bins --locked
fi
install -d "$dest$prefix/bin" "$dest/etc/systemd/system"
for b in berthd berth berth-shim berth-sidecar berth-tls-relay; do
  install -m 0755 "$bin/$b" "$dest$prefix/bin/$b"
done
sed "s|/usr/local/bin/berthd|$prefix/bin/berthd|" contrib/systemd/berthd.service \
  > "$dest/etc/systemd/system/berthd.service"
install -m 0644 contrib/systemd/berthd.socket "$dest/etc/systemd/system/berthd.socket"
chmod 0644 "$dest/etc/systemd/system/berthd.service"
if [ -z "$dest" ] && [ -d /run/systemd/system ]; then
  systemctl daemon-reload
  systemctl enable --now berthd.socket
  echo "berthd.socket enabled: berthd starts on the first connection to /run/berth/berth.sock"
else
  echo "installed under ${dest:-/}; with systemd: systemctl enable --now berthd.socket"
fi
