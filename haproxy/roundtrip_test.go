package haproxy_test

import (
	"errors"
	"os"
	"reflect"
	"strings"
	"testing"

	"github.com/rewire/rewire/haproxy"
)

// rtBase is the config haproxy starts with in each round trip. Its second
// defaults section is the example template's.
const rtBase = `
defaults
    mode http
    timeout connect 5s
    timeout client 30s
    timeout server 30s
    default-server init-addr last,libc,none

frontend fe
    bind unix@{dir}/fe.sock
    default_backend web

backend web
    balance roundrobin
    server web-1 127.0.0.1:9001 weight 100
    server web-2 127.0.0.1:9002 weight 50
    server web-3 127.0.0.1:9003 weight 100 disabled
    server web-6 [::1]:9006 weight 10

backend checked
    balance leastconn
    default-server check inter 1h
    server c-1 127.0.0.1:9101
    server c-2 127.0.0.1:9102 no-check

backend srr
    balance static-rr
    server s-1 127.0.0.1:9201
    server s-2 127.0.0.1:9202

backend hashed
    balance source
    hash-type consistent
    server h-1 127.0.0.1:9301
`

// rtEdit applies replacements old→new to rtBase (see editConfig).
func rtEdit(t *testing.T, pairs ...string) string {
	t.Helper()
	return editConfig(t, rtBase, pairs...)
}

