#!/bin/sh
# Installs venue-gateway on Raspberry Pi OS (Debian bookworm) from a built checkout:
#   make build && sudo provisioning/install.sh
# or from a release tarball (`make release`), unpacked:
#   tar -xzf venue-gateway-<v>-linux-arm64.tar.gz && sudo venue-gateway-<v>/provisioning/install.sh --prebuilt
# The release goes to /opt/venue-gateway/releases/<version>, beside any before it; `current` and
# `committed` point at it (docs/operating.md, "Releases"); later releases come over the air.
# Then: `sudo vgw provision --owner venue-gateway` and `sudo systemctl start venue-gateway`.
# Options:
#   --root DIR   stage the files under DIR (packaging, tests): no user, no chown, no systemctl
#   --no-npm     do not run `npm ci --omit=dev` in the release folder (it is already populated)
#   --prebuilt   install from an unpacked release tarball (`make release`): copy its node_modules,
#                built for this architecture, instead of running npm
#   --disable-bluetoothd
#                stop and disable BlueZ's bluetoothd, which would otherwise fight the daemon
#                for the adapter (noble and bleno drive it directly)
set -eu
ROOT=""; NPM=1; PREBUILT=0; DISABLE_BLUETOOTHD=0
while [ $# -gt 0 ]; do
  case "$1" in
    --root) ROOT=${2:?--root needs a folder}; shift 2 ;;
    --no-npm) NPM=0; shift ;;
    --prebuilt) PREBUILT=1; NPM=0; shift ;;
    --disable-bluetoothd) DISABLE_BLUETOOTHD=1; shift ;;
    -h|--help) sed -n '2,17p' "$0"; exit 0 ;;
    *) echo "install.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
  esac
done
SRC=$(cd "$(dirname "$0")/.." && pwd)
PREFIX=/opt/venue-gateway
USER_NAME=venue-gateway
NODE=${NODE:-node}
say() { printf 'install.sh: %s\n' "$*"; }
die() { printf 'install.sh: %s\n' "$*" >&2; exit 1; }

# Node 20 or newer: the fleet runs 20 or 22.
command -v "$NODE" >/dev/null 2>&1 || die "node not found: install Node.js 20 or 22 (e.g. apt-get install nodejs from NodeSource)"
major=$("$NODE" -p 'process.versions.node.split(".")[0]' 2>/dev/null || echo 0)
[ "$major" -ge 20 ] 2>/dev/null || die "node $("$NODE" --version 2>/dev/null) is too old: venue-gateway needs Node.js 20 or newer"
[ -f "$SRC/dist/cli/main.js" ] || die "$SRC/dist is missing: run \`make build\` first"
if [ -z "$ROOT" ]; then
  [ "$(id -u)" -eq 0 ] || die "run as root (sudo), or use --root DIR to stage"
fi

version=$("$NODE" -p "require('$SRC/package.json').version")
SLOT=$PREFIX/releases/$version
say "installing release $version into $ROOT$SLOT"
install -d -m 0755 "$ROOT$PREFIX" "$ROOT$PREFIX/releases"
rm -rf "$ROOT$SLOT"
install -d -m 0755 "$ROOT$SLOT" "$ROOT$SLOT/provisioning"
cp -R "$SRC/dist" "$ROOT$SLOT/dist"
install -m 0644 "$SRC/package.json" "$SRC/package-lock.json" "$ROOT$SLOT/"
[ -f "$SRC/README.md" ] && install -m 0644 "$SRC/README.md" "$ROOT$SLOT/"
install -m 0644 "$SRC/provisioning/venue-gateway.service" "$ROOT$SLOT/provisioning/"
chmod 0755 "$ROOT$SLOT/dist/cli/main.js"
if [ "$PREBUILT" -eq 1 ]; then
  # An unpacked release: its production dependencies are built for this architecture already.
  [ -d "$SRC/node_modules" ] || die "--prebuilt: $SRC/node_modules is missing: unpack a release tarball (make release) and run its provisioning/install.sh"
  cp -R "$SRC/node_modules" "$ROOT$SLOT/node_modules"
elif [ "$NPM" -eq 1 ]; then
  # Native parts (better-sqlite3, the HCI socket, unix-dgram) build here: g++, make, python3.
  (cd "$ROOT$SLOT" && npm ci --omit=dev --no-audit --no-fund)
fi
# The release installed by hand is the committed one (the links follow; a version that failed before is forgiven).
"$NODE" "$SRC/dist/cli/main.js" update adopt --root "$ROOT$PREFIX" --release "$version" >/dev/null
install -d -m 0755 "$ROOT/usr/local/bin"
ln -sf "$PREFIX/current/dist/cli/main.js" "$ROOT/usr/local/bin/vgw"

install -d -m 0755 "$ROOT/etc/systemd/system"
install -m 0644 "$SRC/provisioning/venue-gateway.service" "$ROOT/etc/systemd/system/venue-gateway.service"
install -d -m 0750 "$ROOT/etc/venue-gateway"
install -m 0640 "$SRC/provisioning/gateway.example.json" "$ROOT/etc/venue-gateway/config.template.json"
install -d -m 0700 "$ROOT/var/lib/venue-gateway"

if [ -n "$ROOT" ]; then
  say "staged under $ROOT (no user, ownership or systemd changes)"
  exit 0
fi

if ! id "$USER_NAME" >/dev/null 2>&1; then
  say "creating system user $USER_NAME"
  useradd --system --user-group --home-dir /var/lib/venue-gateway --no-create-home --shell /usr/sbin/nologin "$USER_NAME"
fi
# Serial controllers (ttyACM, ttyUSB) belong to dialout.
getent group dialout >/dev/null && usermod -a -G dialout "$USER_NAME"
chown root:"$USER_NAME" /etc/venue-gateway
chown "$USER_NAME":"$USER_NAME" /var/lib/venue-gateway
# The updater (run as the service user) writes releases, the links and update-state.json here.
chown -R "$USER_NAME":"$USER_NAME" "$PREFIX"

if [ "$DISABLE_BLUETOOTHD" -eq 1 ] && systemctl is-enabled bluetooth >/dev/null 2>&1; then
  say "disabling bluetoothd (it would hold the adapter)"
  systemctl disable --now bluetooth
fi
systemctl daemon-reload
systemctl enable venue-gateway
if [ -f /etc/venue-gateway/config.json ]; then
  systemctl restart venue-gateway
  say "restarted venue-gateway; check it with: sudo vgw doctor -c /etc/venue-gateway/config.json"
else
  say "next: sudo vgw provision --owner $USER_NAME   then: sudo systemctl start venue-gateway"
fi
