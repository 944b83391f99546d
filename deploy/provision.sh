#!/usr/bin/env bash
# Provisions one host of the rewire topology (a VM of the Vagrantfile, or a
# real one). The files each host gets come from deploy/lib.sh, which the
# network-namespace lab (deploy/lab) uses too. Usage, as root:
#   provision.sh etcd NAME IP CLUSTER         # CLUSTER: etcd1=192.168.56.11,etcd2=...
#   provision.sh auth ENDPOINTS APPS LBS      # once, on one member, after all started:
#                                             # users and roles, then authentication on
#                                             # APPS: "app1=web,api app2=web,api,db", LBS: "lb1"
#   provision.sh app  NODE ENDPOINTS SERVICES LB_IP   # registrar + sample services
#   provision.sh lb   NODE ENDPOINTS                  # haproxy + templater
# ENDPOINTS is a comma-separated list of host:port. Certificates and
# passwords are created on first use in $REWIRE_PKI (default
# /vagrant/.pki, shared by the VMs: keep it out of version control and
# copy each host only what it needs). The rewire binaries are taken from
# /vagrant/bin/dist (`make dist`) or /vagrant/bin (`make build`),
# whichever was built last; bin/sampleservice from `make build`.
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive
role=${1:?role: etcd, auth, app or lb}
src=${REWIRE_SRC:-/vagrant}
pki=${REWIRE_PKI:-$src/.pki}
REWIRE_DEPLOY=$src/deploy
# shellcheck source=lib.sh
. "$REWIRE_DEPLOY/lib.sh"

install_rewire() {
  # The newer of the two builds, so a stale `make dist` does not win.
  local bin=$src/bin
  if [ -x "$src/bin/dist/templater" ] && { [ ! -x "$bin/templater" ] || [ "$src/bin/dist/templater" -nt "$bin/templater" ]; }; then
    bin=$src/bin/dist
  fi
  install -m 0755 "$bin/registrar" "$bin/templater" /usr/local/bin/
  install -d -m 0755 /etc/rewire
}

# system_user NAME [GROUP...]: a dedicated account without a shell.
system_user() {
  local u=$1; shift
  getent passwd "$u" >/dev/null || useradd --system --no-create-home --shell /usr/sbin/nologin "$u"
  local g; for g in "$@"; do usermod -a -G "$g" "$u"; done
}

# admin_env ENDPOINTS: etcdctl as root, by root's certificate.
admin_env() {
  rw_pki "$pki" client root
  export ETCDCTL_API=3 ETCDCTL_ENDPOINTS=$1 ETCDCTL_CACERT=$pki/ca.crt ETCDCTL_CERT=$pki/root.crt ETCDCTL_KEY=$pki/root.key
}

case "$role" in
etcd)
  name=${2:?name} ip=${3:?ip} cluster=${4:?cluster}
  apt-get install -y -qq --no-install-recommends etcd-server etcd-client
  rw_pki "$pki" server "$name" "$ip"
  install -d -m 0750 -o etcd -g etcd /etc/etcd/pki
  install -m 0644 "$pki/ca.crt" "$pki/$name.crt" /etc/etcd/pki/
  install -m 0600 -o etcd "$pki/$name.key" /etc/etcd/pki/
  rw_etcd_env "$name" "$ip" "$cluster" /etc/etcd/pki /var/lib/etcd/default > /etc/default/etcd
  # --no-block: a member reports ready only once the cluster has a quorum,
  # which the members provisioned after this one complete.
  systemctl restart --no-block etcd
  ;;
auth)
  endpoints=${2:?endpoints} apps=${3:?apps} lbs=${4:?lbs}
  admin_env "$endpoints"
  for _ in $(seq 1 120); do etcdctl endpoint health >/dev/null 2>&1 && break; sleep 1; done
  etcdctl endpoint health
  if ! etcdctl user get root >/dev/null 2>&1; then
    for a in $apps; do rw_pki "$pki" client "registrar-${a%%=*}"; done
    for n in $lbs; do rw_pki "$pki" client "templater-$n"; done
    rw_pki "$pki" client operator
    rw_auth "$pki" "$apps" "$lbs"
  fi
  ;;
