# shellcheck shell=bash
# The lab's scenarios (deploy/lab/lab.sh): each asserts its outcome through
# pass/fail and notes what it measured.

# The guards expected to hold the removal when a whole app host dies. app2
# runs the only db instance and 3 of the registry's 5 instances, so with
# deploy/config/templater.yaml's guards the removal is held: by
# mass_expiry (3 of 5 > 50%), or by min_servers (db would go from 1 to
# 0) where the templater counts a vanished service against min_servers.
HOST_DEATH_GUARDS="mass_expiry min_servers"

ADMIN_SOCK=$LAB/hosts/lb1/run/haproxy/rewire-admin.sock
RENDERED=$LAB/hosts/lb1/etc/haproxy/rewire/haproxy.cfg

# lb_state: haproxy's live servers: "backend server op_state admin_state".
lb_state() {
  echo "show servers state" | on lb1 socat -t 5 - "UNIX-CONNECT:$ADMIN_SOCK" |
    awk '$1 ~ /^[0-9]+$/ && NF > 6 {print $2, $4, $6, $7}'
}

# in_lb ID: haproxy routes to server ID: running, not in maintenance (admin
# state bits 0x01, 0x02, 0x20) nor draining (0x08, 0x10). 0x04 only says the
# file once had it disabled.
in_lb() {
  lb_state | awk -v id="$1" '$2 == id && $3 == 2 {
      a = $4; if (a % 2 || int(a / 2) % 2 || int(a / 8) % 2 || int(a / 16) % 2 || int(a / 32) % 2) next; f = 1
    } END {exit !f}'
}

