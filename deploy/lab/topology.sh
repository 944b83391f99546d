# shellcheck shell=bash disable=SC2154,SC2016 # src comes from lab.sh; single-quoted scripts get their arguments
# Brings the lab up (deploy/lab/lab.sh): namespaces, certificates, etcd,
# users and roles, app hosts, LB host. Each host's files sit below
# $LAB/hosts/HOST, at the paths a VM has them (deploy/lib.sh's ROOT).

# rewire_bin: the newer of make dist's and make build's daemons.
rewire_bin() {
  local bin=$src/bin
  if [ -x "$src/bin/dist/templater" ] && { [ ! -x "$bin/templater" ] || [ "$src/bin/dist/templater" -nt "$bin/templater" ]; }; then
    bin=$src/bin/dist
  fi
  echo "$bin"
}

# net_up: one namespace per host, each with eth0 on a bridge in the
# namespace ${NS}sw (the switch); a host's link is cut on the switch side.
net_up() {
  local h
  ip netns add "${NS}sw"
  ip -n "${NS}sw" link add br0 type bridge
  ip -n "${NS}sw" link set br0 up
  for h in "${HOSTS[@]}"; do
    ip netns add "$NS$h"
    ip -n "${NS}sw" link add "$h" type veth peer name eth0 netns "$NS$h"
    ip -n "${NS}sw" link set "$h" master br0 up
    ip -n "$NS$h" addr add "${IP[$h]}/24" dev eth0
    ip -n "$NS$h" link set eth0 up
    ip -n "$NS$h" link set lo up
  done
}

# link HOST up|down: the host's switch port.
link() { ip -n "${NS}sw" link set "$1" "$2"; }

# as_root_lib FUNCTION ARGS...: a deploy/lib.sh function that uses etcdctl,
# on the client host, as root by its certificate (as provision.sh does).
as_root_lib() {
  on client env ETCDCTL_API=3 ETCDCTL_ENDPOINTS="$ENDPOINTS" ETCDCTL_CACERT="$LAB/pki/ca.crt" \
    ETCDCTL_CERT="$LAB/pki/root.crt" ETCDCTL_KEY="$LAB/pki/root.key" REWIRE_DEPLOY="$REWIRE_DEPLOY" \
    bash -c '. "$REWIRE_DEPLOY/lib.sh"; "$@"' - "$@"
}

pki_up() {
  local e
  for e in "${ETCDS[@]}"; do rw_pki "$LAB/pki" server "$e" "${IP[$e]}"; done
  for e in root operator registrar-app1 registrar-app2 templater-lb1; do rw_pki "$LAB/pki" client "$e"; done
}

# etcd_start NAME: the member, as user etcd, from the env file lib.sh wrote.
etcd_start() {
  local e=$1 root=$LAB/hosts/$1
  # shellcheck disable=SC2046 # one VAR=value per word, as the file is written
  start "$e" etcd "$UID_ETCD" env -i $(cat "$root/etc/default/etcd") /usr/bin/etcd
}

etcd_up() {
  local e root
  for e in "${ETCDS[@]}"; do
    root=$LAB/hosts/$e
    rw_install_pki "$LAB/pki" "$root" "$e"
    install -d -m 0700 "$root/var/lib/etcd"
    install -d "$root/etc/default"
    rw_etcd_env "$e" "${IP[$e]}" "$CLUSTER" "$root/etc/rewire/pki" "$root/var/lib/etcd/default" > "$root/etc/default/etcd"
    chown -R "$UID_ETCD:$UID_ETCD" "$root/etc/rewire/pki" "$root/var/lib/etcd"
    etcd_start "$e"
  done
  wait_for 60 "etcd's three members" ectl endpoint health
  log "etcd cluster healthy; creating users and roles (deploy/provision.sh auth)"
  local apps=""
  for h in app1 app2; do apps+="$h=${SERVICES[$h]} "; done
  # The VMs' own step (on the last etcd VM), with the lab's certificates.
  on client env REWIRE_SRC="$src" REWIRE_PKI="$LAB/pki" "$REWIRE_DEPLOY/provision.sh" auth "$ENDPOINTS" "${apps% }" lb1
  ectl get /probe >/dev/null   # root by certificate, with authentication on
}

