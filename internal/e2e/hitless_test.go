package e2e

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/rewire/rewire/bench/hitless/lab"
	"github.com/rewire/rewire/internal/etcdtest"
	"github.com/rewire/rewire/internal/haproxytest"
)

// startLab runs the hitless lab (bench/hitless/lab) in live mode: etcd,
// the templater binary with examples/haproxy and `haproxy: {}`, and a
// master-worker haproxy the templater reloads with SIGUSR2.
func startLab(t *testing.T, instances int) *lab.Lab {
	t.Helper()
	skipShort(t)
	hap := haproxytest.Binary(t)
	e := etcdtest.Start(t)
	// Not t.TempDir(): the admin socket path must fit in 107 bytes.
	dir, err := os.MkdirTemp("", "hitless-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	tmpl, err := filepath.Abs("../../examples/haproxy/haproxy.cfg.tmpl")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	l, err := lab.Start(ctx, lab.Options{Endpoints: e.Endpoints, Templater: bins.templater, HAProxy: hap,
		Template: tmpl, Dir: dir, Live: true, Instances: instances, Backends: true})
	if err != nil {
		t.Fatalf("lab.Start: %v", err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("templater log:\n%s\nhaproxy log:\n%s", l.Log("templater"), l.Log("haproxy"))
		}
		l.Close()
	})
	return l
}

// reloadMetrics returns the templater's reload counters.
func reloadMetrics(t *testing.T, l *lab.Lab) map[string]float64 {
	t.Helper()
	m := map[string]float64{}
	for _, p := range []string{"templater_reloads_total", "templater_haproxy_reloads_total", "templater_haproxy_live_changes_total", "templater_render_failures_total"} {
		s, err := l.MetricSamples(p + "{")
		if err != nil {
			t.Fatalf("metrics: %v", err)
		}
		for k, v := range s {
			m[k] = v
		}
	}
	return m
}

func sumPrefix(m map[string]float64, prefix string) float64 {
	sum := 0.0
	for k, v := range m {
		if len(k) >= len(prefix) && k[:len(prefix)] == prefix {
			sum += v
		}
	}
	return sum
}

