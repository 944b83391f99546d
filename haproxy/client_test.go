package haproxy_test

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rewire/rewire/haproxy"
)

// clientBody has a backend of each kind the runtime API treats apart.
const clientBody = `
backend be
    balance roundrobin
    server s1 127.0.0.1:9001 weight 10
    server s2 127.0.0.1:9002 disabled
    server s6 [::1]:9006

backend srr
    balance static-rr
    server s1 127.0.0.1:9001

backend src
    balance source
    server s1 127.0.0.1:9001

backend ck
    cookie SRV insert indirect nocache
    server s1 127.0.0.1:9001 cookie a

backend trk
    server base 127.0.0.1:9001 check inter 1h
    server follower 127.0.0.1:9002 track trk/base
`

func ctx(t testing.TB) context.Context {
	c, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	t.Cleanup(cancel)
	return c
}

// TestRefusals provokes every refusal the client knows against a real
// haproxy: each is a *CommandError with HAProxy's text and the right
// sentinel. The commands run in order, on one haproxy.
func TestRefusals(t *testing.T) {
	l := newLab(t, clientBody)
	user := haproxy.NewClient(filepath.Join(l.dir, "user.sock"))
	tests := []struct {
		name   string
		client *haproxy.Client
		cmd    string
		want   error
		output string // first line of HAProxy 2.6.12's answer, without the severity prefix
	}{
		{"no backend", l.client, "set server nobe/s1 weight 3", haproxy.ErrNoSuchBackend, "No such backend."},
		{"no backend add", l.client, "add server nobe/x 127.0.0.1:1", haproxy.ErrNoSuchBackend, "No such backend."},
		{"no backend show", l.client, "show servers state nobe", haproxy.ErrNoSuchBackend, "Can't find backend."},
		{"no server", l.client, "set server be/nope weight 3", haproxy.ErrNoSuchServer, "No such server."},
		{"no server del", l.client, "del server be/nope", haproxy.ErrNoSuchServer, "No such server."},
		{"no slash", l.client, "set server be weight 3", haproxy.ErrInvalidArgument, "Require 'backend/server'."},
		{"unknown command", l.client, "frobnicate the servers", haproxy.ErrUnknownCommand, "Unknown command, but maybe one of the following ones is a better match:"},
		{"user level", user, "set server be/s1 weight 2", haproxy.ErrPermissionDenied, "Permission denied"},
		{"user level add", user, "add server be/x 127.0.0.1:1", haproxy.ErrPermissionDenied, "Permission denied"},
		{"exists", l.client, "add server be/s1 127.0.0.1:1", haproxy.ErrServerExists, "Already exists a server with the same name in backend."},
		{"static-rr add", l.client, "add server srr/x 127.0.0.1:1", haproxy.ErrStaticBackend, "Backend must use a dynamic load balancing to support dynamic servers."},
		{"map hash add", l.client, "add server src/x 127.0.0.1:1", haproxy.ErrStaticBackend, "Backend must use a dynamic load balancing to support dynamic servers."},
		{"static-rr weight", l.client, "set server srr/s1 weight 5", haproxy.ErrStaticBackend, "Backend is using a static LB algorithm and only accepts weights '0%' and '100%'."},
		{"cookie option", l.client, "add server be/x 127.0.0.1:1 cookie x", haproxy.ErrNotDynamicOption, "'cookie' option is not accepted for dynamic server"},
		{"init-addr option", l.client, "add server be/x 127.0.0.1:1 init-addr none", haproxy.ErrNotDynamicOption, "'init-addr' option is not accepted for dynamic server"},
		{"unknown keyword", l.client, "add server be/x 127.0.0.1:1 bogus", haproxy.ErrInvalidArgument, "unknown keyword 'bogus'."},
		{"bad port", l.client, "add server be/x 127.0.0.1:70000", haproxy.ErrInvalidArgument, "invalid port '70000'"},
		{"agent without port", l.client, "add server be/x 127.0.0.1:1 agent-check", haproxy.ErrRefused, "server x does not have agent port. Agent check has been disabled."},
		{"del not in maint", l.client, "del server be/s1", haproxy.ErrNotInMaintenance, "Only servers in maintenance mode can be deleted."},
		{"host name addr", l.client, "set server be/s1 addr localhost port 9001", haproxy.ErrInvalidArgument, "Invalid addr 'localhost' by 'stats socket command'"},
		{"bad addr", l.client, "set server be/s1 addr 1.2.3", haproxy.ErrInvalidArgument, "Invalid addr '1.2.3' by 'stats socket command'"},
		{"port map", l.client, "set server be/s1 addr 127.0.0.1 port +1", haproxy.ErrInvalidArgument, "no need to change the addr, can't change <port> to port map because it is incompatible with current health check port configuration (use 'port' statement from the 'server' directive. by 'stats socket command'"},
		{"bad state", l.client, "set server be/s1 state bogus", haproxy.ErrInvalidArgument, "'set server <srv> state' expects 'ready', 'drain' and 'maint'."},
		{"weight too big", l.client, "set server be/s1 weight 300", haproxy.ErrInvalidArgument, "Absolute weight can only be between 0 and 256 inclusive."},
		{"weight garbage", l.client, "set server be/s1 weight abc", haproxy.ErrInvalidArgument, "Empty weight string empty or preceded by garbage"},
		{"health without check", l.client, "enable health be/s1", haproxy.ErrRefused, "Health check was not configured on this server, cannot enable."},
		{"tracked", l.client, "set server trk/base state maint", nil, ""},
		{"del tracked", l.client, "del server trk/base", haproxy.ErrServerReferenced, "This server cannot be removed at runtime due to other configuration elements pointing to it."},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			out, err := tc.client.Command(ctx(t), tc.cmd)
			out, _, _ = strings.Cut(out, "\n") // "Unknown command" lists commands after
			if out != tc.output {
				t.Errorf("Command(%q) output = %q, want %q", tc.cmd, out, tc.output)
			}
			if tc.want == nil {
				if err != nil {
					t.Errorf("Command(%q) = %v, want nil", tc.cmd, err)
				}
				return
			}
			var ce *haproxy.CommandError
			if !errors.As(err, &ce) || !errors.Is(err, tc.want) {
				t.Fatalf("Command(%q) = %#v, want a *CommandError wrapping %v", tc.cmd, err, tc.want)
			}
			if first, _, _ := strings.Cut(ce.Output, "\n"); ce.Cmd != tc.cmd || first != tc.output {
				t.Errorf("Command(%q): CommandError{Cmd: %q, Output: %q}, want {%q, %q}", tc.cmd, ce.Cmd, ce.Output, tc.cmd, tc.output)
			}
			if !strings.HasPrefix(err.Error(), "haproxy: "+tc.cmd+": ") {
				t.Errorf("Command(%q) error text = %q", tc.cmd, err)
			}
		})
	}
}

