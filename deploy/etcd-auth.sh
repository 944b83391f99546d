#!/usr/bin/env bash
# etcd-auth.sh: create rewire's etcd users and least-privilege roles for one
# key prefix. Every subcommand is idempotent: run it again with other
# arguments and the role converges to exactly what the arguments say.
#
#   etcd-auth.sh [--prefix P] init ROOT_PASSWORD_FILE
#   etcd-auth.sh [--prefix P] registrar USER PASSWORD_FILE SERVICE[,SERVICE...] [DEPENDENCY,...]
#   etcd-auth.sh [--prefix P] templater USER PASSWORD_FILE
#   etcd-auth.sh [--prefix P] operator  USER PASSWORD_FILE
#
# The connection comes entirely from etcdctl's own environment variables:
# ETCDCTL_ENDPOINTS, ETCDCTL_CACERT, ETCDCTL_CERT, ETCDCTL_KEY and
# ETCDCTL_USER (root, or root:password; ETCDCTL_PASSWORD also works). After
# auth is enabled every subcommand needs root; `init` uses the root
# password from its file when ETCDCTL_USER is not set.
#
# A PASSWORD_FILE holds the password on its first line (no whitespace).
# PASSWORD_FILE `-` creates the user without a password: it authenticates
# with a TLS client certificate whose CN is the user name (etcd runs with
# --client-cert-auth). Roles (P is the prefix, default /rewire):
#
#   registrar  readwrite P/services/<service>/ and P/maintenance/<service>/
#              for each SERVICE; read P/services/<dependency>/ for each
#              DEPENDENCY, P/maintenance/ and P/expect/      (role <p>-registrar-USER)
#   templater  read P/                                         (role <p>-templater)
#   operator   read P/; readwrite P/maintenance/, P/expect/  (role <p>-operator)
#
# where <p> is the prefix without slashes ("/rewire" -> "rewire"). See
# docs/SECURITY.md for why each permission is there.
set -euo pipefail

export ETCDCTL_API=3
prefix=/rewire

die() {
	echo "etcd-auth.sh: $*" >&2
	exit 2
}

usage() {
	sed -n '2,9p' "$0" | sed 's/^# \{0,1\}//' >&2
	exit 2
}

# ctl runs etcdctl quietly: etcdctl 3.4 logs every retry as JSON on stderr,
# so stderr is shown only when the command fails.
ctl() {
	local out err rc=0
	err=$(mktemp)
	out=$(etcdctl "$@" 2>"$err") || rc=$?
	if [ "$rc" -ne 0 ]; then
		grep -v '"level":"warn"' "$err" >&2 || true
		rm -f "$err"
		echo "etcd-auth.sh: etcdctl $1 $2 failed" >&2
		return "$rc"
	fi
	rm -f "$err"
	[ -z "$out" ] || printf '%s\n' "$out"
}

# exists KIND NAME: whether a user or role exists.
exists() { etcdctl "$1" get "$2" >/dev/null 2>&1; }

# password FILE: the first line of FILE.
password() {
	[ -r "$1" ] || die "password file $1: not readable"
	local pw
	IFS= read -r pw <"$1" || true
	[ -n "$pw" ] || die "password file $1: empty"
	case "$pw" in *[[:space:]]*) die "password file $1: the password contains whitespace" ;; esac
	printf '%s' "$pw"
}

# ensure_user USER PASSWORD_FILE: create the user, or set its password.
ensure_user() {
	local user=$1 file=$2
	if [ "$file" = - ]; then
		exists user "$user" || ctl user add "$user" --no-password >/dev/null
		return
	fi
	local pw
	pw=$(password "$file")
	# The password goes through stdin, never the command line (ps).
	if exists user "$user"; then
		printf '%s\n' "$pw" | ctl user passwd "$user" --interactive=false >/dev/null
	else
		printf '%s\n' "$pw" | ctl user add "$user" --interactive=false >/dev/null
	fi
}