// TestRoundTrip starts haproxy on rtBase, diffs it with an edited config,
// applies the plan through the runtime API and checks with Verify that
// haproxy now runs the new config's servers. It then writes the new file
// and reloads: Verify must still pass, so the runtime changes equal what
// a reload would have given.
func TestRoundTrip(t *testing.T) {
	tests := []struct {
		name  string
		next  string
		kinds []haproxy.ChangeKind
	}{
		{"set addr", rtEdit(t, "127.0.0.1:9001", "127.0.0.11:9011"), []haproxy.ChangeKind{haproxy.KindSetAddr}},
		{"set addr ipv6", rtEdit(t, "[::1]:9006", "[::2]:9016"), []haproxy.ChangeKind{haproxy.KindSetAddr}},
		{"set addr ipv4 to ipv6", rtEdit(t, "127.0.0.1:9001", "[::1]:9001"), []haproxy.ChangeKind{haproxy.KindSetAddr}},
		{"set addr drop port", rtEdit(t, "127.0.0.1:9002", "127.0.0.2"), []haproxy.ChangeKind{haproxy.KindSetAddr}},
		{"set addr static-rr", rtEdit(t, "127.0.0.1:9201", "127.0.0.21:9201"), []haproxy.ChangeKind{haproxy.KindSetAddr}},
		{"set weight", rtEdit(t, "9002 weight 50", "9002 weight 0", "9006 weight 10", "9006 weight 256"), []haproxy.ChangeKind{haproxy.KindSetWeight, haproxy.KindSetWeight}},
		{"set weight consistent hash", rtEdit(t, "server h-1 127.0.0.1:9301", "server h-1 127.0.0.1:9301 weight 30"), []haproxy.ChangeKind{haproxy.KindSetWeight}},
		{"enable", rtEdit(t, "weight 100 disabled", "weight 100"), []haproxy.ChangeKind{haproxy.KindSetState}},
		{"disable", rtEdit(t, "9002 weight 50", "9002 weight 50 disabled"), []haproxy.ChangeKind{haproxy.KindSetState}},
		{"disable static-rr", rtEdit(t, "server s-1 127.0.0.1:9201", "server s-1 127.0.0.1:9201 disabled"), []haproxy.ChangeKind{haproxy.KindSetState}},
		{"add", rtEdit(t, "    server web-6", "    server web-4 127.0.0.1:9004 weight 40\n    server web-6"), []haproxy.ChangeKind{haproxy.KindAdd}},
		{"add ipv6 no port", rtEdit(t, "    server web-6", "    server web-5 [::1]\n    server web-6"), []haproxy.ChangeKind{haproxy.KindAdd}},
		{"add disabled", rtEdit(t, "    server web-6", "    server web-4 127.0.0.1:9004 disabled\n    server web-6"), []haproxy.ChangeKind{haproxy.KindAdd}},
		{"add with default-server check", rtEdit(t, "    server c-2", "    server c-3 127.0.0.1:9103 weight 3\n    server c-4 127.0.0.1:9104 no-check\n    server c-2"), []haproxy.ChangeKind{haproxy.KindAdd, haproxy.KindAdd}},
		{"add consistent hash", rtEdit(t, "server h-1 127.0.0.1:9301", "server h-1 127.0.0.1:9301\n    server h-2 127.0.0.1:9302"), []haproxy.ChangeKind{haproxy.KindAdd}},
		{"del", rtEdit(t, "    server web-2 127.0.0.1:9002 weight 50\n", ""), []haproxy.ChangeKind{haproxy.KindDel}},
		{"del disabled", rtEdit(t, "    server web-3 127.0.0.1:9003 weight 100 disabled\n", ""), []haproxy.ChangeKind{haproxy.KindDel}},
		{"del checked", rtEdit(t, "    server c-1 127.0.0.1:9101\n", ""), []haproxy.ChangeKind{haproxy.KindDel}},
		{"del static-rr", rtEdit(t, "    server s-2 127.0.0.1:9202\n", ""), []haproxy.ChangeKind{haproxy.KindDel}},
		{"replace every server", rtEdit(t,
			"    server web-1 127.0.0.1:9001 weight 100\n    server web-2 127.0.0.1:9002 weight 50\n    server web-3 127.0.0.1:9003 weight 100 disabled\n    server web-6 [::1]:9006 weight 10\n",
			"    server web-7 127.0.0.1:9007\n    server web-8 [::1]:9008 weight 80\n"),
			[]haproxy.ChangeKind{haproxy.KindAdd, haproxy.KindAdd, haproxy.KindDel, haproxy.KindDel, haproxy.KindDel, haproxy.KindDel}},
		{"everything", rtEdit(t,
			"127.0.0.1:9001 weight 100", "127.0.0.31:9031 weight 101",
			"9002 weight 50", "9002 weight 50 disabled",
			"weight 100 disabled", "weight 100",
			"    server web-6 [::1]:9006 weight 10\n", "",
			"    server c-2", "    server c-5 [::1]:9105 weight 5\n    server c-2",
			"server s-1 127.0.0.1:9201", "server s-1 127.0.0.41:9241 disabled"),
			[]haproxy.ChangeKind{haproxy.KindAdd, haproxy.KindSetAddr, haproxy.KindSetWeight, haproxy.KindSetState, haproxy.KindSetState, haproxy.KindSetAddr, haproxy.KindSetState, haproxy.KindDel}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			l := newLab(t, rtBase)
			old, next := l.parse(rtBase), l.parse(tc.next)
			plan, err := haproxy.Diff(old, next)
			if err != nil || plan.Reload {
				t.Fatalf("Diff = %+v, %v; want runtime changes", plan, err)
			}
			var kinds []haproxy.ChangeKind
			for _, c := range plan.Changes {
				kinds = append(kinds, c.Kind)
			}
			if !reflect.DeepEqual(kinds, tc.kinds) {
				t.Fatalf("Diff changes = %v, want kinds %v", plan.Changes, tc.kinds)
			}
			if err := haproxy.Verify(ctx(t), l.client, old); err != nil {
				t.Fatalf("Verify(old) before Apply: %v", err)
			}
			if err := haproxy.Verify(ctx(t), l.client, next); !errors.Is(err, haproxy.ErrMismatch) {
				t.Fatalf("Verify(next) before Apply = %v, want ErrMismatch", err)
			}
			if err := l.client.Apply(ctx(t), plan); err != nil {
				t.Fatalf("Apply(%q): %v", plan.Commands(), err)
			}
			if err := haproxy.Verify(ctx(t), l.client, next); err != nil {
				t.Fatalf("Verify(next) after Apply(%q): %v", plan.Commands(), err)
			}
			l.write(tc.next)
			if err := l.proc.Reload(); err != nil {
				t.Fatal(err)
			}
			if err := haproxy.Verify(ctx(t), l.client, next); err != nil {
				t.Fatalf("Verify(next) after reloading with it: %v", err)
			}
		})
	}
}

