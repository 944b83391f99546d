package render_test

import (
	"context"
	"fmt"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/rewire/rewire/internal/testutil"
	"github.com/rewire/rewire/registry/schema"
	"github.com/rewire/rewire/render"
)

// --- Runner helpers, shared by runner_test.go, guard_test.go and deps_test.go. ---

// memSource is an in-memory render.Source: one schema.Index changed by the
// test, so that snapshots share unchanged services exactly as the
// registry.Watcher's do.
type memSource struct {
	mu      sync.Mutex
	x       *schema.Index
	rev     int64
	cur     *schema.Snapshot
	updates chan struct{}
}

// newMemSource returns a source holding kv at revision 1. The first
// snapshot is not notified on Updates: a Runner applies what Current holds
// when it starts, so no kick (which would debounce the start by Wait.Min,
// or cut a retry backoff short) muddles the tests.
func newMemSource(t testing.TB, kv map[string]string) *memSource {
	t.Helper()
	s := &memSource{x: schema.NewIndex(keys), updates: make(chan struct{}, 1)}
	s.change(t, kv)
	<-s.updates
	return s
}

func (s *memSource) Current() *schema.Snapshot {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.cur
}

func (s *memSource) Updates() <-chan struct{} { return s.updates }

// change puts kv and deletes dels at the next revision, publishes the
// snapshot and returns it.
func (s *memSource) change(t testing.TB, kv map[string]string, dels ...string) *schema.Snapshot {
	t.Helper()
	s.mu.Lock()
	for k, v := range kv {
		if err := s.x.Put(k, []byte(v)); err != nil {
			s.mu.Unlock()
			t.Fatalf("Put(%q): %v", k, err)
		}
	}
	for _, k := range dels {
		s.x.Delete(k)
	}
	s.rev++
	s.cur = s.x.Snapshot(s.rev)
	snap := s.cur
	s.mu.Unlock()
	select {
	case s.updates <- struct{}{}:
	default:
	}
	return snap
}

// rec returns the key and record of one instance of svc.
func rec(svc, id, shallow string) (key, value string) {
	n := 0
	for _, r := range id {
		n = n*31 + int(r)
	}
	return keys.Instance(svc, id), fmt.Sprintf(`{"v":1,"service":%q,"id":%q,"address":"10.0.%d.%d","port":80,"health":{"shallow":%q}}`,
		svc, id, n%250, n%200+1, shallow)
}

// fleet returns n passing instances of each service, named svc-1..svc-n.
func fleet(n int, svcs ...string) map[string]string {
	kv := map[string]string{}
	for _, svc := range svcs {
		for i := 1; i <= n; i++ {
			k, v := rec(svc, fmt.Sprintf("%s-%d", svc, i), "passing")
			kv[k] = v
		}
	}
	return kv
}

// instKeys returns the instance keys of the named ids of svc.
func instKeys(svc string, ids ...int) []string {
	var out []string
	for _, i := range ids {
		out = append(out, keys.Instance(svc, fmt.Sprintf("%s-%d", svc, i)))
	}
	return out
}

// newMetrics returns render metrics registered with a fresh registry.
func newMetrics() (*render.Metrics, *prometheus.Registry) {
	reg := prometheus.NewRegistry()
	return render.NewMetrics(reg), reg
}

// metricValue sums the samples of the named metric whose labels include
// every name=value pair of labels.
func metricValue(t testing.TB, reg *prometheus.Registry, name string, labels ...string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	sum := 0.0
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	metrics:
		for _, m := range mf.GetMetric() {
			for i := 0; i+1 < len(labels); i += 2 {
				found := false
				for _, lp := range m.GetLabel() {
					if lp.GetName() == labels[i] && lp.GetValue() == labels[i+1] {
						found = true
					}
				}
				if !found {
					continue metrics
				}
			}
			sum += m.GetCounter().GetValue() + m.GetGauge().GetValue()
		}
	}
	return sum
}

// applies counts the renders of template name that reached the file
// comparison (changed or unchanged): every apply that was not skipped.
func applies(t testing.TB, reg *prometheus.Registry, name string) int {
	t.Helper()
	return int(metricValue(t, reg, "templater_renders_total", "template", name) +
		metricValue(t, reg, "templater_renders_unchanged_total", "template", name))
}