app)
  node=${2:?node} endpoints=${3:?endpoints} services=${4:?services} lb=${5:?lb ip}
  install_rewire
  install -m 0755 "$src/bin/sampleservice" /usr/local/bin/
  system_user rewire-registrar
  rw_pki "$pki" client "registrar-$node"
  rw_install_pki "$pki" "" "registrar-$node"
  chown rewire-registrar "/etc/rewire/pki/registrar-$node.key"
  rw_registrar_config "" "$node" "$endpoints" "$services" > /etc/rewire/registrar.yaml
  cat > /etc/rewire/rewire.env <<EOT
REWIRE_ETCD=$endpoints
REWIRE_CACERT=/etc/rewire/pki/ca.crt
REWIRE_CERT=/etc/rewire/pki/registrar-$node.crt
REWIRE_KEY=/etc/rewire/pki/registrar-$node.key
EOT
  install -m 0644 "$src/deploy/systemd/rewire-registrar.service" "$src/deploy/systemd/rewire-sample@.service" /etc/systemd/system/
  units=(rewire-registrar)
  for s in ${services//,/ }; do
    up=${REWIRE_UPSTREAM[$s]:-}
    {
      echo "SAMPLE_ARGS=-name $s -node $node -listen :${REWIRE_PORT[$s]}${up:+ -upstream http://$lb:8000/$up/chain}"
      echo "WAIT_FOR=$up"
    } > "/etc/rewire/sample-$s.env"
    units+=("rewire-sample@$s")
  done
  systemctl daemon-reload
  # --no-block: a service waits (registrar wait) for one that another host runs.
  systemctl enable --now --no-block "${units[@]}"
  ;;
lb)
  node=${2:?node} endpoints=${3:?endpoints}
  apt-get install -y -qq --no-install-recommends haproxy etcd-client
  install_rewire
  system_user rewire-templater haproxy
  rw_pki "$pki" client "templater-$node"
  rw_install_pki "$pki" "" "templater-$node"
  install -m 0600 "$pki/templater-$node.password" /etc/rewire/templater.password
  chown rewire-templater "/etc/rewire/pki/templater-$node.key" /etc/rewire/templater.password
  rw_templater_config "" "$node" "$endpoints" > /etc/rewire/templater.yaml
  rw_lb_files "" "$src" "group haproxy" 0.0.0.0:8000
  install -d -m 0755 -o rewire-templater -g haproxy /etc/haproxy/rewire /var/lib/haproxy/rewire
  chown rewire-templater /etc/haproxy/rewire/haproxy.cfg
  install -d -m 0770 -o haproxy -g haproxy /run/haproxy
  echo "d /run/haproxy 0770 haproxy haproxy -" > /etc/tmpfiles.d/rewire-haproxy.conf
  # Debian's haproxy unit: our socket file first, then the rendered file;
  # the master CLI writable by the haproxy group (the templater is in it).
  cat > /etc/default/haproxy <<EOT
CONFIG=/etc/haproxy/rewire-sockets.cfg
EXTRAOPTS=$(rw_haproxy_args "" group,haproxy | sed 's|^-W ||; s| -f /etc/haproxy/rewire-sockets.cfg||')
EOT
  admin_env "$endpoints"
  rw_lb_keys /rewire 0.0.0.0:8000 /var/lib/haproxy/rewire/server-state
  systemctl restart haproxy
  install -m 0644 "$src/deploy/systemd/rewire-templater.service" /etc/systemd/system/
  systemctl daemon-reload
  systemctl enable --now rewire-templater
  ;;
*)
  echo "provision.sh: unknown role $role (want etcd, auth, app or lb)" >&2
  exit 2
  ;;
esac
