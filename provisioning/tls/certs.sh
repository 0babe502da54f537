#!/bin/sh
# A small private CA for the broker, the gateways and the backend (mutual TLS), with openssl.
# Keys are ECDSA P-256 and never leave the folder they are made in; copy each unit's key to it
# over a secure channel and delete it here.
#   certs.sh ca DIR                      make DIR/ca.crt and DIR/ca.key (keep ca.key offline)
#   certs.sh server DIR NAME [SAN...]    broker certificate, e.g. server pki broker DNS:broker.example.org IP:10.0.0.5
#   certs.sh client DIR CN               client certificate whose CN is the MQTT user: a gateway id, or "collector-1"
# Certificates last 825 days (CERT_DAYS=N to change it); units and vgw doctor warn 30 days before.
set -eu
umask 077
days=${CERT_DAYS:-825}
cmd=${1:-}; dir=${2:-}
[ -n "$cmd" ] && [ -n "$dir" ] || { sed -n '2,9p' "$0" >&2; exit 2; }
mkdir -p "$dir"
case "$cmd" in
  ca)
    [ -e "$dir/ca.key" ] && { echo "certs.sh: $dir/ca.key exists; refusing to replace the CA" >&2; exit 2; }
    openssl ecparam -name prime256v1 -genkey -noout -out "$dir/ca.key"
    openssl req -x509 -new -key "$dir/ca.key" -sha256 -days 3650 -subj "/CN=venue-gateway CA" \
      -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" -out "$dir/ca.crt"
    chmod 644 "$dir/ca.crt" ;;
  server|client)
    name=${3:?"certs.sh $cmd: give a name"}
    case "$name" in *[!A-Za-z0-9_.-]*) echo "certs.sh: \"$name\" must be letters, digits, _ . -" >&2; exit 2 ;; esac
    shift 3
    if [ "$cmd" = server ]; then
      sans="DNS:$name"; for s in "$@"; do sans="$sans,$s"; done
      ext="subjectAltName=$sans
extendedKeyUsage=serverAuth"
    else
      ext="extendedKeyUsage=clientAuth"
    fi
    openssl ecparam -name prime256v1 -genkey -noout -out "$dir/$name.key"
    openssl req -new -key "$dir/$name.key" -subj "/CN=$name" -out "$dir/$name.csr"
    printf '%s\nbasicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\n' "$ext" > "$dir/$name.ext"
    openssl x509 -req -in "$dir/$name.csr" -CA "$dir/ca.crt" -CAkey "$dir/ca.key" -CAcreateserial \
      -days $days -sha256 -extfile "$dir/$name.ext" -out "$dir/$name.crt" 2>/dev/null
    rm -f "$dir/$name.csr" "$dir/$name.ext"
    chmod 644 "$dir/$name.crt" ;;
  *) sed -n '2,8p' "$0" >&2; exit 2 ;;
esac