// skips counts the registry changes template name did not render for.
func skips(t testing.TB, reg *prometheus.Registry, name string) int {
	t.Helper()
	return int(metricValue(t, reg, "templater_renders_skipped_total", "template", name))
}

// mkTarget writes text to NAME.tmpl in a fresh directory and returns a
// Target rendering it into cfg.Destination (default: NAME.conf beside it).
func mkTarget(t testing.TB, name, text string, cfg render.TargetConfig, opts render.Options) *render.Target {
	t.Helper()
	dir := t.TempDir()
	cfg.Name, cfg.Source = name, filepath.Join(dir, name+".tmpl")
	writeFile(t, cfg.Source, text)
	if cfg.Destination == "" {
		cfg.Destination = filepath.Join(dir, name+".conf")
	}
	opts.Keys = keys
	tg, err := render.NewTarget(cfg, opts)
	if err != nil {
		t.Fatalf("NewTarget(%s): %v", name, err)
	}
	return tg
}

// startRunner runs a Runner until the test ends. Inside a synctest bubble
// it runs in the bubble.
func startRunner(t testing.TB, opts render.RunnerOptions) *render.Runner {
	t.Helper()
	r := render.NewRunner(opts)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		r.Run(ctx)
	}()
	t.Cleanup(func() {
		cancel()
		select {
		case <-done:
		case <-time.After(30 * time.Second):
			t.Errorf("Runner.Run did not return 30s after its context ended")
		}
	})
	return r
}

// fileState is what identifies one version of a file on disk.
type fileState struct {
	text string
	fi   os.FileInfo
}

func stat(t testing.TB, path string) fileState {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return fileState{readFile(t, path), fi}
}

// same reports whether path is still the very file of s: same inode, same
// mtime, same bytes.
func (s fileState) same(t testing.TB, path string) bool {
	t.Helper()
	now := stat(t, path)
	return now.text == s.text && os.SameFile(now.fi, s.fi) && now.fi.ModTime().Equal(s.fi.ModTime())
}

var waitUntil = testutil.WaitFor

// logTimes is a slog.Handler that keeps the time of every record whose
// message is msg (under synctest: the bubble's fake clock).
type logTimes struct {
	msg   string
	mu    sync.Mutex
	times []time.Time
}

func (h *logTimes) Enabled(context.Context, slog.Level) bool { return true }
func (h *logTimes) Handle(_ context.Context, r slog.Record) error {
	if r.Message == h.msg {
		h.mu.Lock()
		h.times = append(h.times, r.Time)
		h.mu.Unlock()
	}
	return nil
}
func (h *logTimes) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h *logTimes) WithGroup(string) slog.Handler      { return h }

func (h *logTimes) get() []time.Time {
	h.mu.Lock()
	defer h.mu.Unlock()
	return slices.Clone(h.times)
}

// lineTimes reads a file of `date +%s.%N` lines.
func lineTimes(t testing.TB, path string) []time.Time {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	var out []time.Time
	for _, f := range strings.Fields(string(b)) {
		v, err := strconv.ParseFloat(f, 64)
		if err != nil {
			t.Fatalf("%s: %q: %v", path, f, err)
		}
		sec, frac := math.Modf(v)
		out = append(out, time.Unix(int64(sec), int64(frac*1e9)))
	}
	return out
}

// --- Quiescence (synctest: no commands run in these targets). ---

func msgKV(i int) map[string]string { return map[string]string{"/rewire/app/msg": strconv.Itoa(i)} }

