#!/usr/bin/env bash
# Creates the certificate authority and certificates of a rewire deployment
# with openssl. Idempotent: what exists is kept, so every VM (or the lab) can
# call it and they all share one CA.
#   pki.sh DIR ca                      # DIR/ca.crt, DIR/ca.key
#   pki.sh DIR server NAME IP [IP...]  # DIR/NAME.crt/.key: an etcd member (server and peer)
#   pki.sh DIR client CN               # DIR/CN.crt/.key: a client whose etcd user is CN
# Keys are mode 0600; hand each one only to the process it names.
set -euo pipefail
dir=${1:?directory} kind=${2:?ca, server or client}
mkdir -p "$dir"
umask 077

ca() {
  [ -s "$dir/ca.crt" ] && return 0
  openssl req -x509 -new -nodes -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 \
    -keyout "$dir/ca.key" -out "$dir/ca.crt.tmp" -days 3650 -subj "/CN=rewire etcd CA" 2>/dev/null
  chmod 0644 "$dir/ca.crt.tmp"
  mv "$dir/ca.crt.tmp" "$dir/ca.crt"
}

# issue NAME EXTFILE-CONTENT: a key and a certificate signed by the CA.
issue() {
  local name=$1 ext=$2
  [ -s "$dir/$name.crt" ] && return 0
  ca
  openssl req -new -nodes -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 \
    -keyout "$dir/$name.key" -out "$dir/$name.csr" -subj "/CN=$name" 2>/dev/null
  printf '%s\n' "$ext" > "$dir/$name.ext"
  openssl x509 -req -in "$dir/$name.csr" -CA "$dir/ca.crt" -CAkey "$dir/ca.key" -CAcreateserial \
    -days 825 -extfile "$dir/$name.ext" -out "$dir/$name.crt.tmp" 2>/dev/null
  chmod 0644 "$dir/$name.crt.tmp"
  mv "$dir/$name.crt.tmp" "$dir/$name.crt"
  rm -f "$dir/$name.csr" "$dir/$name.ext"
}

case "$kind" in
ca) ca ;;
server)
  name=${3:?name}; shift 3
  san="DNS:$name,DNS:localhost,IP:127.0.0.1"
  for ip in "$@"; do san="$san,IP:$ip"; done
  # etcd members use one certificate as server and as peer client.
  issue "$name" "subjectAltName=$san
extendedKeyUsage=serverAuth,clientAuth
keyUsage=digitalSignature,keyEncipherment"
  ;;
client)
  cn=${3:?common name}
  issue "$cn" "extendedKeyUsage=clientAuth
keyUsage=digitalSignature,keyEncipherment"
  ;;
*) echo "pki.sh: unknown kind $kind (want ca, server or client)" >&2; exit 2 ;;
esac
