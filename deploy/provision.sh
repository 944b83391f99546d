#!/usr/bin/env bash
# Provisions one VM of the rewire topology. Usage (as root):
#   provision.sh etcd NAME IP CLUSTER      # e.g. etcd etcd1 192.168.56.11 "etcd1=http://192.168.56.11:2380,..."
#   provision.sh app  ENDPOINTS            # registrar + a sample service
#   provision.sh lb   ENDPOINTS            # haproxy + templater
# ENDPOINTS is a comma-separated list of host:port. The rewire binaries are
# taken from /vagrant/bin/dist (`make dist` on the host first) or from
# /vagrant/bin (`make build`), whichever was built last.
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive
role=${1:?role: etcd, app or lb}
src=${REWIRE_SRC:-/vagrant}

yaml_list() { # "a:1,b:2" -> "a:1", "b:2"
  local IFS=, out=() e
  for e in $1; do out+=("\"$e\""); done
  (IFS=,; echo "${out[*]}")
}

install_rewire() {
  # The newer of the two builds, so a stale `make dist` does not win.
  local bin=$src/bin
  if [ -x "$src/bin/dist/templater" ] && { [ ! -x "$bin/templater" ] || [ "$src/bin/dist/templater" -nt "$bin/templater" ]; }; then
    bin=$src/bin/dist
  fi
  install -m 0755 "$bin/registrar" "$bin/templater" /usr/local/bin/
  mkdir -p /etc/rewire
  getent passwd rewire >/dev/null || useradd --system --no-create-home --shell /usr/sbin/nologin rewire
}

case "$role" in
etcd)
  name=${2:?name} ip=${3:?ip} cluster=${4:?cluster}
  apt-get install -y -qq --no-install-recommends etcd-server etcd-client
  cat > /etc/default/etcd <<EOT
ETCD_NAME=$name
ETCD_DATA_DIR=/var/lib/etcd/default
ETCD_LISTEN_PEER_URLS=http://$ip:2380
ETCD_LISTEN_CLIENT_URLS=http://$ip:2379,http://127.0.0.1:2379
ETCD_INITIAL_ADVERTISE_PEER_URLS=http://$ip:2380
ETCD_ADVERTISE_CLIENT_URLS=http://$ip:2379
ETCD_INITIAL_CLUSTER=$cluster
ETCD_INITIAL_CLUSTER_STATE=new
ETCD_INITIAL_CLUSTER_TOKEN=rewire
ETCD_EXPERIMENTAL_WATCH_PROGRESS_NOTIFY_INTERVAL=5s
EOT
  systemctl restart etcd
  ;;
app)
  endpoints=${2:?endpoints}
  install_rewire
  # A stand-in for your service: a static site with /healthz on :8080.
  mkdir -p /srv/web && echo ok > /srv/web/healthz && echo "hello from $(hostname)" > /srv/web/index.html
  cat > /etc/systemd/system/sample-web.service <<EOT
[Unit]
Description=sample web service for the rewire lab
[Service]
ExecStart=/usr/bin/python3 -m http.server 8080 --directory /srv/web
DynamicUser=yes
Restart=always
[Install]
WantedBy=multi-user.target
EOT
  systemctl daemon-reload
  systemctl enable --now sample-web
  sed "s|ETCD_ENDPOINTS|$(yaml_list "$endpoints")|" "$src/deploy/config/registrar.yaml" > /etc/rewire/registrar.yaml
  install -m 0644 "$src/deploy/systemd/rewire-registrar.service" /etc/systemd/system/
  systemctl daemon-reload
  systemctl enable --now rewire-registrar
  ;;
lb)
  endpoints=${2:?endpoints}
  apt-get install -y -qq --no-install-recommends haproxy etcd-client
  install_rewire
  # The example template binds to the haproxy/bind key (default 127.0.0.1:8000).
  ETCDCTL_API=3 etcdctl --endpoints "$endpoints" put /rewire/haproxy/bind 0.0.0.0:8000
  # The runtime API (server changes without reloads) and the server-state
  # file (health and drain kept across reloads and restarts).
  ETCDCTL_API=3 etcdctl --endpoints "$endpoints" put /rewire/haproxy/stats_socket /run/haproxy/admin.sock
  ETCDCTL_API=3 etcdctl --endpoints "$endpoints" put /rewire/haproxy/state_file /var/lib/haproxy/server-state
  install -m 0644 "$src/examples/haproxy/haproxy.cfg.tmpl" /etc/rewire/haproxy.cfg.tmpl
  sed "s|ETCD_ENDPOINTS|$(yaml_list "$endpoints")|" "$src/deploy/config/templater.yaml" > /etc/rewire/templater.yaml
  install -m 0644 "$src/deploy/systemd/rewire-templater.service" /etc/systemd/system/
  systemctl daemon-reload
  systemctl enable --now rewire-templater
  ;;
*)
  echo "provision.sh: unknown role $role (want etcd, app or lb)" >&2
  exit 2
  ;;
esac