func TestRunnerWaitBoundsRendersOfABurst(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		m, reg := newMetrics()
		src := newMemSource(t, msgKV(0))
		tg := mkTarget(t, "site", msgTmpl, render.TargetConfig{}, render.Options{Metrics: m})
		startRunner(t, render.RunnerOptions{Source: src, Targets: []*render.Target{tg},
			Wait: render.WaitConfig{Min: 100 * time.Millisecond, Max: time.Second}})
		synctest.Wait()
		before := applies(t, reg, "site")

		// 1,000 updates, one every 10ms, for 10s: never a 100ms (Min) gap,
		// so only Max ends a wait. Each render happens at most Max after the
		// first change it waited for, and the next wait starts with the
		// next change, so renders are at least Max apart: at most
		// ceil(10s/1s) = 10 during the burst, +1 for the last change.
		const n, every = 1000, 10 * time.Millisecond
		const maxRenders = 10 + 1
		t0 := time.Now()
		for i := 1; i <= n; i++ {
			time.Sleep(every)
			src.change(t, msgKV(i))
		}
		burst := time.Since(t0)
		time.Sleep(2 * time.Second) // fake time: let the last wait end
		synctest.Wait()
		got := applies(t, reg, "site") - before
		t.Logf("%d updates over %v: %d renders", n, burst, got)
		if got > maxRenders {
			t.Errorf("renders during a %v burst with wait {100ms, 1s} = %d, want at most %d", burst, got, maxRenders)
		}
		if got < 9 {
			t.Errorf("renders during a %v burst with wait {100ms, 1s} = %d, want at least 9 (max must force renders)", burst, got)
		}
		if got, want := readFile(t, tg.Destination()), fmt.Sprintf("# site\nmsg=%d\n", n); got != want {
			t.Errorf("destination after the burst = %q, want the last change %q", got, want)
		}
	})
}

func TestRunnerWaitMinRendersOnceAfterBurst(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		m, reg := newMetrics()
		src := newMemSource(t, msgKV(0))
		const min = 100 * time.Millisecond
		tg := mkTarget(t, "site", msgTmpl, render.TargetConfig{}, render.Options{Metrics: m})
		startRunner(t, render.RunnerOptions{Source: src, Targets: []*render.Target{tg}, Wait: render.WaitConfig{Min: min}})
		synctest.Wait()
		before := applies(t, reg, "site")
		const n = 50
		for i := 1; i <= n; i++ {
			time.Sleep(min / 2) // gaps shorter than Min
			src.change(t, msgKV(i))
		}
		last := time.Now()
		time.Sleep(min - time.Millisecond)
		synctest.Wait()
		if got := applies(t, reg, "site") - before; got != 0 {
			t.Errorf("renders %v after the last of %d changes %v apart (min %v) = %d, want 0", min-time.Millisecond, n, min/2, min, got)
		}
		time.Sleep(2 * time.Millisecond)
		synctest.Wait()
		if got := applies(t, reg, "site") - before; got != 1 {
			t.Errorf("renders %v after the burst = %d, want 1", time.Since(last), got)
		}
		if got, want := readFile(t, tg.Destination()), fmt.Sprintf("# site\nmsg=%d\n", n); got != want {
			t.Errorf("destination = %q, want %q", got, want)
		}
	})
}

func TestRunnerWaitMaxBoundsDelayFromFirstChange(t *testing.T) {
	tests := []struct {
		name string
		wait render.WaitConfig
		want time.Duration // delay of the first render after the first change
	}{
		{"max ends an endless burst", render.WaitConfig{Min: 100 * time.Millisecond, Max: time.Second}, time.Second},
		{"per-template wait: max equal to min", render.WaitConfig{Min: 300 * time.Millisecond, Max: 300 * time.Millisecond}, 300 * time.Millisecond},
		{"no wait renders at once", render.WaitConfig{}, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				src := newMemSource(t, msgKV(0))
				w := tc.wait
				tg := mkTarget(t, "site", msgTmpl, render.TargetConfig{Wait: &w}, render.Options{})
				// The runner-wide wait is ignored: the template's own wins.
				startRunner(t, render.RunnerOptions{Source: src, Targets: []*render.Target{tg}, Wait: render.WaitConfig{Min: time.Hour, Max: time.Hour}})
				synctest.Wait()
				old := readFile(t, tg.Destination())
				ctx, cancel := context.WithCancel(t.Context())
				done := make(chan struct{})
				go func() { // a change every 10ms until cancelled
					defer close(done)
					for i := 1; ctx.Err() == nil; i++ {
						src.change(t, msgKV(i))
						select {
						case <-ctx.Done():
						case <-time.After(10 * time.Millisecond):
						}
					}
				}()
				t0 := time.Now()
				if tc.want > 0 {
					time.Sleep(tc.want - time.Millisecond)
					synctest.Wait()
					if got := readFile(t, tg.Destination()); got != old {
						t.Errorf("destination changed %v after the first change, want no render before %v", time.Since(t0), tc.want)
					}
					time.Sleep(time.Millisecond)
				}
				synctest.Wait()
				if got := readFile(t, tg.Destination()); got == old {
					t.Errorf("destination unchanged %v after the first change of a continuous burst, want a render by then", time.Since(t0))
				}
				cancel()
				<-done
			})
		})
	}
}

