package haproxy_test

import (
	"reflect"
	"strings"
	"testing"

	"github.com/rewire/rewire/haproxy"
)

// diffBase is the config every Diff case edits.
const diffBase = `global
    maxconn 4096
    stats socket /tmp/admin.sock mode 600 level admin

defaults
    mode http
    timeout connect 5s
    timeout client 30s
    timeout server 30s
    default-server init-addr last,libc,none

frontend fe
    bind 127.0.0.1:8000
    default_backend web

backend web
    balance roundrobin
    http-request set-header X-Forwarded-Prefix /web
    server web-1 10.0.0.11:8080 weight 100
    server web-2 10.0.0.12:8080 weight 50
    server web-3 10.0.0.13:8080 weight 100 disabled  # critical

backend checked
    balance leastconn
    default-server check inter 2s
    server c-1 10.0.1.1:80
    server c-2 10.0.1.2:80 no-check

backend srr
    balance static-rr
    server s-1 10.0.2.1:80

backend ck
    cookie SRV insert indirect nocache
    server k-1 10.0.3.1:80 cookie k1

backend src
    balance source
    server h-1 10.0.4.1:80

backend srcc
    balance source
    hash-type consistent
    server h-1 10.0.4.1:80
`

// edit applies replacements old→new to diffBase, in order; each must
// match.
func edit(t *testing.T, pairs ...string) string {
	t.Helper()
	return editConfig(t, diffBase, pairs...)
}

// editConfig applies replacements old→new to base, in order; each must
// match once at least (the first match is replaced).
func editConfig(t *testing.T, base string, pairs ...string) string {
	t.Helper()
	s := base
	for i := 0; i+1 < len(pairs); i += 2 {
		if !strings.Contains(s, pairs[i]) {
			t.Fatalf("edit: %q not in the base config", pairs[i])
		}
		s = strings.Replace(s, pairs[i], pairs[i+1], 1)
	}
	return s
}

func parse(t *testing.T, text string) *haproxy.Config {
	t.Helper()
	c, err := haproxy.Parse([]byte(text))
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	return c
}