# app_service HOST SERVICE: a sample service as its user; like the VMs'
# units it first waits (registrar wait, the units' ExecStartPre) for the
# service it calls.
app_service() {
  local h=$1 s=$2 root=$LAB/hosts/$1 up=${REWIRE_UPSTREAM[$2]:-} bin
  bin=$(rewire_bin)
  privs "$UID_SAMPLE"
  local run=("${PRIV[@]}" "$src/bin/sampleservice" -name "$s" -node "$h" -listen ":${REWIRE_PORT[$s]}")
  [ -z "$up" ] || run+=(-upstream "$LB_URL/$up/chain")
  ip netns exec "$NS$h" setsid bash -c '
    set -a; . "$1"; set +a; shift
    "$1" wait "$2" --timeout 120s || exit 1
    shift 2; exec "$@"' - "$root/etc/rewire/rewire.env" "$bin/registrar" "${up:-}" "${run[@]}" \
    >>"$LAB/log/$h-$s.log" 2>&1 < /dev/null &
  disown
}

app_up() {
  local h=$1 root=$LAB/hosts/$1 bin
  bin=$(rewire_bin)
  rw_install_pki "$LAB/pki" "$root" "registrar-$h"
  rw_registrar_config "$root" "$h" "$ENDPOINTS" "${SERVICES[$h]}" > "$root/etc/rewire/registrar.yaml"
  cat > "$root/etc/rewire/rewire.env" <<EOT
REWIRE_ETCD=$ENDPOINTS
REWIRE_CACERT=$root/etc/rewire/pki/ca.crt
REWIRE_CERT=$root/etc/rewire/pki/registrar-$h.crt
REWIRE_KEY=$root/etc/rewire/pki/registrar-$h.key
EOT
  chown -R "$UID_REGISTRAR:$UID_REGISTRAR" "$root/etc/rewire/pki"
  start "$h" registrar "$UID_REGISTRAR" "$bin/registrar" run -c "$root/etc/rewire/registrar.yaml"
}

app_services_up() {
  local h=$1 s
  for s in ${SERVICES[$h]//,/ }; do
    if [ -n "${REWIRE_UPSTREAM[$s]:-}" ]; then app_service "$h" "$s"; else
      # Nothing to wait for: start it as the units do, without the wait.
      start "$h" "$s" "$UID_SAMPLE" "$src/bin/sampleservice" -name "$s" -node "$h" -listen ":${REWIRE_PORT[$s]}"
    fi
  done
}

haproxy_start() {
  local root=$LAB/hosts/lb1
  # shellcheck disable=SC2046
  start lb1 haproxy "$UID_HAPROXY:$UID_HAPROXY:$GID_LBSOCK" haproxy -db $(rw_haproxy_args "$root" "gid,$GID_LBSOCK")
}

templater_start() {
  start lb1 templater "$UID_TEMPLATER:$UID_TEMPLATER:$GID_LBSOCK" "$(rewire_bin)/templater" run -c "$LAB/hosts/lb1/etc/rewire/templater.yaml"
}

lb_up() {
  local root=$LAB/hosts/lb1
  rw_install_pki "$LAB/pki" "$root" templater-lb1
  install -m 0600 "$LAB/pki/templater-lb1.password" "$root/etc/rewire/templater.password"
  rw_templater_config "$root" lb1 "$ENDPOINTS" > "$root/etc/rewire/templater.yaml"
  rw_lb_files "$root" "$src" "gid $GID_LBSOCK" "${IP[lb1]}:8000"
  chown -R "$UID_TEMPLATER:$UID_TEMPLATER" "$root/etc/rewire/pki" "$root/etc/rewire/templater.password" "$root/etc/haproxy/rewire"
  chown "$UID_TEMPLATER:$UID_TEMPLATER" "$root/var/lib/haproxy/rewire"
  chown "$UID_HAPROXY:$GID_LBSOCK" "$root/run/haproxy"
  chmod 0770 "$root/run/haproxy"
  as_root_lib rw_lb_keys /rewire "${IP[lb1]}:8000" "$root/var/lib/haproxy/rewire/server-state"
  haproxy_start
  wait_for 20 "haproxy's master socket" test -S "$root/run/haproxy/master.sock"
  templater_start
}

up() {
  install -d -m 0755 "$LAB" "$LAB/log" "$LAB/pki"
  for h in "${HOSTS[@]}"; do install -d -m 0755 "$LAB/hosts/$h/etc/rewire"; done
  chmod 0755 "$LAB/hosts"
  net_up
  pki_up
  etcd_up
  app_up app1
  app_up app2
  app_services_up app2   # db first: api waits for it, web for api
  app_services_up app1
  lb_up
  wait_for 90 "every sample instance routable in haproxy" all_in_lb
}