// --- Reload pacing: reload is a real command, so real time. ---

func TestRunnerReloadMinInterval(t *testing.T) {
	m, reg := newMetrics()
	src := newMemSource(t, msgKV(0))
	reloads := filepath.Join(t.TempDir(), "reloads")
	const interval = time.Second
	tg := mkTarget(t, "site", msgTmpl, render.TargetConfig{
		Reload:            render.Shell("date +%s.%N >> " + shq(reloads)),
		ReloadMinInterval: interval,
	}, render.Options{Metrics: m})
	startRunner(t, render.RunnerOptions{Source: src, Targets: []*render.Target{tg}})
	waitUntil(t, 5*time.Second, "first reload", func() bool { return len(lineTimes(t, reloads)) == 1 })

	// A change every 100ms for 3s. The first reload paced after the
	// initial one comes 1s after it, and one more at most every 1s after
	// that: ceil(3s/1s) = 3 during the changes, +1 for the last change.
	const maxReloads = 4
	tick := time.NewTicker(100 * time.Millisecond)
	var last *schema.Snapshot
	for t0, i := time.Now(), 1; time.Since(t0) < 3*time.Second; i++ {
		<-tick.C
		last = src.change(t, msgKV(i))
	}
	tick.Stop()
	waitUntil(t, 10*time.Second, "the last change reloaded", func() bool {
		return metricValue(t, reg, "templater_template_revision", "template", "site") == float64(last.Rev)
	})
	times := lineTimes(t, reloads)
	got := len(times) - 1
	t.Logf("%d changes over 3s with reload_min_interval %v: %d reloads", last.Rev-1, interval, got)
	if got > maxReloads || got < 2 {
		t.Errorf("reloads for changes every 100ms over 3s = %d, want 2..%d", got, maxReloads)
	}
	for i := 1; i < len(times); i++ {
		if gap := times[i].Sub(times[i-1]); gap < interval {
			t.Errorf("reload %d came %v after the previous one, want at least %v", i, gap, interval)
		}
	}
	if got, want := readFile(t, tg.Destination()), fmt.Sprintf("# site\nmsg=%d\n", last.Rev-1); got != want {
		t.Errorf("destination = %q, want the last change %q", got, want)
	}
}

// --- Groups: reload commands run, so real time. ---

func TestRunnerGroupReloadsOncePerChange(t *testing.T) {
	m, reg := newMetrics()
	src := newMemSource(t, msgKV(0))
	log := filepath.Join(t.TempDir(), "reloads")
	reload := render.Shell("echo reload >> " + shq(log))
	a := mkTarget(t, "a", msgTmpl, render.TargetConfig{Reload: reload}, render.Options{Metrics: m})
	b := mkTarget(t, "b", "b: {{ key \"app/msg\" }}\n", render.TargetConfig{Reload: reload}, render.Options{Metrics: m})
	startRunner(t, render.RunnerOptions{Source: src, Targets: []*render.Target{a, b}})
	for i := 0; i < 3; i++ {
		if i > 0 {
			src.change(t, msgKV(i))
		}
		rev := float64(src.Current().Rev)
		waitUntil(t, 5*time.Second, fmt.Sprintf("change %d applied to both", i), func() bool {
			return metricValue(t, reg, "templater_template_revision", "template", "a") == rev &&
				metricValue(t, reg, "templater_template_revision", "template", "b") == rev
		})
		if got, want := countLines(t, log), i+1; got != want {
			t.Errorf("after change %d: reloads = %d, want %d (one per change set for the group)", i, got, want)
		}
		if got, want := readFile(t, b.Destination()), fmt.Sprintf("b: %d\n", i); got != want {
			t.Errorf("b = %q, want %q", got, want)
		}
	}
}