// TestRoundTripReload checks on a real haproxy that what Diff sends to a
// reload is indeed refused by the runtime API, or must not be done there.
func TestRoundTripReload(t *testing.T) {
	l := newLab(t, rtBase)
	old := l.parse(rtBase)
	tests := []struct {
		name string
		next string
		cmd  string // what the runtime API would have had to do
		want error  // and how 2.6 refuses it; nil: accepted, but wrong
	}{
		{"static-rr add", rtEdit(t, "    server s-2", "    server s-3 127.0.0.1:9203\n    server s-2"), "add server srr/s-3 127.0.0.1:9203", haproxy.ErrStaticBackend},
		{"static-rr weight", rtEdit(t, "server s-1 127.0.0.1:9201", "server s-1 127.0.0.1:9201 weight 7"), "set server srr/s-1 weight 7", haproxy.ErrStaticBackend},
		{"host name", rtEdit(t, "127.0.0.1:9001", "localhost:9001"), "set server web/web-1 addr localhost port 9001", haproxy.ErrInvalidArgument},
		{"init-addr on a host name", rtEdit(t, "    server web-6", "    server web-4 localhost:9004\n    server web-6"), "add server web/web-4 localhost:9004 init-addr last,libc,none", haproxy.ErrNotDynamicOption},
		{"option", rtEdit(t, "9002 weight 50", "9002 weight 50 maxconn 3"), "", nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			plan, err := haproxy.Diff(old, l.parse(tc.next))
			if err != nil || !plan.Reload || plan.Reason == "" {
				t.Fatalf("Diff = %+v, %v; want a reload", plan, err)
			}
			if tc.cmd == "" {
				return
			}
			if _, err := l.client.Command(ctx(t), tc.cmd); !errors.Is(err, tc.want) {
				t.Errorf("Command(%q) = %v, want %v", tc.cmd, err, tc.want)
			}
		})
	}
}

// TestExampleRoundTrip runs the example's golden config (its listener and
// stats socket moved into the lab), then applies a registry-like change
// through the runtime API.
func TestExampleRoundTrip(t *testing.T) {
	text, err := os.ReadFile(goldenPath)
	if err != nil {
		t.Fatal(err)
	}
	golden := string(text)
	// The lab's head has its own global section; keep the example's from
	// "defaults" on, with a unix listener.
	body := golden[strings.Index(golden, "\ndefaults\n"):]
	body = strings.Replace(body, "bind 127.0.0.1:8000", "bind unix@{dir}/fe.sock", 1)
	next := strings.NewReplacer(
		"server web-1 10.0.0.11:8080 weight 100", "server web-1 10.0.0.11:8080 weight 90",
		"server web-3 10.0.0.13:8080 weight 100 disabled  # critical", "server web-3 10.0.0.13:8080 weight 100  # passing",
		"    server web-4 10.0.0.14:8080 weight 0  # passing, draining rewire:drain\n", "",
		"server db-2 10.0.2.2:5432 weight 0", "server db-2 10.0.2.12:5433 weight 0\n    server db-3 [2001:db8::23]:5432 weight 100",
	).Replace(body)
	l := newLab(t, body)
	plan, err := haproxy.Diff(l.parse(body), l.parse(next))
	if err != nil || plan.Reload {
		t.Fatalf("Diff = %+v, %v", plan, err)
	}
	want := []string{
		"add server db/db-3 [2001:db8::23]:5432 weight 100 pool-purge-delay 200ms", "enable server db/db-3", // default-server passed on; init-addr dropped: an IP needs none
		"set server db/db-2 addr 10.0.2.12 port 5433",
		"set server web/web-1 weight 90",
		"set server web/web-3 state ready",
		"set server web/web-4 state maint", "del server web/web-4",
	}
	if got := plan.Commands(); !reflect.DeepEqual(got, want) {
		t.Fatalf("Commands() = %q, want %q", got, want)
	}
	if err := l.client.Apply(ctx(t), plan); err != nil {
		t.Fatal(err)
	}
	if err := haproxy.Verify(ctx(t), l.client, l.parse(next)); err != nil {
		t.Fatal(err)
	}
	l.write(next)
	if err := l.proc.Reload(); err != nil {
		t.Fatal(err)
	}
	if err := haproxy.Verify(ctx(t), l.client, l.parse(next)); err != nil {
		t.Fatalf("after reload: %v", err)
	}
}