func TestDiffReload(t *testing.T) {
	tests := []struct {
		name   string
		next   string
		reason string // the whole Reason
	}{
		{"global", edit(t, "maxconn 4096", "maxconn 8192"),
			`global: "maxconn 4096" changed to "maxconn 8192" (line 2)`},
		{"defaults", edit(t, "timeout client 30s", "timeout client 31s"),
			`defaults: "timeout client 30s" changed to "timeout client 31s" (line 8)`},
		{"frontend", edit(t, "default_backend web", "default_backend web\n    option httplog"),
			`frontend fe: "option httplog" added (line 15)`},
		{"line removed", edit(t, "    http-request set-header X-Forwarded-Prefix /web\n", ""),
			`backend web: "http-request set-header X-Forwarded-Prefix /web" removed (old line 18)`},
		{"balance", edit(t, "balance roundrobin", "balance leastconn"),
			`backend web: "balance roundrobin" changed to "balance leastconn" (line 17)`},
		{"backend added", diffBase + "\nbackend new\n    server n-1 10.0.9.1:80\n",
			`backend new added`},
		{"backend removed", edit(t, "backend srcc\n    balance source\n    hash-type consistent\n    server h-1 10.0.4.1:80\n", ""),
			`backend srcc removed`},
		{"backend renamed", edit(t, "backend ck", "backend cookie"),
			`backend ck replaced by backend cookie (line 33)`},
		{"static-rr add", edit(t, "    server s-1 10.0.2.1:80\n", "    server s-1 10.0.2.1:80\n    server s-2 10.0.2.2:80\n"),
			`backend srr: server s-2 added (line 32), and backend srr uses static-rr: 2.6 cannot add servers at runtime`},
		{"map hash add", edit(t, "    server h-1 10.0.4.1:80\n", "    server h-1 10.0.4.1:80\n    server h-2 10.0.4.2:80\n"),
			`backend src: server h-2 added (line 40), and backend src uses source with hash-type map-based: 2.6 cannot add servers at runtime`},
		{"static-rr weight", edit(t, "server s-1 10.0.2.1:80", "server s-1 10.0.2.1:80 weight 2"),
			`backend srr: server s-1 (line 31): weight 1 changed to 2, and backend srr uses static-rr: 2.6 cannot change its weights at runtime`},
		{"cookie add", edit(t, "    server k-1 10.0.3.1:80 cookie k1\n", "    server k-1 10.0.3.1:80 cookie k1\n    server k-2 10.0.3.2:80\n"),
			`backend ck: server k-2 added (line 36), and backend ck uses a cookie: a server added at runtime gets none`},
		{"host name add", edit(t, "    server web-2 ", "    server web-4 web-4.example:8080\n    server web-2 "),
			`backend web: server web-4 added (line 20): address web-4.example:8080 is not an IP address: 2.6 does not resolve names at runtime`},
		{"host name addr", edit(t, "server web-1 10.0.0.11:8080", "server web-1 web-1.example:8080"),
			`backend web: server web-1 (line 19): address web-1.example:8080 is not an IP address: 2.6 does not resolve names at runtime`},
		{"port map addr", edit(t, "server web-1 10.0.0.11:8080", "server web-1 10.0.0.11:+1"),
			`backend web: server web-1 (line 19): address 10.0.0.11:+1 is not an IP address: 2.6 does not resolve names at runtime`},
		{"server option", edit(t, "server web-2 10.0.0.12:8080 weight 50", "server web-2 10.0.0.12:8080 weight 50 maxconn 10"),
			`backend web: server web-2 (line 20): options "" changed to "maxconn 10"`},
		{"server option changed", edit(t, "server c-2 10.0.1.2:80 no-check", "server c-2 10.0.1.2:80"),
			`backend checked: server c-2 (line 27): options "no-check" changed to ""`},
		{"default-server", edit(t, "default-server check inter 2s", "default-server check inter 3s"),
			`backend checked: "default-server check inter 2s" changed to "default-server check inter 3s" (line 25)`},
		{"default-server moves", edit(t, "    default-server check inter 2s\n    server c-1 10.0.1.1:80\n", "    server c-1 10.0.1.1:80\n    default-server check inter 2s\n"),
			`backend checked: server c-1 (line 25): default-server options "init-addr last,libc,none check inter 2s" changed to "init-addr last,libc,none"`},
		{"add with refused option", edit(t, "    server web-2 ", "    server web-4 10.0.0.14:8080 redir http://x\n    server web-2 "),
			`backend web: server web-4 added (line 20): option "redir http://x" cannot be given to add server in 2.6`},
		{"add with unknown option", edit(t, "    server web-2 ", "    server web-4 10.0.0.14:8080 frobnicate 3\n    server web-2 "),
			`backend web: server web-4 added (line 20): option "frobnicate 3" cannot be given to add server in 2.6`},
		{"add with quoted option", edit(t, "    server web-2 ", "    server web-4 10.0.0.14:8080 agent-send \"a b\"\n    server web-2 "),
			`backend web: server web-4 added (line 20): option "agent-send \"a b\"" needs quoting, which the runtime API does not take`},
		{"duplicate server", edit(t, "    server web-2 ", "    server web-1 10.0.0.99:8080\n    server web-2 "),
			`backend web: server web-1 declared twice (line 20)`},
	}
	old := parse(t, diffBase)
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			plan, err := haproxy.Diff(old, parse(t, tc.next))
			if err != nil {
				t.Fatal(err)
			}
			if !plan.Reload || plan.Reason != tc.reason || plan.Changes != nil || plan.Commands() != nil {
				t.Errorf("Diff(%s) = %+v\nwant reload: %s", tc.name, plan, tc.reason)
			}
		})
	}
}

