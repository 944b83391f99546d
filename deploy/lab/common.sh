# shellcheck shell=bash disable=SC2034,SC2154 # variables shared with lab.sh and its other files
# Helpers of the rewire lab (deploy/lab/lab.sh): names, waiting, results.

LAB=${REWIRE_LAB_DIR:-/tmp/rewire-lab}
NS=rwlab-          # every namespace of the lab starts with this
ETCDS=(etcd1 etcd2 etcd3)
declare -A IP=([etcd1]=192.168.56.11 [etcd2]=192.168.56.12 [etcd3]=192.168.56.13
  [app1]=192.168.56.21 [app2]=192.168.56.22 [lb1]=192.168.56.31 [client]=192.168.56.41)
# shellcheck disable=SC2054 # the values are comma-separated lists
declare -A SERVICES=([app1]=web,api [app2]=web,api,db)
HOSTS=(etcd1 etcd2 etcd3 app1 app2 lb1 client)
# Each daemon runs as its own user (numeric ids: the lab creates no
# accounts), with its own etcd identity (certificate, and a password for
# the templater).
UID_ETCD=64790 UID_REGISTRAR=64791 UID_SAMPLE=64792 UID_TEMPLATER=64793 UID_HAPROXY=64794
GID_LBSOCK=64799   # haproxy's sockets: haproxy and the templater
LEASE_TTL=10       # deploy/config/registrar.yaml's lease_ttl, in seconds
LB_URL=http://${IP[lb1]}:8000

ENDPOINTS=""
for e in "${ETCDS[@]}"; do ENDPOINTS+="${ENDPOINTS:+,}${IP[$e]}:2379"; done
CLUSTER=""
for e in "${ETCDS[@]}"; do CLUSTER+="${CLUSTER:+,}$e=${IP[$e]}"; done

log() { printf '%s lab: %s\n' "$(date +%T.%3N)" "$*" >&2; }
now() { date +%s.%N; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN{printf "%.2f", b-a}'; }

# on HOST CMD...: run CMD in HOST's namespace.
on() { local h=$1; shift; ip netns exec "$NS$h" "$@"; }

# privs UID[:GID[:GROUPS]]: sets PRIV to the command prefix that runs a
# command as that user, with no capabilities and no way to gain any.
privs() {
  local u g groups; IFS=: read -r u g groups <<< "$1"
  PRIV=(setpriv --reuid "$u" --regid "${g:-$u}")
  if [ -n "$groups" ]; then PRIV+=(--groups "$groups"); else PRIV+=(--clear-groups); fi
  PRIV+=(--no-new-privs --inh-caps=-all --bounding-set=-all --)
}

# start HOST NAME UID[:GID[:GROUPS]] CMD...: a daemon in HOST's namespace,
# as that user, in its own session, logging to $LAB/log/HOST-NAME.log.
start() {
  local h=$1 name=$2; privs "$3"; shift 3
  ip netns exec "$NS$h" setsid "${PRIV[@]}" "$@" >>"$LAB/log/$h-$name.log" 2>&1 < /dev/null &
  disown
}

# pids_of HOST COMM: the pids of HOST's processes named COMM.
pids_of() {
  local p
  for p in $(ip netns pids "$NS$1" 2>/dev/null); do
    [ "$(cat "/proc/$p/comm" 2>/dev/null)" = "$2" ] && echo "$p"
  done
  return 0
}

# wait_for SECONDS WHAT CMD...: until CMD succeeds, or fail naming WHAT.
wait_for() {
  local limit=$1 what=$2 t0; shift 2
  t0=$(now)
  until "$@" >/dev/null 2>&1; do
    if awk -v a="$t0" -v b="$(now)" -v l="$limit" 'BEGIN{exit !(b-a > l)}'; then
      log "timed out after ${limit}s waiting for $what"
      return 1
    fi
    sleep 0.1
  done
}

# etcdctl as the lab's operator of last resort (root, by its certificate);
# ECTL_ENDPOINTS instead of every member.
ectl() {
  on client env ETCDCTL_API=3 ETCDCTL_ENDPOINTS="${ECTL_ENDPOINTS:-$ENDPOINTS}" ETCDCTL_CACERT="$LAB/pki/ca.crt" \
    ETCDCTL_CERT="$LAB/pki/root.crt" ETCDCTL_KEY="$LAB/pki/root.key" etcdctl "$@"
}

# ectl_as CN CMD...: etcdctl with CN's certificate (and no password).
ectl_as() {
  local cn=$1; shift
  on client env ETCDCTL_API=3 ETCDCTL_ENDPOINTS="$ENDPOINTS" ETCDCTL_CACERT="$LAB/pki/ca.crt" \
    ETCDCTL_CERT="$LAB/pki/$cn.crt" ETCDCTL_KEY="$LAB/pki/$cn.key" etcdctl "$@"
}

# Results: one line per assertion, printed as the summary.
RESULTS=()
FAILED=0
pass() { RESULTS+=("PASS  $*"); log "PASS $*"; }
fail() { RESULTS+=("FAIL  $*"); log "FAIL $*"; FAILED=$((FAILED + 1)); }
check() { # check DESCRIPTION CMD...: pass or fail on CMD's exit code
  local d=$1; shift
  if "$@"; then pass "$d"; else fail "$d"; fi
}
note() { RESULTS+=("      $*"); log "$*"; }