// TestVerifyMismatches lists each kind of difference.
func TestVerifyMismatches(t *testing.T) {
	l := newLab(t, rtBase)
	cmds := []string{
		"set server web/web-1 addr 127.0.0.9 port 9001",
		"set server web/web-2 addr 127.0.0.1 port 9999",
		"set server web/web-6 weight 11",
		"set server checked/c-1 state maint",
		"set server srr/s-1 state drain", // not a mismatch
		"add server hashed/extra 127.0.0.1:1",
		"del server web/web-3",
	}
	if _, err := l.client.Commands(ctx(t), cmds...); err != nil {
		t.Fatal(err)
	}
	err := haproxy.Verify(ctx(t), l.client, l.parse(rtBase))
	var ve *haproxy.VerifyError
	if !errors.As(err, &ve) || !errors.Is(err, haproxy.ErrMismatch) {
		t.Fatalf("Verify = %v, want a *VerifyError", err)
	}
	want := []string{
		"checked/c-1: admin state 0x1, want maintenance false",
		"hashed/extra: running but not in the config",
		"web/web-1: address 127.0.0.9, want 127.0.0.1",
		"web/web-2: port 9999, want 9002",
		"web/web-3: not running",
		"web/web-6: weight 11, want 10",
	}
	if !reflect.DeepEqual(ve.Mismatches, want) {
		t.Errorf("Verify mismatches = %q\nwant %q", ve.Mismatches, want)
	}
	if !strings.HasPrefix(err.Error(), "haproxy: runtime state differs from the config: checked/c-1: ") {
		t.Errorf("Verify error text = %q", err)
	}
	// A backend the config does not have at all.
	err = haproxy.Verify(ctx(t), l.client, l.parse("backend web\n    server web-1 127.0.0.9:9001 weight 100\n"))
	if !errors.As(err, &ve) || !slicesContains(ve.Mismatches, "srr/s-1: running but its backend is not in the config") {
		t.Errorf("Verify(one backend) = %v", err)
	}
}

func slicesContains(s []string, v string) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}

// TestApplyStopsPerServer: after a refusal, the rest of that server's
// commands are not sent; other servers' are.
func TestApplyStopsPerServer(t *testing.T) {
	l := newLab(t, rtBase)
	plan := haproxy.Plan{Changes: []haproxy.Change{
		// web-3 exists (disabled): the add fails, and its enable server
		// must not enable the existing web-3.
		{Kind: haproxy.KindAdd, Backend: "web", Server: "web-3", Addr: "127.0.0.1", Port: 9999, Weight: 1, State: haproxy.StateReady},
		{Kind: haproxy.KindAdd, Backend: "web", Server: "web-4", Addr: "127.0.0.1", Port: 9004, Weight: 4, State: haproxy.StateReady},
		// A refused address change stops the state change after it.
		{Kind: haproxy.KindSetAddr, Backend: "srr", Server: "s-1", Addr: "not-an-ip", Port: 1},
		{Kind: haproxy.KindSetState, Backend: "srr", Server: "s-1", State: haproxy.StateMaint},
		{Kind: haproxy.KindSetState, Backend: "srr", Server: "s-2", State: haproxy.StateMaint},
		{Kind: haproxy.KindDel, Backend: "web", Server: "nope"},
	}}
	err := l.client.Apply(ctx(t), plan)
	if !errors.Is(err, haproxy.ErrServerExists) || !errors.Is(err, haproxy.ErrInvalidArgument) || !errors.Is(err, haproxy.ErrNoSuchServer) {
		t.Fatalf("Apply = %v, want the add, addr and del refusals", err)
	}
	states, err := l.client.ShowServersState(ctx(t), "")
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]haproxy.ServerState{}
	for _, s := range states {
		got[s.Backend+"/"+s.Name] = s
	}
	if s := got["web/web-3"]; !s.AdminMaint() || s.Port != 9003 {
		t.Errorf("web/web-3 = %+v, want it untouched: disabled, port 9003", s)
	}
	if s := got["web/web-4"]; s.AdminMaint() || s.Weight != 4 {
		t.Errorf("web/web-4 = %+v, want added and enabled", s)
	}
	if s := got["srr/s-1"]; s.AdminMaint() {
		t.Errorf("srr/s-1 = %+v, want no state change after its refused addr change", s)
	}
	if s := got["srr/s-2"]; !s.AdminMaint() {
		t.Errorf("srr/s-2 = %+v, want maintenance", s)
	}
}