func TestDiffChanges(t *testing.T) {
	tests := []struct {
		name string
		next string
		want []string // Change.String() of each change
		cmds []string
	}{
		{"same", diffBase, nil, nil},
		{"comments and spacing", edit(t, "    server web-1 10.0.0.11:8080 weight 100", "\tserver   web-1\t10.0.0.11:8080 weight 100 # comment\n# more\n\n", "maxconn 4096", "maxconn    4096"), nil, nil},
		{"server order", edit(t, "    server web-1 10.0.0.11:8080 weight 100\n    server web-2 10.0.0.12:8080 weight 50\n", "    server web-2 10.0.0.12:8080 weight 50\n    server web-1 10.0.0.11:8080 weight 100\n"), nil, nil},
		{"explicit default weight", edit(t, "server s-1 10.0.2.1:80", "server s-1 10.0.2.1:80 weight 1"), nil, nil},
		{"enabled", edit(t, "weight 100 disabled", "weight 100 disabled enabled"), []string{"set-state web/web-3 ready"},
			[]string{"set server web/web-3 state ready"}},
		{"set addr", edit(t, "10.0.0.11:8080", "10.0.0.21:8081"), []string{"set-addr web/web-1 10.0.0.21:8081"},
			[]string{"set server web/web-1 addr 10.0.0.21 port 8081"}},
		{"set addr ipv6", edit(t, "10.0.0.11:8080", "[2001:db8::11]:8080"), []string{"set-addr web/web-1 [2001:db8::11]:8080"},
			[]string{"set server web/web-1 addr 2001:db8::11 port 8080"}},
		{"set addr no port", edit(t, "10.0.0.11:8080", "10.0.0.11"), []string{"set-addr web/web-1 10.0.0.11"},
			[]string{"set server web/web-1 addr 10.0.0.11 port 0"}},
		{"set addr static-rr", edit(t, "10.0.2.1:80", "10.0.2.9:80"), []string{"set-addr srr/s-1 10.0.2.9:80"},
			[]string{"set server srr/s-1 addr 10.0.2.9 port 80"}},
		{"set weight", edit(t, "10.0.0.12:8080 weight 50", "10.0.0.12:8080 weight 0"), []string{"set-weight web/web-2 0"},
			[]string{"set server web/web-2 weight 0"}},
		{"set weight consistent hash", edit(t, "hash-type consistent\n    server h-1 10.0.4.1:80", "hash-type consistent\n    server h-1 10.0.4.1:80 weight 9"), []string{"set-weight srcc/h-1 9"},
			[]string{"set server srcc/h-1 weight 9"}},
		{"disable", edit(t, "10.0.0.12:8080 weight 50", "10.0.0.12:8080 weight 50 disabled"), []string{"set-state web/web-2 maint"},
			[]string{"set server web/web-2 state maint"}},
		{"disable static-rr", edit(t, "10.0.2.1:80", "10.0.2.1:80 disabled"), []string{"set-state srr/s-1 maint"},
			[]string{"set server srr/s-1 state maint"}},
		{"add", edit(t, "    server web-3 ", "    server web-4 10.0.0.14:8080 weight 100\n    server web-3 "),
			[]string{"add web/web-4 10.0.0.14:8080 weight 100 ready"},
			[]string{"add server web/web-4 10.0.0.14:8080 weight 100", "enable server web/web-4"}},
		{"add ipv6 disabled no port", edit(t, "    server web-3 ", "    server web-4 [2001:db8::14] disabled\n    server web-3 "),
			[]string{"add web/web-4 [2001:db8::14] weight 1 maint"},
			[]string{"add server web/web-4 [2001:db8::14] weight 1"}},
		{"add merges default-server", edit(t, "    server c-2 ", "    server c-3 10.0.1.3:80 weight 7 maxconn 5\n    server c-4 10.0.1.4:80 no-check\n    server c-2 "),
			[]string{"add checked/c-3 10.0.1.3:80 weight 7 ready check inter 2s maxconn 5", "add checked/c-4 10.0.1.4:80 weight 1 ready inter 2s"},
			[]string{"add server checked/c-3 10.0.1.3:80 weight 7 check inter 2s maxconn 5", "enable health checked/c-3", "enable server checked/c-3",
				"add server checked/c-4 10.0.1.4:80 weight 1 inter 2s", "enable server checked/c-4"}},
		{"add consistent hash", edit(t, "hash-type consistent\n    server h-1 10.0.4.1:80", "hash-type consistent\n    server h-1 10.0.4.1:80\n    server h-2 10.0.4.2:80"),
			[]string{"add srcc/h-2 10.0.4.2:80 weight 1 ready"},
			[]string{"add server srcc/h-2 10.0.4.2:80 weight 1", "enable server srcc/h-2"}},
		{"del", edit(t, "    server web-2 10.0.0.12:8080 weight 50\n", ""), []string{"del web/web-2"},
			[]string{"set server web/web-2 state maint", "del server web/web-2"}},
		{"del static-rr and cookie", edit(t, "    server s-1 10.0.2.1:80\n", "", "    server k-1 10.0.3.1:80 cookie k1\n", ""), []string{"del srr/s-1", "del ck/k-1"},
			[]string{"set server srr/s-1 state maint", "del server srr/s-1", "set server ck/k-1 state maint", "del server ck/k-1"}},
		{"everything, in order", edit(t,
			"    server web-1 10.0.0.11:8080 weight 100\n", "",
			"server web-2 10.0.0.12:8080 weight 50", "server web-2 10.0.0.22:8080 weight 60",
			"weight 100 disabled", "weight 100",
			"    server c-1 10.0.1.1:80\n", "    server c-9 10.0.1.9:80\n"),
			[]string{"add checked/c-9 10.0.1.9:80 weight 1 ready check inter 2s", "set-addr web/web-2 10.0.0.22:8080", "set-weight web/web-2 60", "set-state web/web-3 ready", "del web/web-1", "del checked/c-1"},
			[]string{"add server checked/c-9 10.0.1.9:80 weight 1 check inter 2s", "enable health checked/c-9", "enable server checked/c-9",
				"set server web/web-2 addr 10.0.0.22 port 8080", "set server web/web-2 weight 60", "set server web/web-3 state ready",
				"set server web/web-1 state maint", "del server web/web-1", "set server checked/c-1 state maint", "del server checked/c-1"}},
	}
	old := parse(t, diffBase)
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			plan, err := haproxy.Diff(old, parse(t, tc.next))
			if err != nil {
				t.Fatal(err)
			}
			if plan.Reload {
				t.Fatalf("Diff(%s) = reload: %s", tc.name, plan.Reason)
			}
			var got []string
			for _, c := range plan.Changes {
				got = append(got, c.String())
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("Diff(%s) changes = %q, want %q", tc.name, got, tc.want)
			}
			if cmds := plan.Commands(); !reflect.DeepEqual(cmds, tc.cmds) {
				t.Errorf("Diff(%s).Commands() = %q, want %q", tc.name, cmds, tc.cmds)
			}
			if plan.Empty() != (len(tc.want) == 0) {
				t.Errorf("Diff(%s).Empty() = %t", tc.name, plan.Empty())
			}
		})
	}
}

