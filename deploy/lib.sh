# shellcheck shell=bash disable=SC2034 # the topology's variables are used by who sources this
# The provisioning logic shared by the VMs (deploy/provision.sh) and the
# network-namespace lab (deploy/lab/): which files each host gets and what
# they say. Source it; set REWIRE_DEPLOY to this directory first. Every
# function writes below ROOT, which is "" on a VM and the host's directory
# in the lab, so both get the same files at the same relative paths.

# The topology, as in the Vagrantfile.
REWIRE_NETWORK=192.168.56.0/24
declare -A REWIRE_PORT=([web]=8080 [api]=8081 [db]=8082)
# Each sample service calls the next one through the load balancer.
declare -A REWIRE_UPSTREAM=([web]=api [api]=db)

# rw_fill FILE NAME=VALUE...: FILE with every @NAME@ replaced by VALUE.
rw_fill() {
  local f=$1 kv; shift
  local args=()
  for kv in "$@"; do args+=(-e "s|@${kv%%=*}@|${kv#*=}|g"); done
  sed "${args[@]}" "$f"
}

# rw_yaml_list "a:1,b:2" -> "a:1", "b:2"
rw_yaml_list() {
  local IFS=, out=() e
  for e in $1; do out+=("\"$e\""); done
  (IFS=,; echo "${out[*]}")
}

# rw_pki PKI KIND ARGS...: deploy/pki.sh (idempotent, one shared CA).
rw_pki() { "$REWIRE_DEPLOY/pki.sh" "$@"; }

# rw_password FILE: a random password in FILE (mode 0600) unless it exists.
rw_password() {
  [ -s "$1" ] && return 0
  (umask 077; openssl rand -hex 24 > "$1")
}

# rw_install_pki PKI ROOT NAME...: the CA certificate and the named
# key pairs into ROOT/etc/rewire/pki.
rw_install_pki() {
  local pki=$1 root=$2 n; shift 2
  install -d -m 0755 "$root/etc/rewire/pki"
  install -m 0644 "$pki/ca.crt" "$root/etc/rewire/pki/ca.crt"
  for n in "$@"; do
    install -m 0644 "$pki/$n.crt" "$root/etc/rewire/pki/$n.crt"
    install -m 0600 "$pki/$n.key" "$root/etc/rewire/pki/$n.key"
  done
}