// TestSuccessAnswers checks that what HAProxy 2.6 says when it does what
// it is asked is not taken for a refusal.
func TestSuccessAnswers(t *testing.T) {
	l := newLab(t, clientBody)
	tests := []struct{ cmd, output string }{
		{"set server be/s1 weight 5", ""},
		{"set server be/s1 weight 50%", ""},
		{"set server srr/s1 weight 0%", ""},
		{"set server srr/s1 weight 100%", ""},
		{"set server be/s1 addr 127.0.0.2 port 9011", "IP changed from '127.0.0.1' to '127.0.0.2', port changed from '9001' to '9011' by 'stats socket command'"},
		{"set server be/s1 addr 127.0.0.2 port 9011", "no need to change the addr, no need to change the port by 'stats socket command'"},
		{"set server be/s1 addr 127.0.0.3", "IP changed from '127.0.0.2' to '127.0.0.3' by 'stats socket command'"},
		{"set server be/s1 addr 127.0.0.3 port 9012", "no need to change the addr, port changed from '9011' to '9012' by 'stats socket command'"},
		{"set server be/s6 addr ::2 port 9006", "IP changed from '::1' to '::2', no need to change the port by 'stats socket command'"},
		{"set server be/s6 addr [::3] port 9006", "IP changed from '::2' to '[::3]', no need to change the port by 'stats socket command'"},
		{"set server srr/s1 addr 127.0.0.9 port 9009", "IP changed from '127.0.0.1' to '127.0.0.9', port changed from '9001' to '9009' by 'stats socket command'"},
		{"set server be/s1 state drain", ""},
		{"set server be/s1 state maint", ""},
		{"set server be/s1 state ready", ""},
		{"set server srr/s1 state maint", ""},
		{"set server srr/s1 state ready", ""},
		{"add server be/n1 127.0.0.1:9100 weight 3 check inter 1h", "New server registered."},
		{"add server be/n6 [::1]:9100", "New server registered."},
		{"add server be/n7 ::1:9100", "New server registered."},
		{"add server be/n8 127.0.0.1", "New server registered."},
		{"add server ck/n1 127.0.0.1:9100", "New server registered."}, // a cookie backend takes it: the server just has no cookie
		{"enable health be/n1", ""},
		{"enable server be/n1", ""},
		{"disable server be/n1", ""},
		{"shutdown sessions server be/n1", ""},
		{"del server be/n1", "Server deleted."},
		{"del server be/s2", "Server deleted."}, // a server of the config, disabled there
	}
	for _, tc := range tests {
		out, err := l.client.Command(ctx(t), tc.cmd)
		if err != nil || out != tc.output {
			t.Errorf("Command(%q) = %q, %v; want %q, nil", tc.cmd, out, err, tc.output)
		}
	}
	states, err := l.client.ShowServersState(ctx(t), "be")
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]haproxy.ServerState{}
	for _, s := range states {
		got[s.Name] = s
	}
	for name, want := range map[string]struct {
		addr string
		port int
	}{"s6": {"::3", 9006}, "n6": {"::1", 9100}, "n7": {"::1", 9100}, "n8": {"127.0.0.1", 0}, "s1": {"127.0.0.3", 9012}} {
		if s := got[name]; s.Addr != want.addr || s.Port != want.port {
			t.Errorf("show servers state be: %s at %s port %d, want %s port %d", name, s.Addr, s.Port, want.addr, want.port)
		}
	}
	if _, ok := got["s2"]; ok {
		t.Errorf("show servers state be: s2 still there after del server")
	}
	// A new dynamic server starts in maintenance (forced).
	if s := got["n8"]; s.AdminState != haproxy.AdminFMaint || !s.Maint() || !s.AdminMaint() {
		t.Errorf("new dynamic server n8: admin state %#x, want %#x", s.AdminState, haproxy.AdminFMaint)
	}
}

