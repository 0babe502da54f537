#!/bin/sh
# Installs venue-gateway on Raspberry Pi OS (Debian bookworm) from a built checkout:
#   make build && sudo provisioning/install.sh
# then `sudo vgw provision --owner venue-gateway` and `sudo systemctl start venue-gateway`.
# Options:
#   --root DIR   stage the files under DIR (packaging, tests): no user, no chown, no systemctl
#   --no-npm     do not run `npm ci --omit=dev` in the install folder (it is already populated)
#   --disable-bluetoothd
#                stop and disable BlueZ's bluetoothd, which would otherwise fight the daemon
#                for the adapter (noble and bleno drive it directly)
set -eu
ROOT=""; NPM=1; DISABLE_BLUETOOTHD=0
while [ $# -gt 0 ]; do
  case "$1" in
    --root) ROOT=${2:?--root needs a folder}; shift 2 ;;
    --no-npm) NPM=0; shift ;;
    --disable-bluetoothd) DISABLE_BLUETOOTHD=1; shift ;;
    -h|--help) sed -n '2,12p' "$0"; exit 0 ;;
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

say "installing into $ROOT$PREFIX"
install -d -m 0755 "$ROOT$PREFIX"
rm -rf "$ROOT$PREFIX/dist"
cp -R "$SRC/dist" "$ROOT$PREFIX/dist"
install -m 0644 "$SRC/package.json" "$SRC/package-lock.json" "$SRC/README.md" "$ROOT$PREFIX/"
chmod 0755 "$ROOT$PREFIX/dist/cli/main.js"
if [ "$NPM" -eq 1 ]; then
  # Native parts (better-sqlite3, the HCI socket, unix-dgram) build here: g++, make, python3.
  (cd "$ROOT$PREFIX" && npm ci --omit=dev --no-audit --no-fund)
fi
install -d -m 0755 "$ROOT/usr/local/bin"
ln -sf "$PREFIX/dist/cli/main.js" "$ROOT/usr/local/bin/vgw"

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
