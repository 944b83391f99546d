package haproxy_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rewire/rewire/haproxy"
	"github.com/rewire/rewire/internal/freeport"
)

func TestStateFiles(t *testing.T) {
	for _, tc := range []struct {
		name, cfg string
		want      []haproxy.StateFile
		wantErr   string
	}{
		{"none", "backend a\n    server s 127.0.0.1:1\n", nil, ""},
		{"global file, global mode in defaults",
			"global\n    server-state-file /var/lib/haproxy/state\ndefaults\n    load-server-state-from-file global\nbackend a\n    server s 127.0.0.1:1\nlisten b\n    bind :1\nbackend c\n    load-server-state-from-file none\n",
			[]haproxy.StateFile{{Path: "/var/lib/haproxy/state", Backends: []string{"a", "b"}}}, ""},
		{"global mode without a file loads nothing",
			"defaults\n    load-server-state-from-file global\nbackend a\n", nil, ""},
		{"base and relative file",
			"global\n    server-state-base /var/state/\n    server-state-file 'all'\ndefaults\n    load-server-state-from-file global\nbackend a\n",
			[]haproxy.StateFile{{Path: "/var/state/all", Backends: []string{"a"}}}, ""},
		{"local mode: one file per backend",
			"global\n    server-state-base /s\nbackend a\n    load-server-state-from-file local\nbackend b\n    load-server-state-from-file local\n    server-state-file-name bee\nbackend c\n    load-server-state-from-file local\n    server-state-file-name /abs/c\n",
			[]haproxy.StateFile{{Path: "/s/a", Backends: []string{"a"}}, {Path: "/s/bee", Backends: []string{"b"}}, {Path: "/abs/c", Backends: []string{"c"}}}, ""},
		{"relative without base",
			"global\n    server-state-file state\ndefaults\n    load-server-state-from-file global\nbackend a\n",
			nil, `server-state-file "state" is relative`},
		{"bad mode", "backend a\n    load-server-state-from-file everywhere\n", nil, `backend a: load-server-state-from-file "everywhere"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg, err := haproxy.Parse([]byte(tc.cfg))
			if err != nil {
				t.Fatal(err)
			}
			got, err := cfg.StateFiles()
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("StateFiles = %v, %v; want error containing %q", got, err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != len(tc.want) {
				t.Fatalf("StateFiles = %+v, want %+v", got, tc.want)
			}
			for i := range got {
				if got[i].Path != tc.want[i].Path || strings.Join(got[i].Backends, ",") != strings.Join(tc.want[i].Backends, ",") {
					t.Errorf("StateFiles[%d] = %+v, want %+v", i, got[i], tc.want[i])
				}
			}
		})
	}
}

// TestSaveStateAcrossReload runs a real master-worker haproxy, saves the
// state for the next config, reloads on it, and checks what the new worker
// starts with: the health the old one had learnt, and the next config's
// values wherever the config and the running state disagree.
func TestSaveStateAcrossReload(t *testing.T) {
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	t.Cleanup(up.Close)
	upAddr := strings.TrimPrefix(up.URL, "http://")
	upPort := upAddr[strings.LastIndexByte(upAddr, ':')+1:]
	otherPort := "1" // nothing listens on port 1
	bind, err := freeport.Addr()
	if err != nil {
		t.Fatal(err)
	}
	// Checks every hour: no check runs during the test, so the health a
	// server has after the reload can only come from the state file.
	body := func(servers string) string {
		return `global
    server-state-file {dir}/state
defaults d
    mode http
    timeout connect 1s
    timeout client 5s
    timeout server 5s
    load-server-state-from-file global
    default-server check inter 1h
frontend fe
    bind ` + bind + `
    default_backend be
backend be
    balance roundrobin
` + servers
	}
	before := body(`    server down 127.0.0.1:` + upPort + `
    server moved 127.0.0.1:` + upPort + `
    server weighed 127.0.0.1:` + upPort + ` weight 10
    server drained 127.0.0.1:` + upPort + ` weight 10
    server maint 127.0.0.1:` + upPort + ` disabled
    server revived 127.0.0.1:` + upPort + ` disabled
    server gone 127.0.0.1:` + upPort + `
`)
	after := body(`    server down 127.0.0.1:` + upPort + `
    server moved 127.0.0.1:` + otherPort + `
    server weighed 127.0.0.1:` + upPort + ` weight 10
    server drained 127.0.0.1:` + upPort + ` weight 10  # draining, rewire:drain
    server maint 127.0.0.1:` + upPort + ` disabled
    server revived 127.0.0.1:` + upPort + `
    server new 127.0.0.1:` + upPort + `
`)
	l := newLab(t, before)
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	// Runtime-only state the old worker has: one server found down, a
	// weight set by hand.
	if _, err := l.client.Commands(ctx, "set server be/down health down", "set server be/weighed weight 50"); err != nil {
		t.Fatal(err)
	}
	next := l.parse(after)
	paths, err := haproxy.SaveState(ctx, l.client, next)
	if err != nil {
		t.Fatalf("SaveState: %v", err)
	}
	statePath := filepath.Join(l.dir, "state")
	if len(paths) != 1 || paths[0] != statePath {
		t.Fatalf("SaveState wrote %q, want [%s]", paths, statePath)
	}
	saved, err := os.ReadFile(statePath)
	if err != nil {
		t.Fatal(err)
	}
	for _, absent := range []string{" moved ", " gone ", " new "} {
		if strings.Contains(string(saved), absent) {
			t.Errorf("state file has a line for %q; want none (moved, or not in the next config):\n%s", absent, saved)
		}
	}

	l.write(after)
	if err := l.proc.Reload(); err != nil {
		t.Fatal(err)
	}
	got := map[string]haproxy.ServerState{}
	states, err := l.client.ShowServersState(ctx, "be")
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range states {
		got[s.Name] = s
	}
	check := func(name string, ok bool, what string) {
		t.Helper()
		if !ok {
			t.Errorf("after reload, %s: %+v; want %s", name, got[name], what)
		}
	}
	check("down", got["down"].OpState == haproxy.OpStopped, "still down (health kept across the reload)")
	check("moved", got["moved"].Port == 1, "port 1, the config's (HAProxy would restore the old port from a raw state file)")
	check("weighed", got["weighed"].Weight == 10, "weight 10, the config's, not the 50 set by hand")
	check("drained", got["drained"].Drain() && got["drained"].Weight == 10, "draining (the mark), weight 10")
	check("maint", got["maint"].AdminMaint(), "in maintenance (disabled)")
	check("revived", got["revived"].OpState == haproxy.OpRunning && got["revived"].AdminState == 0, "up and ready: out of maintenance, its stopped state was not carried over")
	check("new", got["new"].OpState == haproxy.OpRunning && got["new"].AdminState == 0, "up and ready (fresh)")
	if err := haproxy.Verify(ctx, l.client, next); err != nil {
		t.Errorf("Verify after reload: %v", err)
	}

	// Without the state file the same reload would have brought the dead
	// server back up: that is what the file is for.
	if err := haproxy.RemoveStateFiles(next); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(statePath); !os.IsNotExist(err) {
		t.Fatalf("RemoveStateFiles left %s: %v", statePath, err)
	}
	if err := l.proc.Reload(); err != nil {
		t.Fatal(err)
	}
	states, err = l.client.ShowServersState(ctx, "be")
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range states {
		if s.Name == "down" && s.OpState == haproxy.OpStopped {
			t.Errorf("without a state file, server down is still down after a reload; the test above proves nothing")
		}
	}
}

// TestConverge: an haproxy started from a file with a drain mark does not
// drain (no config keyword does), and hand changes drift from the file;
// Converge repairs both from the live state, and Verify then passes.
// Servers made by server-template are left alone.
func TestConverge(t *testing.T) {
	body := `backend be
    balance roundrobin
    server a 127.0.0.1:9001 weight 10  # rewire:drain
    server b 127.0.0.1:9002 weight 10
    server c 127.0.0.1:9003 weight 10 disabled
    server-template tpl 2 127.0.0.1:9100
`
	l := newLab(t, body)
	cfg := l.parse(body)
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	if err := haproxy.Verify(ctx, l.client, cfg); err == nil || !strings.Contains(err.Error(), "be/a: admin state 0x0, want drain") {
		t.Fatalf("Verify of a fresh haproxy = %v, want be/a not draining", err)
	}
	if _, err := l.client.Commands(ctx, "set server be/b weight 3", "set server be/c state ready", "add server be/x 127.0.0.1:9009"); err != nil {
		t.Fatal(err)
	}
	plan, err := haproxy.Converge(ctx, l.client, cfg)
	if err != nil {
		t.Fatalf("Converge: %v (plan %+v)", err, plan)
	}
	want := []string{"set server be/a state drain", "set server be/b weight 10", "set server be/c state maint",
		"set server be/x state maint", "del server be/x"}
	got := plan.Commands()
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("Converge commands = %q, want %q", got, want)
	}
	if plan, err := haproxy.Converge(ctx, l.client, cfg); err != nil || !plan.Empty() {
		t.Errorf("second Converge = %+v, %v; want nothing to do", plan, err)
	}
}