# ids HOST: the instance ids of HOST's services (registrar default: node-port).
ids() { local s; for s in ${SERVICES[$1]//,/ }; do echo "$1-${REWIRE_PORT[$s]}"; done; }

all_in_lb() { local h i; for h in app1 app2; do for i in $(ids "$h"); do in_lb "$i" || return 1; done; done; }
none_in_lb() { local i; for i in $(ids "$1"); do ! lb_state | awk '{print $2}' | grep -qx "$i" || return 1; done; }
not_in_lb() { ! in_lb "$1"; }
lb_has() { lb_state | awk -v id="$1" '$2 == id {f=1} END {exit !f}'; }
in_file() { grep -q "server $1 " "$RENDERED"; }

# registrations HOST: "key lease" of each of HOST's records in etcd.
registrations() {
  ectl get /rewire/services/ --prefix -w fields | awk -F' : ' -v h="$1" '
    /^"Key"/ {k=$2} /^"Lease"/ && k ~ "/" h "-" {print k, $2}'
}
no_registrations() { [ -z "$(registrations "$1")" ]; }

# status FIELD: a field of the templater's first template in /v1/status.
status() { on lb1 curl -fsS http://127.0.0.1:9702/v1/status | grep -o "\"$1\": *\"[^\"]*\"" | head -n 1 | sed 's/.*: *"//; s/"$//'; }

# load_start NAME SECONDS: wrk from the client host against /web/.
load_start() {
  on client wrk -t1 -c8 -d"$2s" --timeout 3s "$LB_URL/web/" > "$LAB/load-$1.txt" 2>&1 &
  LOAD_PID=$!
  wait_for 5 "wrk to start" wrk_running
}
wrk_running() { [ -n "$(pids_of client wrk)" ]; }
# load_wait NAME: waits for wrk, then sets LOAD_REQS and LOAD_FAILED
# (socket errors + non-2xx answers).
load_wait() {
  wait "$LOAD_PID" || true
  local f=$LAB/load-$1.txt
  LOAD_REQS=$(awk '/requests in/ {print $1}' "$f")
  LOAD_FAILED=$(awk '/Socket errors/ {gsub(/,/, ""); n += $4 + $6 + $8 + $10} /Non-2xx/ {n += $5} END {print n + 0}' "$f")
}

# probe_batch N PATH: N requests in parallel; prints how many failed.
probe_batch() {
  local i n=0
  for i in $(seq 1 "$1"); do
    on client curl -fsS -o /dev/null --max-time 3 "$LB_URL$2" > "$LAB/probe.$i" 2>&1 &
  done
  wait
  for i in $(seq 1 "$1"); do [ ! -s "$LAB/probe.$i" ] || n=$((n + 1)); done
  rm -f "$LAB"/probe.*
  echo "$n"
}

file_sum() { sha256sum "$RENDERED" | cut -c1-16; }

s_reach_both() {
  local i out a1=0 a2=0 bad=0
  for i in $(seq 1 20); do
    if out=$(on client curl -fsS --max-time 5 "$LB_URL/web/"); then
      case "$out" in *app1*) a1=$((a1 + 1)) ;; *app2*) a2=$((a2 + 1)) ;; esac
    else bad=$((bad + 1)); fi
  done
  note "reach: 20 requests to /web/: $a1 from app1, $a2 from app2, $bad failed"
  check "requests through the LB reach both app hosts" test "$a1" -gt 0 -a "$a2" -gt 0 -a "$bad" -eq 0
  out=$(on client curl -fsS --max-time 5 "$LB_URL/web/chain" | tr '\n' ' ') || true
  note "chain: $out"
  check "web → api → db answers through the LB" grep -q "db on app2" <<< "$out"
}

s_link_cut() {
  local t0 gone back
  t0=$(now)
  link app1 down
  if wait_for $((LEASE_TTL + 10)) "app1's instances to leave haproxy" none_in_lb app1; then
    gone=$(since "$t0")
    note "link cut: app1's instances left haproxy after ${gone}s (lease TTL ${LEASE_TTL}s)"
    check "app1's instances leave the LB within the lease TTL (+2s for the render)" \
      awk -v g="$gone" -v l="$LEASE_TTL" 'BEGIN{exit !(g <= l + 2)}'
    check "app1's servers are gone from the rendered file" bash -c "! grep -q 'server app1-' '$RENDERED'"
  else
    fail "app1's instances leave the LB within the lease TTL"
  fi
  t0=$(now)
  link app1 up
  if wait_for 60 "app1's instances back in haproxy" all_in_lb; then
    back=$(since "$t0")
    note "link restored: app1's instances back in haproxy after ${back}s"
    pass "app1's instances come back after the link returns"
  else
    fail "app1's instances come back after the link returns"
  fi
}

# etcd_leader: the name of the member that leads.
etcd_leader() {
  local e
  for e in "${ETCDS[@]}"; do
    ECTL_ENDPOINTS="${IP[$e]}:2379" ectl --dial-timeout=300ms --command-timeout=1s endpoint status -w simple 2>/dev/null |
      awk -F', ' '$5 == "true" {f=1} END {exit !f}' && { echo "$e"; return 0; }
  done
  return 1
}

leader_other_than() { local l; l=$(etcd_leader) && [ "$l" != "$1" ]; }

s_leader_kill() {
  local leader sum regs t0 elected
  leader=$(etcd_leader) || { fail "etcd has a leader"; return; }
  sum=$(file_sum)
  regs=$(registrations app1; registrations app2)
  load_start leader 15
  t0=$(now)
  # shellcheck disable=SC2046 # one pid per word
  kill -9 $(pids_of "$leader" etcd)
  wait_for 30 "a new etcd leader" leader_other_than "$leader" || true
  elected=$(etcd_leader || echo none)
  note "leader kill: killed $leader; $elected leads after $(since "$t0")s"
  etcd_start "$leader"
  wait_for 60 "etcd's three members after the restart" ectl endpoint health || true
  load_wait leader
  note "leader kill: $LOAD_REQS requests under load, $LOAD_FAILED failed"
  check "leader kill: a new leader is elected" test "$elected" != none -a "$elected" != "$leader"
  check "leader kill: no failed request" test "$LOAD_FAILED" -eq 0 -a "${LOAD_REQS:-0}" -gt 0
  check "leader kill: rendered file unchanged" test "$(file_sum)" = "$sum"
  check "leader kill: no registration lost (same keys, same leases)" test "$(registrations app1; registrations app2)" = "$regs"
}

s_templater_restart() {
  local sum pid t0
  sum=$(file_sum)
  load_start templater 10
  pid=$(pids_of lb1 templater)
  t0=$(now)
  kill -TERM "$pid"
  wait_for 20 "the templater to stop" bash -c "! kill -0 $pid 2>/dev/null" || true
  templater_start
  wait_for 20 "the templater to serve" on lb1 curl -fsS http://127.0.0.1:9702/healthz || true
  note "templater restart: stopped and serving again after $(since "$t0")s"
  load_wait templater
  note "templater restart: $LOAD_REQS requests under load, $LOAD_FAILED failed"
  check "templater restart under load: 0 failed requests" test "$LOAD_FAILED" -eq 0 -a "${LOAD_REQS:-0}" -gt 0
  check "templater restart: rendered file unchanged" test "$(file_sum)" = "$sum"
}

# registrar_as CN ARGS...: the registrar's CLI with CN's certificate.
registrar_as() {
  local cn=$1; shift
  on client env REWIRE_ETCD="$ENDPOINTS" REWIRE_CACERT="$LAB/pki/ca.crt" REWIRE_CERT="$LAB/pki/$cn.crt" \
    REWIRE_KEY="$LAB/pki/$cn.key" "$(rewire_bin)/registrar" "$@"
}

# denied OUTFILE CMD...: CMD fails, and etcd says why.
denied() {
  local out=$1; shift
  ! "$@" > "$out" 2>&1 && grep -qi "permission denied" "$out"
}

s_rbac() {
  local o=$LAB/rbac.out
  check "rbac: registrar-app1 (web, api) cannot write db's keys" \
    denied "$o" ectl_as registrar-app1 put /rewire/services/db/app1-9999 '{}'
  note "rbac: etcd answered: $(tail -n 1 "$o")"
  check "rbac: registrar-app1 cannot put a service in maintenance it does not run" \
    denied "$o" ectl_as registrar-app1 put /rewire/maintenance/db '{}'
  check "rbac: registrar-app1 cannot set expectations (operator's right)" \
    denied "$o" registrar_as registrar-app1 expect web 2
  check "rbac: the templater's identity cannot write" \
    denied "$o" ectl_as templater-lb1 put /rewire/services/web/x '{}'
  check "rbac: the operator can set an expectation" registrar_as operator expect web 2 >/dev/null
  check "rbac: the operator cannot write instance records" \
    denied "$o" ectl_as operator put /rewire/services/web/x '{}'
  registrar_as operator expect web 0 >/dev/null 2>&1 || true
  # grep -f: the password never appears on a command line, not even grep's.
  local leaks=0 f
  ps -eo args > "$LAB/ps.txt"
  on lb1 curl -fsS http://127.0.0.1:9702/v1/status > "$LAB/status.json"
  for f in "$LAB/pki/root.password" "$LAB/pki/templater-lb1.password"; do
    grep -qF -f "$f" "$LAB/ps.txt" && leaks=$((leaks + 1))
    grep -rqF -f "$f" "$LAB/log" && leaks=$((leaks + 1))
    grep -qF -f "$f" "$LAB/status.json" && leaks=$((leaks + 1))
  done
  check "secrets: no password in process lists, logs or the status page" test "$leaks" -eq 0
}

# s_propagation: an operator's maintenance flag, from the etcdctl-level
# write to haproxy's live state, across the TLS cluster (a sizing number).
s_propagation() {
  local t0 on off
  t0=$(now)
  registrar_as operator maint enable web/app1-8080 --reason "lab: propagation" >/dev/null 2>&1
  wait_for 10 "app1-8080 in maintenance in haproxy" not_in_lb app1-8080 || true
  on=$(since "$t0")
  t0=$(now)
  registrar_as operator maint disable web/app1-8080 >/dev/null 2>&1
  wait_for 10 "app1-8080 routable again" in_lb app1-8080 || true
  off=$(since "$t0")
  note "propagation: maintenance on → haproxy ${on}s, off → haproxy ${off}s (CLI start to live state)"
  check "propagation: maintenance reaches haproxy and leaves it" in_lb app1-8080
}

# back_in_lb: every instance passing in the file and routable in haproxy,
# and no guard holding anything.
back_in_lb() {
  local h i
  not_held || return 1
  for h in app1 app2; do for i in $(ids "$h"); do grep -q "server $i .*# passing" "$RENDERED" || return 1; done; done
  all_in_lb
}
not_held() { [ -z "$(status held_by)" ]; }
held_as_expected() { local g; g=$(status held_by); [ -n "$g" ] && [[ " $HOST_DEATH_GUARDS " == *" $g "* ]]; }

s_host_death() {
  local t0 p expired
  t0=$(now)
  for p in $(ip netns pids "${NS}app2"); do kill -9 "$p"; done
  link app2 down
  if wait_for $((LEASE_TTL + 10)) "app2's registrations to expire" no_registrations app2; then
    expired=$(since "$t0")
    note "host death: app2's registrations expired after ${expired}s"
  else
    fail "host death: app2's registrations expire"
  fi
  if wait_for 5 "a guard to hold the removal" held_as_expected; then
    pass "host death: the removal is held by $(status held_by) (expected one of: $HOST_DEATH_GUARDS)"
    note "host death: held: $(status held)"
  else
    fail "host death: the removal is held by one of: $HOST_DEATH_GUARDS (status held_by: '$(status held_by)')"
  fi
  check "host death: app2's servers stay in the rendered file while held" in_file app2-8082
  # What holding costs: haproxy keeps sending app2's share to a dead host
  # (the example template has no active health checks).
  note "host death: while held, $(probe_batch 10 /web/) of 10 requests to /web/ failed (3s timeout each)"
  check "host death: and in haproxy" lb_has app2-8082
  t0=$(now)
  link app2 up
  app_up app2
  app_services_up app2
  if wait_for 90 "app2 back, passing, in haproxy" back_in_lb; then
    note "host death: app2 back in haproxy $(since "$t0")s after it was restarted"
    pass "host death: app2's instances return when it does"
  else
    fail "host death: app2's instances return when it does"
  fi
  check "host death: the hold clears" not_held
}

# metric NAME: the sum of an etcd metric over the three members.
metric() {
  local e sum=0 v
  for e in "${ETCDS[@]}"; do
    v=$(on client curl -fsS --max-time 3 --cacert "$LAB/pki/ca.crt" --cert "$LAB/pki/root.crt" --key "$LAB/pki/root.key" \
      "https://${IP[$e]}:2379/metrics" | awk -v n="$1" '$1 == n {print $2}')
    sum=$(awk -v a="$sum" -v b="${v:-0}" 'BEGIN{printf "%.0f", a + b}')
  done
  echo "$sum"
}

# s_sizing: what the steady lab costs etcd, over a 10 s measurement window
# (numbers for docs/OPERATIONS.md's sizing section).
s_sizing() {
  local w0 p0 r0 w1 p1 r1
  w0=$(metric etcd_debugging_mvcc_watcher_total)
  p0=$(metric etcd_server_proposals_committed_total) r0=$(metric etcd_debugging_lease_renewed_total)
  sleep 10 # the measurement window, not a wait for anything
  w1=$(metric etcd_debugging_mvcc_watcher_total)
  p1=$(metric etcd_server_proposals_committed_total) r1=$(metric etcd_debugging_lease_renewed_total)
  note "sizing: $w1 watchers on the cluster for 3 daemons (2 registrars, 1 templater), $w0 before the window"
  note "sizing: steady state over 10s: $(( (p1 - p0) / 3 )) raft proposals per member, $((r1 - r0)) lease renewals (2 leases: one per registrar, renewed every TTL/3 = ${LEASE_TTL}s/3)"
  local n bytes
  n=$(ectl get /rewire/services/ --prefix --keys-only | grep -c .)
  bytes=$(ectl get /rewire/services/ --prefix --print-value-only | grep . | wc -c)
  note "sizing: $n instance records, $((bytes / (n > 0 ? n : 1))) bytes each on average (2 checks' outputs included)"
  check "sizing: the steady registry costs etcd no writes" test $(( (p1 - p0) / 3 )) -le 1
}

run_scenarios() {
  local s
  for s in reach_both rbac propagation leader_kill templater_restart link_cut host_death; do
    log "scenario $s"
    "s_$s" || fail "scenario $s stopped early"
  done
  check "at the end every instance is passing and routable" back_in_lb
  s_sizing
  registrar_as operator ls > "$LAB/ls.txt" 2>&1 || true
  note "registrar ls at the end:"
  while IFS= read -r l; do note "  $l"; done < "$LAB/ls.txt"
}