// TestServersState checks the parsed fields against a known config,
// including the admin states of "disabled" and of the runtime API.
func TestServersState(t *testing.T) {
	l := newLab(t, clientBody)
	c := l.client
	if err := c.SetState(ctx(t), "be", "s6", haproxy.StateDrain); err != nil {
		t.Fatal(err)
	}
	if err := c.SetState(ctx(t), "srr", "s1", haproxy.StateMaint); err != nil {
		t.Fatal(err)
	}
	states, err := c.ShowServersState(ctx(t), "")
	if err != nil {
		t.Fatal(err)
	}
	type key struct{ be, srv string }
	got := map[key]haproxy.ServerState{}
	for _, s := range states {
		got[key{s.Backend, s.Name}] = s
	}
	tests := []struct {
		be, srv           string
		addr              string
		port, weight      int
		admin             int
		maint, adm, drain bool
	}{
		{"be", "s1", "127.0.0.1", 9001, 10, 0, false, false, false},
		{"be", "s2", "127.0.0.1", 9002, 1, haproxy.AdminFMaint | haproxy.AdminCMaint, true, true, false},
		{"be", "s6", "::1", 9006, 1, haproxy.AdminFDrain, false, false, true},
		{"srr", "s1", "127.0.0.1", 9001, 1, haproxy.AdminFMaint, true, true, false},
		{"trk", "follower", "127.0.0.1", 9002, 1, 0, false, false, false},
	}
	for _, tc := range tests {
		s, ok := got[key{tc.be, tc.srv}]
		if !ok {
			t.Errorf("ShowServersState: no %s/%s in %v", tc.be, tc.srv, states)
			continue
		}
		if s.Addr != tc.addr || s.Port != tc.port || s.Weight != tc.weight || s.InitialWeight != tc.weight || s.AdminState != tc.admin ||
			s.Maint() != tc.maint || s.AdminMaint() != tc.adm || s.Drain() != tc.drain {
			t.Errorf("ShowServersState %s/%s = %+v (maint %t, admin maint %t, drain %t), want addr %s port %d weight %d admin %#x (%t %t %t)",
				tc.be, tc.srv, s, s.Maint(), s.AdminMaint(), s.Drain(), tc.addr, tc.port, tc.weight, tc.admin, tc.maint, tc.adm, tc.drain)
		}
		if s.Field("srv_name") != tc.srv || s.BackendID == 0 || s.ID == 0 {
			t.Errorf("ShowServersState %s/%s: row %+v, ids %d/%d", tc.be, tc.srv, s, s.BackendID, s.ID)
		}
	}
	// A server disabled in the config, set ready: CMaint stays, and it
	// takes traffic.
	if err := c.SetState(ctx(t), "be", "s2", haproxy.StateReady); err != nil {
		t.Fatal(err)
	}
	if s2, err := c.ShowServersState(ctx(t), "be"); err != nil || s2[1].Name != "s2" || s2[1].AdminState != haproxy.AdminCMaint || s2[1].Maint() || s2[1].AdminMaint() {
		t.Errorf("be/s2 set ready: %+v, %v; want admin state %#x, not in maintenance", s2, err, haproxy.AdminCMaint)
	}
	one, err := c.ShowServersState(ctx(t), "srr")
	if err != nil || len(one) != 1 || one[0].Backend != "srr" {
		t.Errorf("ShowServersState(srr) = %v, %v; want srr/s1 only", one, err)
	}
	rows, err := c.ShowStat(ctx(t))
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, r := range rows {
		if r["pxname"] == "be" && r["svname"] == "s1" {
			found = r["weight"] == "10" && r["status"] != ""
		}
	}
	if !found {
		t.Errorf("ShowStat: no row for be/s1 with weight 10 in %d rows", len(rows))
	}
}