func TestRunnerGroupFailedCheckDoesNotStopOthers(t *testing.T) {
	m, reg := newMetrics()
	src := newMemSource(t, map[string]string{"/rewire/app/msg": "good"})
	log := filepath.Join(t.TempDir(), "reloads")
	reload := render.Shell("echo reload >> " + shq(log))
	a := mkTarget(t, "a", msgTmpl, render.TargetConfig{Reload: reload, Check: render.Shell("! grep -q msg=bad {{ .Staged }}")}, render.Options{Metrics: m})
	b := mkTarget(t, "b", msgTmpl, render.TargetConfig{Reload: reload}, render.Options{Metrics: m})
	startRunner(t, render.RunnerOptions{Source: src, Targets: []*render.Target{a, b}})
	waitUntil(t, 5*time.Second, "first reload", func() bool { return countLines(t, log) == 1 })
	good := readFile(t, a.Destination())

	src.change(t, map[string]string{"/rewire/app/msg": "bad"})
	waitUntil(t, 5*time.Second, "b applied", func() bool { return strings.Contains(readFile(t, b.Destination()), "msg=bad") })
	waitUntil(t, 5*time.Second, "group reloaded", func() bool { return countLines(t, log) == 2 })
	waitUntil(t, 5*time.Second, "a's check failure counted", func() bool {
		return metricValue(t, reg, "templater_render_failures_total", "template", "a", "stage", "check") >= 1
	})
	if got := countLines(t, log); got != 2 {
		t.Errorf("reloads = %d, want 2 (first render, then b's change)", got)
	}
	if got := readFile(t, a.Destination()); got != good {
		t.Errorf("a after its check failed = %q, want the previous %q", got, good)
	}
	if st := a.Status(); !strings.Contains(st.Error, "check") {
		t.Errorf("a.Status().Error = %q, want the check failure", st.Error)
	}
	if st := b.Status(); st.Error != "" {
		t.Errorf("b.Status().Error = %q, want none", st.Error)
	}
}

func TestRunnerGroupsDoNotDelayEachOther(t *testing.T) {
	src := newMemSource(t, msgKV(0))
	dir := t.TempDir()
	started := filepath.Join(dir, "a-checks")
	const slow = 2 * time.Second
	a := mkTarget(t, "a", msgTmpl, render.TargetConfig{
		Check:  render.Shell(fmt.Sprintf("echo >> %s; sleep %g; exit 1", shq(started), slow.Seconds())),
		Reload: render.Shell("true a"),
	}, render.Options{})
	b := mkTarget(t, "b", msgTmpl, render.TargetConfig{Reload: render.Shell("true b")}, render.Options{})
	startRunner(t, render.RunnerOptions{Source: src, Targets: []*render.Target{a, b}})
	waitUntil(t, 5*time.Second, "b rendered and a's check running", func() bool {
		_, err := os.Stat(b.Destination())
		return err == nil && countLines(t, started) > 0
	})
	t0 := time.Now()
	src.change(t, msgKV(1))
	waitUntil(t, 5*time.Second, "b applied the change", func() bool { return readFile(t, b.Destination()) == "# site\nmsg=1\n" })
	d := time.Since(t0)
	t.Logf("b applied %v after the change while a's check takes %v", d, slow)
	if d > time.Second {
		t.Errorf("b applied %v after the change, want well under a's %v check (at most 1s)", d, slow)
	}
}

// --- Verify: real commands. ---

