package render_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rewire/rewire/haproxy"
	"github.com/rewire/rewire/render"
)

// weightTmpl is a live-applied config whose server weight comes from a
// key, so a change of it is server-only.
const weightTmpl = `global
    maxconn 64
    stats socket {{ key "app/dir" }}/admin.sock mode 600 level admin
defaults
    mode http
    timeout connect 1s
    timeout client 5s
    timeout server 5s
frontend fe
    bind 127.0.0.1:PORT
    default_backend be
backend be
    balance roundrobin
    server s1 {{ key "app/up" }} weight {{ keyOrDefault "app/weight" "10" }}
`

// TestLiveFirst: a server-only change reaches HAProxy while its check is
// still running; when the check then fails, the live servers go back to
// the file in place, which never changed.
func TestLiveFirst(t *testing.T) {
	for _, pass := range []bool{true, false} {
		name := map[bool]string{true: "check passes", false: "check fails"}[pass]
		t.Run(name, func(t *testing.T) {
			l := startHAProxyLab(t, weightTmpl, nil, true)
			gate := filepath.Join(l.dir, "gate")
			// The check signals that it runs, then waits for the test to
			// open the gate: the test looks at HAProxy in between.
			verdict := "haproxy -c -q -f {{ .Staged }}"
			if !pass {
				verdict = "false"
			}
			check := render.Shell("touch " + gate + ".started; while [ ! -e " + gate + " ]; do sleep 0.01; done; " + verdict)
			m, reg := newMetrics()
			tg := mkTarget(t, "lb", l.text, render.TargetConfig{Destination: l.dest, Check: check, Runtime: hapRuntime(haproxy.RuntimeConfig{Reconcile: -1}, reg)},
				render.Options{Metrics: m})
			good := readFile(t, l.dest)
			ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
			defer cancel()
			weight := func() int {
				states, err := l.client.ShowServersState(ctx, "be")
				if err != nil || len(states) != 1 {
					t.Fatalf("show servers state = %v, %v", states, err)
				}
				return states[0].Weight
			}
			if w := weight(); w != 10 {
				t.Fatalf("weight before = %d, want 10", w)
			}

			snap := l.src.change(t, map[string]string{"/rewire/app/weight": "3"})
			done := make(chan error, 1)
			go func() {
				_, err := tg.Apply(ctx, snap)
				done <- err
			}()
			waitUntil(t, 10*time.Second, "the check running", func() bool {
				_, err := os.Stat(gate + ".started")
				return err == nil
			})
			if w := weight(); w != 3 {
				t.Errorf("weight while the check runs = %d, want 3: the change should be live before its check", w)
			}
			if got := readFile(t, l.dest); got != good {
				t.Errorf("destination while the check runs = %q, want the previous file", got)
			}
			writeFile(t, gate, "")
			err := <-done
			if pass {
				if err != nil {
					t.Fatalf("Apply = %v", err)
				}
				if w := weight(); w != 3 || !strings.Contains(readFile(t, l.dest), "weight 3") {
					t.Errorf("after a passing check: weight %d, file %q; want 3 in both", w, readFile(t, l.dest))
				}
				return
			}
			if err == nil {
				t.Fatal("Apply with a failing check = nil error")
			}
			if w := weight(); w != 10 {
				t.Errorf("weight after the check failed = %d, want the file's 10 back", w)
			}
			if got := readFile(t, l.dest); got != good {
				t.Errorf("destination after the check failed = %q, want it unchanged", got)
			}
			if n := metricValue(t, reg, "templater_haproxy_reloads_total", "template", "lb", "reason", "early_undone"); n != 1 {
				t.Errorf("early_undone count = %v, want 1", n)
			}
		})
	}
}
