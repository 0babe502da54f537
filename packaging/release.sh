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
arch=$(node -p process.arch)
abi=$(node -p process.versions.modules)
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
# Build intermediates of the addons are not needed to run, nor prebuilt addons for other systems.
find "$root/node_modules" -type d \( -name obj -o -name obj.target -o -name .deps \) -path '*/build/*' -prune -exec rm -rf {} +
find "$root/node_modules" -path '*/build/*' -type f \( -name '*.a' -o -name '*.o' \) -delete
rm -rf "$root/node_modules/better-sqlite3/deps" "$root/node_modules/better-sqlite3/src"
find "$root/node_modules" -type d -name prebuilds | while read -r prebuilds; do
  for p in "$prebuilds"/*; do
    case "$(basename "$p")" in linux-"$arch" | linux-"$arch"+* | linux-*+"$arch") ;; *) rm -rf "$p" ;; esac
  done
done
# Reproducible order, owners and times: the same tree gives the same bytes.
tar --sort=name --owner=0 --group=0 --numeric-owner --mtime="@$(git log -1 --format=%ct)" -C "$stage" -cf - "venue-gateway-$version" | gzip -n -9 > "$out/$name.tar.gz"
vgw release sign --artifact "$out/$name.tar.gz" --key "$key" --release-version "$version" --commit "$commit" --arch "$arch" --node-abi "$abi" --out "$out/$name.manifest.cose"
