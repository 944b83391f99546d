#!/usr/bin/env bash
# The rewire lab: the Vagrantfile's topology on this machine, in Linux
# network namespaces joined by a bridge: a 3-member etcd cluster (Debian's
# etcd, client and peer TLS, authentication on), two app hosts (sample
# services web → api → db and a registrar each), an LB host (haproxy in
# master-worker mode and a templater) and a client host for the load. It
# provisions them with deploy/lib.sh, the logic and config files the VMs
# use, runs the scenarios of scenarios.sh, prints a summary, and removes
# everything it created, also when interrupted.
#
#   deploy/lab/lab.sh [run]   # up, scenarios, down (make lab; needs root)
#   deploy/lab/lab.sh up      # up, then wait for Ctrl-C (explore it: see README.md)
#   deploy/lab/lab.sh down    # remove a lab left behind (run also does this first)
#
# REWIRE_LAB_LOGS=DIR keeps a copy of the daemons' logs there.
# Binaries: bin/dist (make dist) or bin (make build), whichever is newer;
# bin/sampleservice from make build.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
REWIRE_DEPLOY=$(dirname "$here")
# shellcheck disable=SC2034 # used by topology.sh
src=$(dirname "$REWIRE_DEPLOY")
# shellcheck source=../lib.sh
. "$REWIRE_DEPLOY/lib.sh"
# shellcheck source=common.sh
. "$here/common.sh"
# shellcheck source=topology.sh
. "$here/topology.sh"
# shellcheck source=scenarios.sh
. "$here/scenarios.sh"

ns_empty() { [ -z "$(ip netns pids "$1" 2>/dev/null)" ]; }

# down: every process in the lab's namespaces, the namespaces (and their
# mounts under /run/netns), the lab's directory. Safe to run twice.
down() {
  local ns p
  for ns in $(ip netns list 2>/dev/null | awk '{print $1}' | grep "^$NS" || true); do
    for p in $(ip netns pids "$ns" 2>/dev/null); do kill -9 "$p" 2>/dev/null || true; done
  done
  for ns in $(ip netns list 2>/dev/null | awk '{print $1}' | grep "^$NS" || true); do
    # A killed process is gone from the namespace only once reaped.
    wait_for 10 "the processes of $ns to exit" ns_empty "$ns" || true
    ip netns del "$ns" 2>/dev/null || true
  done
  rm -rf "$LAB"
}

# leftovers: anything of the lab still there (empty: nothing).
leftovers() {
  ip netns list 2>/dev/null | awk '{print $1}' | grep "^$NS" || true
  grep -s " /run/netns/$NS" /proc/self/mountinfo || true
  [ ! -e "$LAB" ] || echo "$LAB"
}

cmd=${1:-run}
[ "$(id -u)" -eq 0 ] || { echo "lab.sh: needs root (network namespaces)" >&2; exit 1; }
case "$cmd" in
down) down; exit 0 ;;
up | run) ;;
*) echo "lab.sh: unknown command $cmd (want run, up or down)" >&2; exit 2 ;;
esac
for tool in etcd etcdctl haproxy openssl setpriv wrk curl socat; do
  command -v "$tool" >/dev/null || { echo "lab.sh: $tool is missing (apt-get install etcd-server etcd-client haproxy openssl util-linux wrk curl socat)" >&2; exit 1; }
done

for b in registrar templater sampleservice; do
  [ -x "$src/bin/$b" ] || { echo "lab.sh: $src/bin/$b is missing: run make build (make lab does)" >&2; exit 1; }
done

# The Vagrantfile describes the same topology for real VMs; no VM provider
# runs here, but `vagrant validate -p` checks it without one.
if command -v vagrant >/dev/null; then
  vhome=$(mktemp -d)
  if ! (cd "$src" && VAGRANT_HOME="$vhome" VAGRANT_CHECKPOINT_DISABLE=1 vagrant validate -p); then
    rm -rf "$vhome"
    echo "lab.sh: the Vagrantfile does not validate" >&2
    exit 1
  fi
  rm -rf "$vhome"
elif [ -n "${CI:-}" ]; then
  echo "lab.sh: vagrant is missing and CI is set: apt-get install vagrant (to validate the Vagrantfile)" >&2
  exit 1
else
  echo "lab.sh: vagrant is missing: the Vagrantfile was NOT validated (apt-get install vagrant)" >&2
fi

t_start=$(now)
log "removing what a previous lab left behind"
down
# Network namespaces need CAP_SYS_ADMIN and CAP_NET_ADMIN, which an
# unprivileged container lacks: say so loudly; under CI that is a failure.
if ! { ip netns add "${NS}probe" && ip -n "${NS}probe" link add probe0 type bridge; } 2>"$LAB.probe"; then
  ip netns del "${NS}probe" 2>/dev/null || true
  echo "lab.sh: cannot create network namespaces and links here: $(cat "$LAB.probe")" >&2
  rm -f "$LAB.probe"
  if [ -n "${CI:-}" ]; then exit 1; fi
  echo "lab.sh: SKIPPED LOUDLY (not under CI): the lab did not run" >&2
  exit 0
fi
ip netns del "${NS}probe"
rm -f "$LAB.probe"
finish() {
  local rc=$?
  trap - EXIT INT TERM
  log "tearing down"
  if [ "$rc" -ne 0 ] && [ -d "$LAB/log" ]; then
    log "last lines of each log (the lab failed):"
    tail -n 5 "$LAB"/log/*.log >&2 || true
  fi
  if [ -n "${REWIRE_LAB_LOGS:-}" ] && [ -d "$LAB/log" ]; then
    mkdir -p "$REWIRE_LAB_LOGS" && cp -r "$LAB/log/." "$REWIRE_LAB_LOGS/" && log "logs kept in $REWIRE_LAB_LOGS"
  fi
  down
  local left; left=$(leftovers)
  if [ -n "$left" ]; then echo "lab: left behind: $left" >&2; rc=1; fi
  log "down; the lab took $(since "$t_start")s"
  exit "$rc"
}
trap finish EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

up
log "up after $(since "$t_start")s"
if [ "$cmd" = up ]; then
  log "lab is up in namespaces ${NS}*; logs in $LAB/log; Ctrl-C tears it down"
  while :; do sleep 3600 & wait $!; done
fi
run_scenarios
printf '\n== rewire lab summary ==\n'
printf '%s\n' "${RESULTS[@]}"
printf '%d failed; scenarios took %ss\n' "$FAILED" "$(since "$t_start")"
[ "$FAILED" -eq 0 ]