func TestTargetVerifyFailureRollsBack(t *testing.T) {
	dir, cmds := t.TempDir(), t.TempDir()
	dest := filepath.Join(dir, "site.conf")
	reloads, seen := filepath.Join(cmds, "reloads"), filepath.Join(cmds, "seen")
	tg := newTarget(t, msgTmpl, dest, render.TargetConfig{
		Mode:   0o640,
		Reload: render.Shell(fmt.Sprintf("echo reload >> %s; grep msg= {{ .Destination }} >> %s", shq(reloads), shq(seen))),
		Verify: render.Shell("! grep -q msg=bad {{ .Destination }}"),
	})
	if changed, err := tg.Apply(t.Context(), msgSnap(t, "good")); err != nil || !changed {
		t.Fatalf("Apply(%q) = %v, %v, want true, nil", "good", changed, err)
	}
	good := stat(t, dest)
	changed, err := tg.Apply(t.Context(), msgSnap(t, "bad"))
	if changed || err == nil {
		t.Fatalf("Apply(%q) with a failing verify = %v, %v, want false and an error", "bad", changed, err)
	}
	asError(t, err, render.StageVerify)
	if got := readFile(t, dest); got != good.text {
		t.Errorf("destination after a failed verify = %q, want the previous %q restored", got, good.text)
	}
	if fi, err := os.Stat(dest); err != nil || fi.Mode().Perm() != 0o640 {
		t.Errorf("restored destination mode = %v (%v), want 0640", fi.Mode().Perm(), err)
	}
	if got, want := strings.Fields(readFile(t, seen)), []string{"msg=good", "msg=bad", "msg=good"}; !slices.Equal(got, want) {
		t.Errorf("reloads saw %q, want %q (the new file, then the restored one)", got, want)
	}
	if names := dirNames(t, dir); !slices.Equal(names, []string{"site.conf"}) {
		t.Errorf("directory holds %q after a rollback, want only site.conf", names)
	}
	if st := tg.Status(); !strings.Contains(st.Error, "verify") {
		t.Errorf("Status().Error = %q, want the verify failure", st.Error)
	}
}

// --- Reparse (synctest: no commands). ---

func TestRunnerReparse(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		src := newMemSource(t, map[string]string{"/rewire/app/msg": "one"})
		tg := mkTarget(t, "site", msgTmpl, render.TargetConfig{}, render.Options{})
		r := startRunner(t, render.RunnerOptions{Source: src, Targets: []*render.Target{tg}})
		synctest.Wait()
		dest := tg.Destination()
		edit := func(text string) (bool, error) {
			t.Helper()
			writeFile(t, tg.Source(), text)
			changed, err := tg.Reparse()
			if !r.Kick(tg.Name()) {
				t.Fatalf("Kick(%q) = false, want true", tg.Name())
			}
			synctest.Wait()
			return changed, err
		}

		if changed, err := edit("v2 {{ key \"app/msg\" }}\n"); !changed || err != nil {
			t.Fatalf("Reparse after an edit = %v, %v, want true, nil", changed, err)
		}
		if got, want := readFile(t, dest), "v2 one\n"; got != want {
			t.Errorf("after editing the source: destination = %q, want %q", got, want)
		}

		before := stat(t, dest)
		if changed, err := edit("v3 {{ key \"app/msg\" \n"); !changed || err == nil {
			t.Fatalf("Reparse after a broken edit = %v, %v, want true and an error", changed, err)
		}
		if !before.same(t, dest) {
			t.Errorf("a broken edit rewrote the destination: %q", readFile(t, dest))
		}
		st := tg.Status()
		if !strings.Contains(st.ParseError, "site.tmpl:1") {
			t.Errorf("Status().ParseError = %q, want the parse error naming site.tmpl:1", st.ParseError)
		}
		// The previous template stays in use for registry changes.
		src.change(t, map[string]string{"/rewire/app/msg": "two"})
		synctest.Wait()
		if got, want := readFile(t, dest), "v2 two\n"; got != want {
			t.Errorf("change while the source is broken: destination = %q, want %q from the previous template", got, want)
		}
		if r.Kick("nope") {
			t.Errorf("Kick(%q) = true for an unknown template", "nope")
		}

		if changed, err := edit("v4 {{ key \"app/msg\" }}\n"); !changed || err != nil {
			t.Fatalf("Reparse after fixing the source = %v, %v, want true, nil", changed, err)
		}
		if st := tg.Status(); st.ParseError != "" {
			t.Errorf("Status().ParseError after the fix = %q, want none", st.ParseError)
		}
		if got, want := readFile(t, dest), "v4 two\n"; got != want {
			t.Errorf("after fixing the source: destination = %q, want %q", got, want)
		}
		if changed, err := tg.Reparse(); changed || err != nil {
			t.Errorf("Reparse of an unchanged source = %v, %v, want false, nil", changed, err)
		}
	})
}