// TestHighLevelOps drives a server through the typed methods and checks
// each step with show servers state.
func TestHighLevelOps(t *testing.T) {
	l := newLab(t, clientBody)
	c := l.client
	state := func(name string) haproxy.ServerState {
		t.Helper()
		states, err := c.ShowServersState(ctx(t), "be")
		if err != nil {
			t.Fatal(err)
		}
		for _, s := range states {
			if s.Name == name {
				return s
			}
		}
		t.Fatalf("be/%s is not running", name)
		return haproxy.ServerState{}
	}
	if err := c.AddServer(ctx(t), "be", haproxy.Server{Name: "n1", Addr: "::1", Port: 9100, Weight: 7, Options: []string{"check", "inter 1h"}}); err != nil {
		t.Fatal(err)
	}
	if s := state("n1"); s.Addr != "::1" || s.Port != 9100 || s.Weight != 7 || s.Maint() {
		t.Errorf("after AddServer: %+v, want [::1]:9100 weight 7 ready", s)
	}
	if s := state("n1"); s.Field("srv_check_state") == "0" {
		t.Errorf("after AddServer with check: check state %s, want it configured and enabled", s.Field("srv_check_state"))
	}
	if err := c.SetAddr(ctx(t), "be", "n1", netip.MustParseAddrPort("127.0.0.5:9200")); err != nil {
		t.Fatal(err)
	}
	if err := c.SetWeight(ctx(t), "be", "n1", 0); err != nil {
		t.Fatal(err)
	}
	if err := c.SetState(ctx(t), "be", "n1", haproxy.StateDrain); err != nil {
		t.Fatal(err)
	}
	if s := state("n1"); s.Addr != "127.0.0.5" || s.Port != 9200 || s.Weight != 0 || !s.Drain() {
		t.Errorf("after SetAddr, SetWeight, SetState: %+v, want 127.0.0.5:9200 weight 0 drain", s)
	}
	if err := c.DelServer(ctx(t), "be", "n1"); err != nil {
		t.Fatal(err)
	}
	if err := c.AddServer(ctx(t), "be", haproxy.Server{Name: "n2", Addr: "127.0.0.1", Weight: 1, Disabled: true}); err != nil {
		t.Fatal(err)
	}
	if s := state("n2"); !s.AdminMaint() || s.Port != 0 {
		t.Errorf("after AddServer disabled without port: %+v, want maintenance, port 0", s)
	}

	// Refusals come back typed; client-side checks need no haproxy.
	for _, tc := range []struct {
		name string
		err  error
		want error
	}{
		{"add existing", c.AddServer(ctx(t), "be", haproxy.Server{Name: "s1", Addr: "127.0.0.1", Weight: 1}), haproxy.ErrServerExists},
		{"add static", c.AddServer(ctx(t), "srr", haproxy.Server{Name: "x", Addr: "127.0.0.1", Weight: 1}), haproxy.ErrStaticBackend},
		{"add host name", c.AddServer(ctx(t), "be", haproxy.Server{Name: "x", Addr: "localhost", Weight: 1}), haproxy.ErrInvalidArgument},
		{"del missing", c.DelServer(ctx(t), "be", "nope"), haproxy.ErrNoSuchServer},
		{"del tracked", c.DelServer(ctx(t), "trk", "base"), haproxy.ErrServerReferenced},
		{"weight static", c.SetWeight(ctx(t), "srr", "s1", 3), haproxy.ErrStaticBackend},
		{"weight range", c.SetWeight(ctx(t), "be", "s1", 257), haproxy.ErrInvalidArgument},
		{"state range", c.SetState(ctx(t), "be", "s1", haproxy.State(7)), haproxy.ErrInvalidArgument},
		{"addr invalid", c.SetAddr(ctx(t), "be", "s1", netip.AddrPort{}), haproxy.ErrInvalidArgument},
	} {
		if !errors.Is(tc.err, tc.want) {
			t.Errorf("%s: error %v, want %v", tc.name, tc.err, tc.want)
		}
	}
}