func TestDiffInheritance(t *testing.T) {
	tests := []struct {
		name   string
		cfg    string // backend b gains server n
		reload string // "" for a runtime add
	}{
		{"defaults hash-type consistent", "defaults\n    balance source\n    hash-type consistent\nbackend b\n", ""},
		{"defaults map hash", "defaults\n    balance uri\nbackend b\n", "backend b uses uri with hash-type map-based"},
		{"backend overrides defaults", "defaults\n    balance static-rr\nbackend b\n    balance random\n", ""},
		{"named defaults", "defaults d\n    balance static-rr\ndefaults\n    mode http\nbackend b from d\n", "backend b uses static-rr"},
		{"defaults cookie", "defaults\n    cookie SRV insert\nbackend b\n", "backend b uses a cookie"},
		{"balance hdr", "backend b\n    balance hdr(host)\n", "backend b uses hdr(host) with hash-type map-based"},
		{"balance random(2)", "backend b\n    balance random(2)\n", ""},
		{"balance first", "backend b\n    balance first\n", ""},
		{"unknown balance", "backend b\n    balance sticky\n", "backend b uses balance sticky"},
		{"default-server refused option", "defaults\n    default-server resolvers dns socks4 127.0.0.1:1080\nbackend b\n", `option "socks4 127.0.0.1:1080" cannot be given`},
		{"default-server resolution options dropped", "defaults\n    default-server resolvers dns init-addr none resolve-prefer ipv4\nbackend b\n", ""},
		{"default-server cancelled", "defaults\n    default-server no-check non-stick\nbackend b\n    default-server check ssl verify none\n    server o 10.0.0.1:1 no-ssl\n", ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			old := parse(t, tc.cfg+"    server o 10.0.0.1:1 no-ssl\n")
			if strings.Contains(tc.cfg, "server o") {
				old = parse(t, tc.cfg)
			}
			next := parse(t, old.String()+"    server n 10.0.0.2:2 no-ssl\n")
			plan, err := haproxy.Diff(old, next)
			if err != nil {
				t.Fatal(err)
			}
			switch {
			case tc.reload == "" && plan.Reload:
				t.Errorf("Diff = reload: %s; want a runtime add", plan.Reason)
			case tc.reload != "" && (!plan.Reload || !strings.Contains(plan.Reason, tc.reload)):
				t.Errorf("Diff = %+v; want a reload saying %q", plan, tc.reload)
			case !plan.Reload && (len(plan.Changes) != 1 || plan.Changes[0].Kind != haproxy.KindAdd):
				t.Errorf("Diff = %+v; want one add", plan)
			}
			if tc.name == "default-server cancelled" && !plan.Reload {
				if got, want := plan.Changes[0].Options, []string{"check", "verify none"}; !reflect.DeepEqual(got, want) {
					t.Errorf("add options = %q, want %q", got, want)
				}
			}
		})
	}
	if _, err := haproxy.Diff(nil, parse(t, diffBase)); err == nil {
		t.Errorf("Diff(nil, cfg) = nil error")
	}
}
