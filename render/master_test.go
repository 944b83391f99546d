package render_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/rewire/rewire/internal/freeport"
	"github.com/rewire/rewire/templater"

	"github.com/rewire/rewire/haproxy"
	"github.com/rewire/rewire/internal/haproxytest"
	"github.com/rewire/rewire/render"
)

// masterTmpl renders a valid haproxy config unless app/broken is set.
const masterTmpl = `global
    maxconn 64
defaults
    mode http
    timeout connect 1s
    timeout client 5s
    timeout server 5s
frontend fe
    bind 127.0.0.1:PORT
    default_backend be
backend be
    balance {{ keyOrDefault "app/balance" "roundrobin" }}
{{- if keyOrDefault "app/broken" "" }}
    no-such-keyword
{{- end }}
    server s1 127.0.0.1:1
`

// TestMasterCLIReload: with haproxy.master and no reload command, a
// structural change reloads through the master CLI; a config haproxy
// rejects (no check configured here, to let it through) makes the reload
// fail, and the previous file is put back and reloaded.
func TestMasterCLIReload(t *testing.T) {
	haproxytest.Binary(t)
	addr, err := freeport.Addr()
	if err != nil {
		t.Fatal(err)
	}
	text := strings.Replace(masterTmpl, "127.0.0.1:PORT", addr, 1)

	dest := filepath.Join(t.TempDir(), "haproxy.cfg")
	src := newMemSource(t, map[string]string{})
	tg := mkTarget(t, "lb", text, render.TargetConfig{Destination: dest}, render.Options{})
	if _, err := tg.Render(src.Current()); err != nil {
		t.Fatal(err)
	}
	first, _ := tg.Render(src.Current())
	writeFile(t, dest, string(first))
	p := haproxytest.Start(t, dest)

	tg = mkTarget(t, "lb", text, render.TargetConfig{Destination: dest, Runtime: hapRuntime(haproxy.RuntimeConfig{Master: p.MasterSocket()}, nil)}, render.Options{})
	m := haproxy.NewMaster(p.MasterSocket())
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	reloads := func() int {
		st, err := m.ShowProc(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return st.Master.Reloads
	}
	r0 := reloads()

	snap := src.change(t, map[string]string{"/rewire/app/balance": "leastconn"})
	if changed, err := tg.Apply(ctx, snap); err != nil || !changed {
		t.Fatalf("Apply(balance leastconn) = %v, %v, want true, nil", changed, err)
	}
	if got := reloads(); got != r0+1 {
		t.Errorf("master reloads = %d, want %d", got, r0+1)
	}
	good := readFile(t, dest)

	snap = src.change(t, map[string]string{"/rewire/app/broken": "yes"})
	_, err = tg.Apply(ctx, snap)
	var e *render.Error
	if !errors.As(err, &e) || e.Stage != render.StageReload {
		t.Fatalf("Apply(broken) error = %v, want a reload failure", err)
	}
	if now := readFile(t, dest); now != good {
		t.Errorf("destination after a rejected reload =\n%s\nwant the previous file back\n%s", now, good)
	}
	if st, err := m.ShowProc(ctx); err != nil || len(st.Workers) == 0 {
		t.Errorf("show proc after the rollback = %+v, %v: want a serving worker", st, err)
	}
}

// hapRuntime is a template's `haproxy:` block as the templater wires it
// in, with its metrics registered with reg (nil: not registered).
func hapRuntime(cfg haproxy.RuntimeConfig, reg prometheus.Registerer) render.Runtime {
	return templater.HAProxyRuntime(cfg, haproxy.RuntimeOptions{Name: "lb", Metrics: haproxy.NewRuntimeMetrics(reg)})
}

// haproxyLab is a real master-worker haproxy started on the first render
// of a template, in a short directory (unix socket paths are limited to
// 107 bytes) that the template reads as key app/dir.
type haproxyLab struct {
	dir, dest, text string // text: the template, with its bind address filled in
	src             *memSource
	proc            *haproxytest.Proc
	client          *haproxy.Client // on {{app/dir}}/admin.sock
}

// startHAProxyLab replaces 127.0.0.1:PORT in tmpl by a free address, renders
// it with kv (plus app/dir and, when up is set, app/up: the address of a
// live HTTP server) and starts haproxy on the result.
func startHAProxyLab(t *testing.T, tmpl string, kv map[string]string, up bool) *haproxyLab {
	t.Helper()
	haproxytest.Binary(t)
	addr, err := freeport.Addr()
	if err != nil {
		t.Fatal(err)
	}
	dir, err := os.MkdirTemp("", "rw-hx-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	all := map[string]string{"/rewire/app/dir": dir}
	if up {
		srv := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
		t.Cleanup(srv.Close)
		all["/rewire/app/up"] = strings.TrimPrefix(srv.URL, "http://")
	}
	for k, v := range kv {
		all[k] = v
	}
	l := &haproxyLab{dir: dir, dest: filepath.Join(dir, "haproxy.cfg"), text: strings.Replace(tmpl, "127.0.0.1:PORT", addr, 1),
		src: newMemSource(t, all), client: haproxy.NewClient(filepath.Join(dir, "admin.sock"))}
	first, err := mkTarget(t, "lb", l.text, render.TargetConfig{Destination: l.dest}, render.Options{}).Render(l.src.Current())
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, l.dest, string(first))
	l.proc = haproxytest.Start(t, l.dest)
	return l
}

// showProc asks the master for its processes. The master re-executes
// itself on reload: its CLI may refuse for a moment after the new worker
// already serves, so it retries for a while.
func (l *haproxyLab) showProc(t *testing.T, ctx context.Context) haproxy.ProcStatus {
	t.Helper()
	var st haproxy.ProcStatus
	var err error
	waitUntil(t, 10*time.Second, "the master CLI", func() bool {
		st, err = haproxy.NewMaster(l.proc.MasterSocket()).ShowProc(ctx)
		return err == nil
	})
	return st
}

// stateTmpl is a live-applied haproxy config with a server-state file.
// Checks run every hour: a server's health after a reload can only come
// from the state file.
const stateTmpl = `global
    maxconn 64
    stats socket {{ key "app/dir" }}/admin.sock mode 600 level admin
    server-state-file {{ key "app/dir" }}/state
defaults
    mode http
    timeout connect 1s
    timeout client 5s
    timeout server 5s
    load-server-state-from-file global
    default-server check inter 1h
frontend fe
    bind 127.0.0.1:PORT
    default_backend be
backend be
    balance {{ keyOrDefault "app/balance" "roundrobin" }}
    server up {{ key "app/up" }} weight 10{{ if keyOrDefault "app/drain" "" }}  # rewire:drain{{ end }}
    server down {{ key "app/up" }}
`

// TestHAProxyStateAcrossReload: the templater keeps HAProxy's server
// state across its reloads. A drain mark goes live (HAProxy's drain
// state, no reload; a weight changed by hand is repaired on the way) and
// the state file is refreshed; a structural change
// then reloads through the master CLI, and the new worker starts with the
// health the old one had found and the drain.
func TestHAProxyStateAcrossReload(t *testing.T) {
	l := startHAProxyLab(t, stateTmpl, nil, true)
	text, dest, src, p, dir := l.text, l.dest, l.src, l.proc, l.dir

	metrics, reg := newMetrics()
	tg := mkTarget(t, "lb", text, render.TargetConfig{Destination: dest, Runtime: hapRuntime(haproxy.RuntimeConfig{Master: p.MasterSocket()}, reg)},
		render.Options{Metrics: metrics})
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	reloads := func() int { return l.showProc(t, ctx).Master.Reloads }
	client := l.client
	state := func(name string) haproxy.ServerState {
		t.Helper()
		states, err := client.ShowServersState(ctx, "be")
		if err != nil {
			t.Fatal(err)
		}
		for _, s := range states {
			if s.Name == name {
				return s
			}
		}
		t.Fatalf("no server be/%s in %+v", name, states)
		return haproxy.ServerState{}
	}
	r0 := reloads()
	// Drift: a weight changed by hand. The next live change repairs it
	// instead of reloading.
	if _, err := client.Command(ctx, "set server be/down weight 5"); err != nil {
		t.Fatal(err)
	}

	snap := src.change(t, map[string]string{"/rewire/app/drain": "yes"})
	if changed, err := tg.Apply(ctx, snap); err != nil || !changed {
		t.Fatalf("Apply(drain) = %v, %v, want true, nil", changed, err)
	}
	if got := reloads(); got != r0 {
		t.Errorf("master reloads after a drain mark = %d, want %d (applied live)", got, r0)
	}
	if s := state("up"); !s.Drain() || s.Weight != 10 {
		t.Errorf("be/up after the drain mark: %+v, want drain with weight 10", s)
	}
	if how := tg.Status().LastApply; !strings.HasPrefix(how, "live: 1 server changes") {
		t.Errorf("Status().LastApply after the drain mark = %q, want live: 1 server changes ...", how)
	}
	if s := state("down"); s.Weight != 1 {
		t.Errorf("be/down weight after the live change = %d, want 1 (the file's; the hand change repaired)", s.Weight)
	}
	saved := readFile(t, filepath.Join(dir, "state"))
	if !strings.Contains(saved, " up ") {
		t.Errorf("state file after a live change has no line for be/up:\n%s", saved)
	}

	// Then the running haproxy finds server "down" down: only a state file
	// written just before the reload knows it.
	if _, err := client.Command(ctx, "set server be/down health down"); err != nil {
		t.Fatal(err)
	}
	snap = src.change(t, map[string]string{"/rewire/app/balance": "leastconn"})
	if changed, err := tg.Apply(ctx, snap); err != nil || !changed {
		t.Fatalf("Apply(balance leastconn) = %v, %v, want true, nil", changed, err)
	}
	if got := reloads(); got != r0+1 {
		t.Errorf("master reloads after a balance change = %d, want %d", got, r0+1)
	}
	if how := tg.Status().LastApply; !strings.HasPrefix(how, "reloaded: structure: backend be:") {
		t.Errorf("Status().LastApply after the balance change = %q, want reloaded: structure: backend be: ...", how)
	}
	if s := state("down"); s.OpState != haproxy.OpStopped {
		t.Errorf("be/down after the reload: %+v, want still down (op state 0): the state file keeps health", s)
	}
	if s := state("up"); !s.Drain() || s.OpState != haproxy.OpRunning {
		t.Errorf("be/up after the reload: %+v, want up and draining", s)
	}
	if n := metricValue(t, reg, "templater_haproxy_state_saves_total", "template", "lb", "result", "ok"); n < 2 {
		t.Errorf("templater_haproxy_state_saves_total{result=ok} = %v, want ≥ 2 (after the live change, before the reload)", n)
	}
}

// confirmTmpl is an haproxy config with an admin socket and a key that
// changes its structure (so every change reloads).
const confirmTmpl = `global
    maxconn 64
    stats socket {{ key "app/dir" }}/{{ keyOrDefault "app/sock" "admin.sock" }} mode 600 level admin
defaults
    mode http
    timeout connect 1s
    timeout client 5s
    timeout server 5s
frontend fe
    bind 127.0.0.1:PORT
    default_backend be
backend be
    balance {{ keyOrDefault "app/balance" "roundrobin" }}
    server s1 127.0.0.1:1
`

// TestReloadConfirmed: after a reload command, the templater waits for a
// new haproxy worker on the stats socket. A reload whose signal is lost
// (the command does nothing the first time) is run again; one that never
// starts a new worker fails the apply and the previous file comes back.
func TestReloadConfirmed(t *testing.T) {
	l := startHAProxyLab(t, confirmTmpl, nil, false)
	text, dest, src, p, dir := l.text, l.dest, l.src, l.proc, l.dir
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()

	// The first run of the reload command loses the signal; later runs
	// deliver it.
	mark := filepath.Join(dir, "lost-once")
	lossy := render.Command{Shell: fmt.Sprintf("if [ -e %[1]s ]; then kill -USR2 %[2]d; else touch %[1]s; fi", mark, p.Pid())}
	metrics, reg := newMetrics()
	hc := hapRuntime(haproxy.RuntimeConfig{Timeout: time.Second}, reg)
	tg := mkTarget(t, "lb", text, render.TargetConfig{Destination: dest, Reload: lossy, Runtime: hc}, render.Options{Metrics: metrics})
	snap := src.change(t, map[string]string{"/rewire/app/balance": "leastconn"})
	if changed, err := tg.Apply(ctx, snap); err != nil || !changed {
		t.Fatalf("Apply(leastconn) with a lost reload signal = %v, %v, want true, nil", changed, err)
	}
	if n := metricValue(t, reg, "templater_reloads_total", "template", "lb", "result", "repeated"); n != 1 {
		t.Errorf("templater_reloads_total{result=repeated} = %v, want 1", n)
	}
	if st := l.showProc(t, ctx); st.Master.Reloads != 1 {
		t.Errorf("show proc = %+v: want 1 reload (the lost signal sent again, once)", st)
	}

	// The stats socket moves: the new worker is looked for on the new one.
	snap = src.change(t, map[string]string{"/rewire/app/sock": "moved.sock"})
	if changed, err := tg.Apply(ctx, snap); err != nil || !changed {
		t.Fatalf("Apply(stats socket moved) = %v, %v, want true, nil", changed, err)
	}
	if n := metricValue(t, reg, "templater_reloads_total", "template", "lb", "result", "repeated"); n != 1 {
		t.Errorf("templater_reloads_total{result=repeated} after the socket moved = %v, want still 1", n)
	}

	// A reload command that never reloads: the apply fails and the file
	// that haproxy runs comes back.
	good := readFile(t, dest)
	tg = mkTarget(t, "lb", text, render.TargetConfig{Destination: dest, Reload: render.Command{Argv: []string{"true"}}, Runtime: hc}, render.Options{})
	snap = src.change(t, map[string]string{"/rewire/app/balance": "first"})
	_, err := tg.Apply(ctx, snap)
	var e *render.Error
	if !errors.As(err, &e) || e.Stage != render.StageReload || !strings.Contains(err.Error(), "no new haproxy worker") {
		t.Fatalf("Apply with a reload that does nothing = %v, want a reload failure naming the missing worker", err)
	}
	if now := readFile(t, dest); now != good {
		t.Errorf("destination after an unconfirmed reload =\n%s\nwant the previous file back", now)
	}
}

// TestGroupReloadSavesUnchangedHAProxyState: an haproxy template shares its
// reload with another template. A change to the other one alone reloads
// haproxy too, so the haproxy template's state file is written then as
// well: the server haproxy found down stays down.
func TestGroupReloadSavesUnchangedHAProxyState(t *testing.T) {
	l := startHAProxyLab(t, stateTmpl, map[string]string{"/rewire/app/msg": "0"}, true)
	text, dest, src, p, client := l.text, l.dest, l.src, l.proc, l.client
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	if _, err := client.Command(ctx, "set server be/down health down"); err != nil {
		t.Fatal(err)
	}

	reload := render.Shell(fmt.Sprintf("kill -USR2 %d", p.Pid()))
	m, reg := newMetrics()
	lb := mkTarget(t, "lb", text, render.TargetConfig{Destination: dest, Reload: reload, Runtime: hapRuntime(haproxy.RuntimeConfig{}, reg)}, render.Options{Metrics: m})
	other := mkTarget(t, "map", "msg {{ key \"app/msg\" }}\n", render.TargetConfig{Reload: reload}, render.Options{Metrics: m})
	startRunner(t, render.RunnerOptions{Source: src, Targets: []*render.Target{lb, other}})
	src.change(t, map[string]string{"/rewire/app/msg": "1"})
	rev := float64(src.Current().Rev)
	waitUntil(t, 20*time.Second, "the map template's change applied", func() bool {
		return metricValue(t, reg, "templater_template_revision", "template", "map") == rev
	})
	if st := l.showProc(t, ctx); st.Master.Reloads == 0 {
		t.Fatalf("show proc = %+v: want haproxy reloaded with its group", st)
	}
	states, err := client.ShowServersState(ctx, "be")
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range states {
		if s.Name == "down" && s.OpState != haproxy.OpStopped {
			t.Errorf("be/down after a group reload = %+v, want still down: the unchanged haproxy template's state file must be written too", s)
		}
	}
	if n := metricValue(t, reg, "templater_haproxy_state_saves_total", "template", "lb", "result", "ok"); n < 1 {
		t.Errorf("templater_haproxy_state_saves_total{template=lb,result=ok} = %v, want ≥ 1", n)
	}
}

// TestHAProxyReconcile: with nothing changing in the registry, a weight
// changed by hand on haproxy's socket is put back to the file's by the
// periodic reconcile, without a reload.
func TestHAProxyReconcile(t *testing.T) {
	l := startHAProxyLab(t, stateTmpl, nil, true)
	m, reg := newMetrics()
	tg := mkTarget(t, "lb", l.text, render.TargetConfig{Destination: l.dest,
		Runtime: hapRuntime(haproxy.RuntimeConfig{Master: l.proc.MasterSocket(), Reconcile: 50 * time.Millisecond}, reg)}, render.Options{Metrics: m})
	startRunner(t, render.RunnerOptions{Source: l.src, Targets: []*render.Target{tg}})
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	waitUntil(t, 10*time.Second, "the first apply", func() bool {
		return metricValue(t, reg, "templater_template_revision", "template", "lb") == float64(l.src.Current().Rev)
	})
	if _, err := l.client.Command(ctx, "set server be/down weight 7"); err != nil {
		t.Fatal(err)
	}
	weight := func() int {
		states, err := l.client.ShowServersState(ctx, "be")
		if err != nil {
			t.Fatal(err)
		}
		for _, s := range states {
			if s.Name == "down" {
				return s.Weight
			}
		}
		t.Fatal("no server be/down")
		return 0
	}
	// The repair is counted once Converge has applied and verified it, so
	// wait on the counter: when it moves, the weight must already be back.
	waitUntil(t, 10*time.Second, "templater_haproxy_drift_repairs_total ≥ 1", func() bool {
		return metricValue(t, reg, "templater_haproxy_drift_repairs_total", "template", "lb") >= 1
	})
	if w := weight(); w != 1 {
		t.Errorf("be/down's weight after a counted repair = %d, want the file's 1", w)
	}
	if st := l.showProc(t, ctx); st.Master.Reloads != 0 {
		t.Errorf("show proc = %+v: want no reload", st)
	}
	if d := tg.Status().Drift; d != "" {
		t.Errorf("Status().Drift = %q after a repair, want none", d)
	}
}