// TestCommandsBatch: one connection, answers in order, a refusal in the
// middle does not stop the commands after it.
func TestCommandsBatch(t *testing.T) {
	l := newLab(t, clientBody)
	cmds := []string{
		"set server be/s1 weight 20",
		"show servers state srr",
		"set server be/nope weight 3",
		"set server be/s1 addr 127.0.0.7 port 9007",
		"frobnicate",
		"set server be/s1 weight 21",
	}
	outs, err := l.client.Commands(ctx(t), cmds...)
	if len(outs) != len(cmds) {
		t.Fatalf("Commands: %d answers for %d commands (err %v)", len(outs), len(cmds), err)
	}
	if outs[0] != "" || !strings.HasPrefix(outs[1], "1\n# be_id be_name") || outs[2] != "No such server." ||
		!strings.HasPrefix(outs[3], "IP changed from '127.0.0.1' to '127.0.0.7'") || !strings.HasPrefix(outs[4], "Unknown command") || outs[5] != "" {
		t.Errorf("Commands answers = %q", outs)
	}
	var ce *haproxy.CommandError
	if !errors.As(err, &ce) || ce.Cmd != cmds[2] || !errors.Is(err, haproxy.ErrNoSuchServer) || !errors.Is(err, haproxy.ErrUnknownCommand) {
		t.Errorf("Commands error = %v, want the refusals of %q and %q", err, cmds[2], cmds[4])
	}
	states, err := l.client.ShowServersState(ctx(t), "be")
	if err != nil {
		t.Fatal(err)
	}
	if states[0].Name != "s1" || states[0].Weight != 21 || states[0].Addr != "127.0.0.7" {
		t.Errorf("after the batch, be/s1 = %+v, want weight 21 at 127.0.0.7", states[0])
	}
	if outs, err := l.client.Commands(ctx(t)); outs != nil || err != nil {
		t.Errorf("Commands() = %v, %v; want nil, nil", outs, err)
	}
}

// TestCommandsLargeBatch: batches larger than HAProxy's buffer, many
// times. Half-closing the connection after such a batch made HAProxy 2.6
// reset ~5% of them; ending with "quit" does not.
func TestCommandsLargeBatch(t *testing.T) {
	l := newLab(t, clientBody)
	cmds := make([]string, 2000)
	for i := range cmds {
		cmds[i] = fmt.Sprintf("set server be/s1 weight %d", i%256+1)
	}
	cmds[1000] = "set server be/nope weight 1"
	for i := range 30 {
		outs, err := l.client.Commands(ctx(t), cmds...)
		if len(outs) != len(cmds) || !errors.Is(err, haproxy.ErrNoSuchServer) || outs[1000] != "No such server." {
			t.Fatalf("batch %d: %d answers, %v", i, len(outs), err)
		}
	}
}

// TestParseMatchesHAProxy starts haproxy on a config with the address,
// weight and disabled forms Parse interprets, and checks with Verify that
// haproxy reads them the same way.
func TestParseMatchesHAProxy(t *testing.T) {
	body := `
defaults base
    mode http
    timeout connect 5s
    timeout client 30s
    timeout server 30s
    default-server weight 20

defaults
    mode http
    timeout connect 5s
    timeout client 30s
    timeout server 30s

backend inherit from base
    server a 127.0.0.1:9001
    server b ::1:9002
    server c [::1]
    server d 127.0.0.1
    server e localhost:9005 weight 3
    default-server weight 30 disabled
    server f 127.0.0.1:9006
    server g 127.0.0.1:9007 enabled weight 0

backend plain
    server a 127.0.0.1:9001 disabled weight 256
    server b [2001:db8::1]:1
    server-template slot 3 127.0.0.1:1 disabled
    server-template other 5-6 127.0.0.1:1 disabled
`
	l := newLab(t, body)
	cfg := l.parse(body)
	inherit := cfg.Section("backend", "inherit")
	if s, _ := inherit.Server("b"); s.Addr != "::1" || s.Port != 9002 || s.Weight != 20 {
		t.Errorf("inherit/b = %+v", s)
	}
	if s, _ := inherit.Server("g"); s.Disabled || s.Weight != 0 {
		t.Errorf("inherit/g = %+v", s)
	}
	if err := haproxy.Verify(ctx(t), l.client, cfg); err != nil {
		t.Fatal(err)
	}
}