# rw_etcd_env NAME IP CLUSTER PKIDIR DATADIR: etcd's environment
# (/etc/default/etcd): client TLS with client certificates (a client's
# common name is its etcd user), peer TLS. CLUSTER is name=ip,...
rw_etcd_env() {
  local name=$1 ip=$2 cluster=$3 pki=$4 data=$5 urls=() m
  for m in ${cluster//,/ }; do urls+=("${m%%=*}=https://${m#*=}:2380"); done
  cat <<EOT
ETCD_NAME=$name
ETCD_DATA_DIR=$data
ETCD_LISTEN_PEER_URLS=https://$ip:2380
ETCD_LISTEN_CLIENT_URLS=https://$ip:2379,https://127.0.0.1:2379
ETCD_INITIAL_ADVERTISE_PEER_URLS=https://$ip:2380
ETCD_ADVERTISE_CLIENT_URLS=https://$ip:2379
ETCD_INITIAL_CLUSTER=$(IFS=,; echo "${urls[*]}")
ETCD_INITIAL_CLUSTER_STATE=new
ETCD_INITIAL_CLUSTER_TOKEN=rewire
ETCD_EXPERIMENTAL_WATCH_PROGRESS_NOTIFY_INTERVAL=5s
ETCD_LOGGER=zap
ETCD_CERT_FILE=$pki/$name.crt
ETCD_KEY_FILE=$pki/$name.key
ETCD_TRUSTED_CA_FILE=$pki/ca.crt
ETCD_CLIENT_CERT_AUTH=true
ETCD_PEER_CERT_FILE=$pki/$name.crt
ETCD_PEER_KEY_FILE=$pki/$name.key
ETCD_PEER_TRUSTED_CA_FILE=$pki/ca.crt
ETCD_PEER_CLIENT_CERT_AUTH=true
EOT
}

# rw_registrar_config ROOT NODE ENDPOINTS SERVICES: registrar.yaml for an
# app host running SERVICES (comma-separated).
rw_registrar_config() {
  local root=$1 node=$2 endpoints=$3 s
  local vars=(ROOT="$root" NODE="$node" ETCD_ENDPOINTS="$(rw_yaml_list "$endpoints")" NETWORK="$REWIRE_NETWORK")
  rw_fill "$REWIRE_DEPLOY/config/registrar.yaml" "${vars[@]}"
  for s in ${4//,/ }; do rw_fill "$REWIRE_DEPLOY/config/services/$s.yaml" "${vars[@]}"; done
}

# rw_templater_config ROOT NODE ENDPOINTS: templater.yaml for an LB host.
rw_templater_config() {
  rw_fill "$REWIRE_DEPLOY/config/templater.yaml" ROOT="$1" NODE="$2" ETCD_ENDPOINTS="$(rw_yaml_list "$3")"
}

# rw_lb_files ROOT SRC SOCKET_GROUP BIND: everything an LB host's haproxy and
# templater read: the template, the socket config, a first haproxy.cfg.
# SOCKET_GROUP is haproxy's bind option ("group haproxy", "gid 1234").
rw_lb_files() {
  local root=$1 src=$2 group=$3 bind=$4
  install -d -m 0755 "$root/etc/rewire" "$root/etc/haproxy" "$root/run/haproxy" "$root/etc/haproxy/rewire" \
    "$root/var/lib/haproxy/rewire"
  install -m 0644 "$src/examples/haproxy/haproxy.cfg.tmpl" "$root/etc/rewire/haproxy.cfg.tmpl"
  rw_fill "$REWIRE_DEPLOY/config/haproxy-sockets.cfg" ROOT="$root" SOCKET_GROUP="$group" > "$root/etc/haproxy/rewire-sockets.cfg"
  [ -s "$root/etc/haproxy/rewire/haproxy.cfg" ] ||
    rw_fill "$REWIRE_DEPLOY/config/haproxy-bootstrap.cfg" BIND="$bind" > "$root/etc/haproxy/rewire/haproxy.cfg"
}

# rw_haproxy_args ROOT SOCKET_GROUP: haproxy's master-worker arguments; the
# master CLI is writable by SOCKET_GROUP ("group,haproxy" or "gid,1234").
rw_haproxy_args() {
  echo "-W -S $1/run/haproxy/master.sock,mode,660,$2 -f $1/etc/haproxy/rewire-sockets.cfg -f $1/etc/haproxy/rewire/haproxy.cfg"
}

# rw_lb_keys PREFIX BIND STATEFILE: the free-form keys examples/haproxy reads,
# put with etcdctl (its connection from ETCDCTL_* in the environment).
rw_lb_keys() {
  ETCDCTL_API=3 etcdctl put "$1/haproxy/bind" "$2" >/dev/null
  ETCDCTL_API=3 etcdctl put "$1/haproxy/state_file" "$3" >/dev/null
}

# rw_depends_on SERVICES: the services that SERVICES (comma-separated)
# depend on, from their config/services/*.yaml blocks, comma-separated:
# what a registrar running them must be able to read.
rw_depends_on() {
  local s out=() deps
  for s in ${1//,/ }; do
    IFS=, read -r -a deps <<< "$(sed -n 's/^ *depends_on: *\[\(.*\)\]/\1/p' "$REWIRE_DEPLOY/config/services/$s.yaml" | tr -d ' ')"
    out+=("${deps[@]}")
  done
  (IFS=,; echo "${out[*]}" | tr ',' '\n' | sort -u | paste -sd, -)
}

# rw_auth PKI APPS LBS: etcd's users and roles for the topology, through
# deploy/etcd-auth.sh: root (password in PKI/root.password), one
# registrar-NODE per app host (APPS: "node=svc,svc node=svc"), one
# templater-NODE per LB host (LBS: "node node"; password in
# PKI/templater-NODE.password), and the operator. The other users have no
# password: their certificate's common name is their name. ETCDCTL_* in the
# environment name the cluster and root's certificate (PKI/root.crt), which
# keeps working once authentication is on.
rw_auth() {
  local pki=$1 a n
  rw_password "$pki/root.password"
  "$REWIRE_DEPLOY/etcd-auth.sh" init "$pki/root.password"
  local deps
  for a in $2; do
    deps=$(rw_depends_on "${a#*=}")
    "$REWIRE_DEPLOY/etcd-auth.sh" registrar "registrar-${a%%=*}" - "${a#*=}" ${deps:+"$deps"}
  done
  for n in $3; do
    rw_password "$pki/templater-$n.password"
    "$REWIRE_DEPLOY/etcd-auth.sh" templater "templater-$n" "$pki/templater-$n.password"
  done
  "$REWIRE_DEPLOY/etcd-auth.sh" operator operator -
}