// --- Retry. ---

// TestRunnerRetryBackoff fails to write (the destination's directory is
// missing) and checks the retry schedule in fake time: exponential from
// 1s with jitter (each delay in [d/2, d]), capped at 30s, and no retries
// after it succeeds, all without any registry change.
func TestRunnerRetryBackoff(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := &logTimes{msg: "template not applied; the previous file stays in place"}
		dir := filepath.Join(t.TempDir(), "later")
		src := newMemSource(t, msgKV(1))
		tg := mkTarget(t, "site", msgTmpl, render.TargetConfig{Destination: filepath.Join(dir, "site.conf")},
			render.Options{Logger: slog.New(h)})
		startRunner(t, render.RunnerOptions{Source: src, Targets: []*render.Target{tg}})
		time.Sleep(3 * time.Minute)
		synctest.Wait()
		times := h.get()
		if len(times) < 8 {
			t.Fatalf("failed applies in 3 minutes = %d, want retries (at least 8)", len(times))
		}
		if st := tg.Status(); !strings.Contains(st.Error, "write") {
			t.Errorf("Status().Error = %q, want the write failure", st.Error)
		}
		for i := 1; i < len(times); i++ {
			d := min(time.Second<<(i-1), 30*time.Second)
			gap := times[i].Sub(times[i-1])
			if gap < d/2 || gap > d {
				t.Errorf("retry %d came %v after the previous attempt, want %v..%v", i, gap, d/2, d)
			}
		}

		if err := os.Mkdir(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		time.Sleep(30 * time.Second) // fake time: the longest backoff
		synctest.Wait()
		if got, want := readFile(t, tg.Destination()), "# site\nmsg=1\n"; got != want {
			t.Errorf("destination after the directory appeared = %q, want %q", got, want)
		}
		if st := tg.Status(); st.Error != "" {
			t.Errorf("Status().Error after a successful retry = %q, want none", st.Error)
		}
		n := len(h.get())
		time.Sleep(10 * time.Minute)
		synctest.Wait()
		if got := len(h.get()); got != n {
			t.Errorf("failed applies after success grew from %d to %d, want no more attempts", n, got)
		}
	})
}

// TestRunnerRetriesFailedCheck runs a real check command that fails until
// a flag file exists: the runner retries on its own and the change
// lands without any further registry change.
func TestRunnerRetriesFailedCheck(t *testing.T) {
	m, reg := newMetrics()
	flag := filepath.Join(t.TempDir(), "ok")
	src := newMemSource(t, msgKV(1))
	tg := mkTarget(t, "site", msgTmpl, render.TargetConfig{Check: render.Shell("test -e " + shq(flag))}, render.Options{Metrics: m})
	t0 := time.Now()
	startRunner(t, render.RunnerOptions{Source: src, Targets: []*render.Target{tg}})
	failures := func() float64 {
		return metricValue(t, reg, "templater_render_failures_total", "template", "site", "stage", "check")
	}
	waitUntil(t, 5*time.Second, "the check failed twice", func() bool { return failures() >= 2 })
	t1 := time.Since(t0)
	writeFile(t, flag, "")
	waitUntil(t, 5*time.Second, "the retry succeeded", func() bool {
		return metricValue(t, reg, "templater_renders_total", "template", "site") == 1
	})
	t.Logf("second failed check %v after start, success %v after start", t1.Round(time.Millisecond), time.Since(t0).Round(time.Millisecond))
	if t1 < 500*time.Millisecond {
		t.Errorf("second attempt %v after the first, want a backoff of at least 500ms", t1)
	}
	if got, want := readFile(t, tg.Destination()), "# site\nmsg=1\n"; got != want {
		t.Errorf("destination = %q, want %q", got, want)
	}
	if st := tg.Status(); st.Error != "" {
		t.Errorf("Status().Error = %q, want none after the successful retry", st.Error)
	}
}
