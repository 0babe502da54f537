#!/bin/sh
# Builds the shared-subscription guard for the Mosquitto on this machine (see
# shared-subscription-guard.c for why it exists). Needs gcc, mosquitto-dev and libmosquitto-dev.
#   sh build-guard.sh [output.so]      default: ./vgw_shared_subscription_guard.so
# Install the result where the config's `plugin` line points (/usr/lib/mosquitto/ in the example).
set -eu
here=$(dirname "$0")
out=${1:-vgw_shared_subscription_guard.so}
for header in mosquitto_broker.h mosquitto_plugin.h mosquitto.h; do
  if ! printf '#include <%s>\n' "$header" | cc -E -x c - >/dev/null 2>&1; then
    echo "build-guard.sh: $header not found: apt-get install mosquitto-dev libmosquitto-dev" >&2
    exit 1
  fi
done
cc -shared -fPIC -O2 -Wall -Wextra -Werror -o "$out" "$here/shared-subscription-guard.c"
echo "$out"
