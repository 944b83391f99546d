#!/usr/bin/env bash
# etcd users and roles of a rewire deployment (etcd v3 auth). The
# connection comes from etcdctl's environment: ETCDCTL_ENDPOINTS,
# ETCDCTL_CACERT, ETCDCTL_CERT, ETCDCTL_KEY, ETCDCTL_USER (ETCDCTL_API=3).
#
#   etcd-auth.sh [--prefix P] init ROOT_PASSWORD_FILE
#       creates root and turns authentication on
#   etcd-auth.sh [--prefix P] registrar USER PASSWORD_FILE SERVICE[,SERVICE...] [DEPENDENCY,...]
#       writes only P/services/SERVICE/ of its own services; reads P/
#   etcd-auth.sh [--prefix P] templater USER PASSWORD_FILE
#       reads P/, writes nothing
#   etcd-auth.sh [--prefix P] operator USER PASSWORD_FILE
#       reads P/; writes P/maintenance/ and P/expect/ (registrar maint, expect)
#
# PASSWORD_FILE "-": the user has no password and authenticates by the
# common name of its TLS client certificate (etcd --client-cert-auth).
# Passwords go to etcdctl on stdin, never on a command line. Each user gets
# a role of the same name; running a command again adds permissions, it
# removes none. The registrar reads the whole prefix (its watch over the
# registry computes its dependencies' health), so DEPENDENCY adds nothing
# beyond that read today; it is accepted for a narrower role later.
set -euo pipefail
export ETCDCTL_API=3
prefix=/rewire
if [ "${1:-}" = "--prefix" ]; then prefix=${2:?prefix}; shift 2; fi
prefix=${prefix%/}
cmd=${1:?init, registrar, templater or operator}; shift

die() { echo "etcd-auth.sh: $*" >&2; exit 2; }
q() { etcdctl "$@" >/dev/null; }

# add_user USER PASSWORD_FILE: creates the user unless it exists.
add_user() {
  local user=$1 pwfile=$2
  [[ $user =~ ^[a-zA-Z0-9][a-zA-Z0-9._-]*$ ]] || die "user name $user: want letters, digits, . _ -"
  if etcdctl user get "$user" >/dev/null 2>&1; then return 0; fi
  if [ "$pwfile" = "-" ]; then
    q user add "$user" --no-password
  else
    [ -r "$pwfile" ] || die "password file $pwfile is not readable"
    head -n 1 "$pwfile" | q user add "$user" --interactive=false
  fi
}

# role USER: the user's own role, granted to it.
role() {
  etcdctl role get "$1" >/dev/null 2>&1 || q role add "$1"
  q user grant-role "$1" "$1"
}

grant() { # grant ROLE read|write|readwrite KEYPREFIX
  q role grant-permission "$1" --prefix=true "$2" "$3"
}

case "$cmd" in
init)
  pwfile=${1:?ROOT_PASSWORD_FILE}
  [ "$pwfile" != "-" ] || die "root needs a password"
  add_user root "$pwfile"
  etcdctl role get root >/dev/null 2>&1 || q role add root
  q user grant-role root root
  etcdctl auth enable >/dev/null
  ;;
registrar)
  user=${1:?USER} pwfile=${2:?PASSWORD_FILE} services=${3:?SERVICE[,SERVICE...]}
  add_user "$user" "$pwfile"
  role "$user"
  grant "$user" read "$prefix/"
  IFS=, read -ra list <<< "$services"
  for s in "${list[@]}"; do
    [[ $s =~ ^[a-z0-9][a-z0-9._-]{0,62}$ ]] || die "service name $s: want ^[a-z0-9][a-z0-9._-]{0,62}\$"
    grant "$user" readwrite "$prefix/services/$s/"
    # Its local API puts its own services in and out of maintenance.
    q role grant-permission "$user" readwrite "$prefix/maintenance/$s"
    grant "$user" readwrite "$prefix/maintenance/$s/"
  done
  ;;
templater)
  user=${1:?USER} pwfile=${2:?PASSWORD_FILE}
  add_user "$user" "$pwfile"
  role "$user"
  grant "$user" read "$prefix/"
  ;;
operator)
  user=${1:?USER} pwfile=${2:?PASSWORD_FILE}
  add_user "$user" "$pwfile"
  role "$user"
  grant "$user" read "$prefix/"
  grant "$user" readwrite "$prefix/maintenance/"
  grant "$user" readwrite "$prefix/expect/"
  ;;
*) die "unknown command $cmd (want init, registrar, templater or operator)" ;;
esac