# ensure_role ROLE PERM...: make ROLE hold exactly PERMs, each
# "read|write|readwrite KEY" for the prefix KEY. New permissions are granted
# before stale ones are revoked, so a running daemon never loses access it
# keeps.
ensure_role() {
	local role=$1
	shift
	exists role "$role" || ctl role add "$role" >/dev/null
	local p want=" "
	for p in "$@"; do
		# shellcheck disable=SC2086 # "TYPE KEY" splits on purpose
		ctl role grant-permission --prefix "$role" $p >/dev/null
		want+="${p#* } "
	done
	local line key end
	while IFS= read -r line; do
		case "$line" in
		$'\t['*)
			line=${line#$'\t['}
			key=${line%%, *}
			end=${line#*, }
			end=${end%%)*}
			;;
		$'\t'*)
			key=${line#$'\t'}
			end=""
			;;
		*) continue ;;
		esac
		case "$want" in *" $key "*) [ -n "$end" ] && continue ;; esac
		if [ -n "$end" ]; then
			ctl role revoke-permission "$role" "$key" "$end" >/dev/null 2>&1 || true
		else
			ctl role revoke-permission "$role" "$key" >/dev/null 2>&1 || true
		fi
	done < <(ctl role get "$role")
}

# grant USER ROLE: give USER the role (user grant-role is idempotent).
grant() { ctl user grant-role "$1" "$2" >/dev/null; }

# name: the role-name stem for the prefix ("/rewire" -> "rewire").
name() {
	local n=${prefix#/}
	n=${n%/}
	printf '%s' "${n//\//-}"
}

# valid NAME: the key schema's name rule, which keeps keys unambiguous.
valid() { [[ $1 =~ ^[a-z0-9][a-z0-9._-]{0,62}$ ]] || die "invalid name \"$1\": must match ^[a-z0-9][a-z0-9._-]{0,62}\$"; }

cmd_init() {
	[ $# -eq 1 ] || usage
	# Before auth is enabled etcd accepts anonymous requests; afterwards,
	# with no ETCDCTL_USER, log in as root with the given password.
	if [ -z "${ETCDCTL_USER:-}" ] && ! etcdctl user list >/dev/null 2>&1 && [ "$1" != - ]; then
		export ETCDCTL_USER=root
		ETCDCTL_PASSWORD=$(password "$1")
		export ETCDCTL_PASSWORD
	fi
	ensure_user root "$1"
	grant root root
	ensure_role "$(name)-templater" "read $prefix/"
	ensure_role "$(name)-operator" "read $prefix/" "readwrite $prefix/maintenance/" "readwrite $prefix/expect/"
	ctl auth enable >/dev/null
	echo "etcd-auth.sh: auth enabled; roles $(name)-templater and $(name)-operator ready"
}

cmd_registrar() {
	[ $# -eq 3 ] || [ $# -eq 4 ] || usage
	local user=$1 file=$2 s perms=()
	valid "$user"
	local -a services deps=()
	IFS=, read -r -a services <<<"$3"
	[ ${#services[@]} -gt 0 ] || die "no services given"
	[ $# -eq 3 ] || IFS=, read -r -a deps <<<"$4"
	for s in "${services[@]}"; do
		valid "$s"
		perms+=("readwrite $prefix/services/$s/" "readwrite $prefix/maintenance/$s/")
	done
	for s in "${deps[@]}"; do
		valid "$s"
		case " ${services[*]} " in *" $s "*) continue ;; esac
		perms+=("read $prefix/services/$s/")
	done
	perms+=("read $prefix/maintenance/" "read $prefix/expect/")
	ensure_user "$user" "$file"
	ensure_role "$(name)-registrar-$user" "${perms[@]}"
	grant "$user" "$(name)-registrar-$user"
	echo "etcd-auth.sh: user $user: role $(name)-registrar-$user for ${services[*]}"
}

cmd_reader() {
	local role=$1
	shift
	[ $# -eq 2 ] || usage
	valid "$1"
	exists role "$(name)-$role" || die "role $(name)-$role missing: run init first"
	ensure_user "$1" "$2"
	grant "$1" "$(name)-$role"
	echo "etcd-auth.sh: user $1: role $(name)-$role"
}

main() {
	while [ $# -gt 0 ]; do
		case "$1" in
		--prefix)
			[ $# -ge 2 ] || usage
			prefix=$2
			shift 2
			;;
		--prefix=*)
			prefix=${1#--prefix=}
			shift
			;;
		*) break ;;
		esac
	done
	prefix="/${prefix#/}"
	prefix="${prefix%/}"
	[ "$prefix" != / ] && [ -n "$prefix" ] || die "--prefix must not be empty"
	command -v etcdctl >/dev/null || die "etcdctl not found (apt-get install etcd-client)"
	[ $# -ge 1 ] || usage
	local cmd=$1
	shift
	case "$cmd" in
	init) cmd_init "$@" ;;
	registrar) cmd_registrar "$@" ;;
	templater) cmd_reader templater "$@" ;;
	operator) cmd_reader operator "$@" ;;
	*) usage ;;
	esac
}

main "$@"