// TestHitlessLive runs the hitless change mix (100 health flips, 30 drains,
// 30 additions, 30 removals, 20 weight changes) through the registry while
// 20 keep-alive connections hammer haproxy, and checks that not one
// request fails and nothing reloads: every change goes through the
// runtime API.
func TestHitlessLive(t *testing.T) {
	l := startLab(t, 6)
	before := reloadMetrics(t, l)
	load := lab.StartLoad(t.Context(), "http://"+l.Bind+"/web/", 20, 5*time.Minute)
	stopped := false
	defer func() {
		if !stopped {
			load.Stop()
		}
	}()
	if err := lab.Poll(t.Context(), 10*time.Second, "the first answered requests", func() error {
		if ok, _, _ := load.Counts(); ok < 100 {
			return fmt.Errorf("%d requests answered", ok)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	t0 := time.Now()
	writes, err := l.Run(t.Context(), lab.HitlessMix, 5, 2, 20*time.Second)
	elapsed := time.Since(t0)
	res := load.Stop()
	stopped = true
	if err != nil {
		t.Fatalf("after %d registry writes: %v", writes, err)
	}
	delta := lab.Delta(before, reloadMetrics(t, l))
	t.Logf("%d changes (%d registry writes) in %s; %d servers at the end", lab.HitlessMix.Total(), writes, elapsed.Round(time.Millisecond), len(l.Model))
	t.Logf("load: %d requests, %d 2xx, %d non-2xx, %d transport errors; latency p50 %s p99 %s max %s",
		res.Requests, res.OK, res.Non2xx, res.Errors, res.P50, res.P99, res.Max)
	for k, v := range delta {
		t.Logf("metric delta %s = %g", k, v)
	}
	if res.Non2xx != 0 || res.Errors != 0 {
		t.Errorf("%d non-2xx responses and %d transport errors, want 0 and 0; first: %q", res.Non2xx, res.Errors, res.Samples)
	}
	if res.OK == 0 {
		t.Error("no request answered")
	}
	if n := sumPrefix(delta, "templater_haproxy_reloads_total{"); n != 0 {
		t.Errorf("templater_haproxy_reloads_total grew by %g, want 0 (every change live)", n)
	}
	if n := sumPrefix(delta, "templater_reloads_total{"); n != 0 {
		t.Errorf("templater_reloads_total grew by %g, want 0", n)
	}
	if n := sumPrefix(delta, "templater_haproxy_live_changes_total{"); n < float64(writes) {
		t.Errorf("templater_haproxy_live_changes_total grew by %g, want at least %d (one per write)", n, writes)
	}
	// Live-first: haproxy takes a server change before the new file is
	// checked and written, so the file may be one check behind at the end.
	if err := lab.Poll(t.Context(), 10*time.Second, "the rendered file to equal haproxy's live state", l.VerifyFile); err != nil {
		t.Errorf("at the end, haproxy's live state differs from the rendered file: %v", err)
	}
}

// TestHitlessFallback checks the two ways a change does not go live: a
// config haproxy -c rejects never reaches haproxy (old file, old live
// state), and a runtime command haproxy refuses falls back to a checked
// reload after which the live state equals the file again.
func TestHitlessFallback(t *testing.T) {
	l := startLab(t, 4)
	ctx := t.Context()
	m0 := reloadMetrics(t, l)
	waitMetric := func(what, prefix string, want float64) {
		t.Helper()
		err := lab.Poll(ctx, 20*time.Second, what, func() error {
			if got := sumPrefix(reloadMetrics(t, l), prefix) - sumPrefix(m0, prefix); got != want {
				return fmt.Errorf("%s grew by %g, want %g", prefix, got, want)
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	const checkFailures = `templater_render_failures_total{stage="check"`

	// 1. A bind address haproxy -c rejects: the template accepts it (no
	// whitespace, quote or '#'), the check fails, the old file stays.
	good, err := os.ReadFile(l.Dest)
	if err != nil {
		t.Fatal(err)
	}
	if err := l.PutKey(ctx, "haproxy/bind", "127.0.0.1:notaport"); err != nil {
		t.Fatal(err)
	}
	waitMetric("the check to reject the bad bind", checkFailures, 1)
	// A server change while the bad key is there fails the check too: it
	// must not reach haproxy, neither in the file nor live.
	if err := l.Update(ctx, "web-1", func(in *lab.Instance) { in.Critical = true }); err != nil {
		t.Fatal(err)
	}
	waitMetric("the check to reject the next render", checkFailures, 2)
	if got, _ := os.ReadFile(l.Dest); string(got) != string(good) {
		t.Fatalf("the rendered file changed although haproxy -c failed:\n%s", got)
	}
	st, err := l.Client.ShowServersState(ctx, lab.Service)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range st {
		if s.Name == "web-1" && s.AdminMaint() {
			t.Fatal("web-1 is in maintenance live, although its change failed the check")
		}
	}
	if err := l.VerifyFile(); err != nil {
		t.Fatalf("after the failed check, live state differs from the old file: %v", err)
	}
	// Fixing the key lets the held server change through, live.
	if err := l.PutKey(ctx, "haproxy/bind", l.Bind); err != nil {
		t.Fatal(err)
	}
	if _, err := l.WaitReflected(ctx, 20*time.Second); err != nil {
		t.Fatal(err)
	}
	// Live-first: haproxy shows the change before its check has passed and
	// the file is written; wait for the file too, or the deletion below
	// races the end of this apply (which would repair it as drift).
	if err := lab.Poll(ctx, 20*time.Second, "the file written after the live change", l.VerifyFile); err != nil {
		t.Fatal(err)
	}
	m1 := reloadMetrics(t, l)
	if n := sumPrefix(m1, "templater_reloads_total{") - sumPrefix(m0, "templater_reloads_total{"); n != 0 {
		t.Errorf("templater_reloads_total grew by %g during the failed check and its fix, want 0", n)
	}

	// 2. A server deleted behind the templater's back: the next change to
	// it is refused by haproxy, and the templater reloads instead.
	dctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	if err := l.Client.DelServer(dctx, lab.Service, "web-2"); err != nil {
		t.Fatalf("del server web/web-2: %v", err)
	}
	if err := l.VerifyFile(); err == nil {
		t.Fatal("Verify found no difference after del server web/web-2")
	}
	if err := l.Update(ctx, "web-2", func(in *lab.Instance) { in.Weight = 42 }); err != nil {
		t.Fatal(err)
	}
	waitMetric("a refused-change reload", `templater_haproxy_reloads_total{reason="refused"`, 1)
	waitMetric("the reload", `templater_reloads_total{result="ok"`, 1)
	if err := lab.Poll(ctx, 20*time.Second, "live state equal to the file after the reload", l.VerifyFile); err != nil {
		t.Fatal(err)
	}
	if err := l.Reflected(); err != nil {
		t.Fatalf("after the reload: %v", err)
	}
	for k, v := range lab.Delta(m0, reloadMetrics(t, l)) {
		t.Logf("metric delta %s = %g", k, v)
	}
}
