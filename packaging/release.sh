#!/usr/bin/env bash
# `make release`: what a unit runs, as one tarball and its signed manifest (docs/operating.md,
# "Releases"): the compiled code, the production dependencies with their native addons as built
# here (for this machine's architecture and Node ABI), and the systemd unit, under one folder
# named for the version, so releases install side by side (/opt/venue-gateway/releases/<version>).
# RELEASE_KEY names the release key file (`vgw release key`); without it a development key is made
# in the output folder, which no production unit should trust. RELEASE_DIR: where they go (release/).
set -euo pipefail
cd "$(dirname "$0")/.."
out=${RELEASE_DIR:-release}
mkdir -p "$out"
vgw() { node dist/cli/main.js "$@"; }
key=${RELEASE_KEY:-}
if [ -z "$key" ]; then
  key=$out/dev-release.key
  [ -f "$key" ] || vgw release key --out "$key" >/dev/null
  echo "release.sh: signing with the development key $key (set RELEASE_KEY=<file> for a production release)" >&2
fi
version=$(node -p "require('./package.json').version")
commit=$(git rev-parse --short=12 HEAD)
host=$(node -p process.arch)
# RELEASE_ARCH=arm64 (Pi 4/5, Zero 2 W) on an x64 machine: the native addons are cross-compiled
# (Debian's crossbuild-essential-arm64, node-gyp --arch, this Node's headers: the same ABI).
arch=${RELEASE_ARCH:-$host}
abi=$(node -p process.versions.modules)
case "$arch" in x64) triplet=x86_64-linux-gnu ;; arm64) triplet=aarch64-linux-gnu ;; arm) triplet=arm-linux-gnueabihf ;; *) echo "release.sh: RELEASE_ARCH=$arch: give x64, arm64 or arm" >&2; exit 2 ;; esac
name=venue-gateway-$version-linux-$arch
stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
root=$stage/venue-gateway-$version
mkdir -p "$root/provisioning"
cp -a dist package.json package-lock.json "$root/"
cp provisioning/venue-gateway.service provisioning/install.sh provisioning/gateway.example.json "$root/provisioning/"
cp -a node_modules "$root/"
# The production dependencies only, as installed here (their addons already built): no network, no scripts.
(cd "$root" && npm prune --omit=dev --ignore-scripts --no-audit --no-fund >/dev/null)
if [ "$arch" != "$host" ]; then
  command -v "$triplet-g++" >/dev/null || { echo "release.sh: $triplet-g++ not found: apt-get install crossbuild-essential-$arch" >&2; exit 1; }
  gyp=$PWD/node_modules/.bin/node-gyp
  [ -x "$gyp" ] || gyp="npx --no-install node-gyp"
  # Every addon built here from source (its build/Release), built again for the target.
  for addon in $(cd "$root/node_modules" && find . -path '*/build/Release/*.node' -not -path '*/test_extension.node' | sed 's#/build/Release/.*##' | sort -u); do
    echo "release.sh: cross-compiling ${addon#./} for linux-$arch" >&2
    # node-pre-gyp packages (the HCI socket) name their module in package.json's "binary"
    pregyp=$(cd "$root/node_modules/$addon" && node -p 'const b = require("./package.json").binary; b && b.module_name && b.module_path ? `--module_name=${b.module_name} --module_path=${require("node:path").resolve(b.module_path)}` : ""')
    (cd "$root/node_modules/$addon" && CC=$triplet-gcc CXX=$triplet-g++ LINK=$triplet-g++ AR=$triplet-ar \
      $gyp rebuild --arch="$arch" --nodedir="$(dirname "$(dirname "$(command -v node)")")" --jobs=2 $pregyp >"$stage/gyp.log" 2>&1) \
      || { tail -30 "$stage/gyp.log" >&2; echo "release.sh: cross-compiling ${addon#./} failed" >&2; exit 1; }
  done
  # cbor-x's native accelerator comes as one package per platform: without this one's, cbor-x decodes in JavaScript
  rm -rf "$root/node_modules/@cbor-extract/cbor-extract-linux-$host"
fi
# Build intermediates of the addons are not needed to run, nor prebuilt addons for other systems.
find "$root/node_modules" -type d \( -name obj -o -name obj.target -o -name .deps \) -path '*/build/*' -prune -exec rm -rf {} +
find "$root/node_modules" -path '*/build/*' -type f \( -name '*.a' -o -name '*.o' \) -delete
rm -rf "$root/node_modules/better-sqlite3/deps" "$root/node_modules/better-sqlite3/src"
find "$root/node_modules" -type d -name prebuilds | while read -r prebuilds; do
  for p in "$prebuilds"/*; do
    case "$(basename "$p")" in linux-"$arch" | linux-"$arch"+* | linux-*+"$arch") ;; *) rm -rf "$p" ;; esac
  done
done
# Each addon must be for the target: an ELF of its machine (x64 62, arm64 183, arm 40).
node -e '
  const fs = require("node:fs"), path = require("node:path");
  const want = { x64: 62, arm64: 183, arm: 40 }[process.argv[2]];
  const bad = [];
  const walk = (d) => { for (const e of fs.readdirSync(d, { withFileTypes: true })) {
    const p = path.join(d, e.name);
    if (e.isDirectory()) walk(p);
    else if (e.name.endsWith(".node")) { const h = Buffer.alloc(20); const fd = fs.openSync(p, "r"); fs.readSync(fd, h, 0, 20, 0); fs.closeSync(fd);
      if (h.readUInt32BE(0) !== 0x7f454c46 || h.readUInt16LE(18) !== want) bad.push(p); } } };
  walk(process.argv[1]);
  if (bad.length) { console.error("release.sh: addons not built for linux-" + process.argv[2] + ":\n  " + bad.join("\n  ")); process.exit(1); }
' "$root/node_modules" "$arch"
# Reproducible order, owners and times: the same tree gives the same bytes.
tar --sort=name --owner=0 --group=0 --numeric-owner --mtime="@$(git log -1 --format=%ct)" -C "$stage" -cf - "venue-gateway-$version" | gzip -n -9 > "$out/$name.tar.gz"
vgw release sign --artifact "$out/$name.tar.gz" --key "$key" --release-version "$version" --commit "$commit" --arch "$arch" --node-abi "$abi" --out "$out/$name.manifest.cose"
