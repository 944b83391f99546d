package render

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/rewire/rewire/internal/backoff"
	"github.com/rewire/rewire/registry/schema"
	"github.com/rewire/rewire/render/haproxy"
)

// Source is where the Runner reads the registry: registry.Watcher
// satisfies it.
type Source interface {
	// Current returns the latest snapshot, or nil before the first read.
	Current() *schema.Snapshot
	// Updates receives a value after Current changes.
	Updates() <-chan struct{}
}

// RunnerOptions configures NewRunner.
type RunnerOptions struct {
	Source  Source
	Targets []*Target
	// Wait is the default quiescence; a template's own Wait overrides it.
	Wait   WaitConfig
	Logger *slog.Logger // nil: discard
}

// Runner applies targets as the registry changes. Targets that share a
// reload command form a group: they are applied together and reloaded
// once per change set. Each group runs in its own goroutine, so a slow or
// failing check or reload in one never delays another.
type Runner struct {
	src    Source
	groups []*group
	byName map[string]*group
	log    *slog.Logger
}

// NewRunner returns a Runner; call Run to start it.
func NewRunner(opts RunnerOptions) *Runner {
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	r := &Runner{src: opts.Source, byName: map[string]*group{}, log: log.With("component", "render.runner")}
	byReload := map[string]*group{}
	for _, t := range opts.Targets {
		key := t.cfg.Reload.String()
		g := byReload[key]
		if g == nil || t.cfg.Reload.IsZero() {
			g = newGroup(nil, log)
			r.groups = append(r.groups, g)
			if !t.cfg.Reload.IsZero() {
				byReload[key] = g
			}
		}
		g.add(t, opts.Wait)
		r.byName[t.Name()] = g
	}
	return r
}

// Run applies every target now and then after each change, until ctx
// ends; it returns after its goroutines exited. Because the Source only
// ever holds complete snapshots, an unreachable etcd leaves the files as
// they are.
func (r *Runner) Run(ctx context.Context) error {
	var wg sync.WaitGroup
	for _, g := range r.groups {
		wg.Go(func() { g.run(ctx, r.src) })
	}
	defer wg.Wait()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-r.src.Updates():
			for _, g := range r.groups {
				g.kickNow()
			}
		}
	}
}

// Kick asks for the named template to be applied again soon (after its
// source file was re-parsed). It reports whether the template exists.
func (r *Runner) Kick(name string) bool {
	g, ok := r.byName[name]
	if ok {
		g.kickNow()
	}
	return ok
}

// Targets returns every target, in configured order within groups.
func (r *Runner) Targets() []*Target {
	var out []*Target
	for _, g := range r.groups {
		out = append(out, g.targets...)
	}
	return out
}

// group is targets applied together and reloaded once.
type group struct {
	targets     []*Target
	reload      Command
	master      string // haproxy master CLI socket, used when reload is zero
	timeout     time.Duration
	minInterval time.Duration
	wait        WaitConfig
	kick        chan struct{}
	log         *slog.Logger

	// lastReload and reloadTook are used only by the group's goroutine
	// (or one Apply).
	lastReload time.Time
	reloadTook time.Duration // how long the last confirmed reload took to show a new worker
}

func newGroup(targets []*Target, log *slog.Logger) *group {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	g := &group{kick: make(chan struct{}, 1), log: log}
	for _, t := range targets {
		g.add(t, WaitConfig{})
	}
	return g
}

func (g *group) add(t *Target, def WaitConfig) {
	g.targets = append(g.targets, t)
	g.reload = t.cfg.Reload
	if t.cfg.HAProxy != nil && t.cfg.HAProxy.Master != "" {
		g.master = t.cfg.HAProxy.Master
	}
	g.timeout = max(g.timeout, t.cfg.CommandTimeout)
	g.minInterval = max(g.minInterval, t.cfg.ReloadMinInterval)
	w := def
	if t.cfg.Wait != nil {
		w = *t.cfg.Wait
	}
	g.wait.Min, g.wait.Max = max(g.wait.Min, w.Min), max(g.wait.Max, w.Max)
}

func (g *group) kickNow() {
	select {
	case g.kick <- struct{}{}:
	default:
	}
}

// run applies the group after each kick, debounced by the wait config,
// and retries failures with backoff, until ctx ends.
func (g *group) run(ctx context.Context, src Source) {
	timer := time.NewTimer(0) // apply at once on start
	defer timer.Stop()
	var first time.Time   // first kick of the current burst
	var retryAt time.Time // a failed apply is retried then
	force := true
	retry := backoff.New(time.Second, 30*time.Second)
	var reconcileC <-chan time.Time
	if d := g.reconcileEvery(); d > 0 {
		tick := time.NewTicker(d)
		defer tick.Stop()
		reconcileC = tick.C
	}
	for {
		select {
		case <-ctx.Done():
			return
		case <-reconcileC:
			for _, t := range g.targets {
				if t.cfg.HAProxy != nil && t.cfg.HAProxy.reconcileEvery() > 0 {
					t.reconcile(ctx)
				}
			}
			continue
		case <-g.kick:
			now := time.Now()
			if now.Before(retryAt) && !g.inputsChanged(src.Current()) {
				// Backing off after a failure, and nothing the group's
				// templates read changed: keep the backoff.
				continue
			}
			if first.IsZero() {
				first = now
			}
			deadline := now.Add(g.wait.Min)
			if g.wait.Max > 0 && first.Add(g.wait.Max).Before(deadline) {
				deadline = first.Add(g.wait.Max)
			}
			resetTimer(timer, time.Until(deadline))
			continue
		case <-timer.C:
		}
		first = time.Time{}
		// Wait out reload pacing before taking the snapshot, so changes
		// made meanwhile go out with this reload, not the next.
		if g.canReload() {
			g.pace(ctx)
		}
		snap := src.Current()
		if snap == nil {
			continue // not read yet; the first update kicks us
		}
		failed := false
		for _, res := range g.applyOnce(ctx, snap, force) {
			failed = failed || res.err != nil
		}
		force = false
		var next time.Duration
		retryAt = time.Time{}
		if failed {
			next = retry.Next()
			retryAt = time.Now().Add(next)
		} else {
			retry.Reset()
		}
		for _, t := range g.targets {
			if until := t.holdUntil(); !until.IsZero() {
				d := time.Until(until) + 10*time.Millisecond
				if next == 0 || d < next {
					next = d
				}
			}
		}
		if next > 0 {
			resetTimer(timer, next)
		}
	}
}

// reconcileEvery is the shortest reconcile interval of the group's
// haproxy templates; 0 when none reconciles.
func (g *group) reconcileEvery() time.Duration {
	var d time.Duration
	for _, t := range g.targets {
		if t.cfg.HAProxy == nil {
			continue
		}
		if e := t.cfg.HAProxy.reconcileEvery(); e > 0 && (d == 0 || e < d) {
			d = e
		}
	}
	return d
}

// canReload reports whether the group has a way to reload.
func (g *group) canReload() bool { return !g.reload.IsZero() || g.master != "" }

// reloadNow runs the reload command, or reloads haproxy through its master
// CLI and waits for the new worker.
func (g *group) reloadNow(ctx context.Context, v cmdVars) (string, error) {
	if !g.reload.IsZero() {
		return g.reload.run(ctx, v, g.timeout)
	}
	if g.master == "" {
		return "", nil
	}
	rctx, cancel := context.WithTimeout(ctx, g.timeout)
	defer cancel()
	if err := haproxy.NewMaster(g.master).Reload(rctx); err != nil {
		return "", fmt.Errorf("%w: master CLI reload: %w", ErrCommand, err)
	}
	return "", nil
}

// inputsChanged reports whether anything a target of the group read in its
// last render attempt differs in snap.
func (g *group) inputsChanged(snap *schema.Snapshot) bool {
	if snap == nil {
		return false
	}
	for _, t := range g.targets {
		if t.inputsChanged(snap) {
			return true
		}
	}
	return false
}

func resetTimer(t *time.Timer, d time.Duration) {
	t.Stop()
	select {
	case <-t.C:
	default:
	}
	t.Reset(max(d, 0))
}

type result struct {
	changed bool
	err     error
}

// applyOnce plans every target against snap, installs the changed ones,
// reloads once, verifies, and rolls the whole group back if the reload or
// a verify fails. It returns one result per target.
//
// Rendering stops when ctx ends. Once the first file is installed, the
// rest of the apply (check, swap, reload, confirm, verify, commit or
// rollback) runs to its end on a context that shutdown and config reloads
// do not cancel, bounded by the command timeouts: a file on disk and the
// process using it never end out of step.
func (g *group) applyOnce(ctx context.Context, snap *schema.Snapshot, force bool) []result {
	for _, t := range g.targets {
		t.apply.Lock()
		defer t.apply.Unlock()
	}
	t0 := time.Now()
	results := make([]result, len(g.targets))
	plans := make([]*planned, len(g.targets))
	skipped := make([]bool, len(g.targets))
	for i, t := range g.targets {
		p, err := t.plan(ctx, snap, force)
		if errors.Is(err, errSkipped) {
			skipped[i], err = true, nil
		}
		plans[i], results[i].err = p, err
	}
	if ctx.Err() != nil {
		return results // stopping: nothing was installed, nothing to finish
	}
	actx := context.WithoutCancel(ctx)
	var done []*installed
	var doneIdx []int
	for i, t := range g.targets {
		if p := plans[i]; p != nil && results[i].err == nil {
			e := t.applyEarly(actx, p) // live-first: traffic moves before the check
			in, err := t.install(actx, p)
			if err == nil {
				in.early = e
				done, doneIdx = append(done, in), append(doneIdx, i)
				results[i].changed = true
			} else if e != nil {
				e.undo(actx, t, err)
			}
			results[i].err = err
		}
		if err := results[i].err; err != nil {
			t.fail(err)
			t.log.Error("template not applied; the previous file stays in place", "rev", snap.Rev, "err", err)
		}
	}
	ctx = actx
	// HAProxy templates whose change touched only servers are applied live;
	// the group reloads if any installed template still needs it.
	needReload := false
	for _, in := range done {
		if in.t.cfg.HAProxy == nil {
			needReload = true
			continue
		}
		if reason, why := in.applyLive(ctx); reason != "" {
			in.whyReload = reason + ": " + why
			needReload = true
			in.t.metrics.liveReload(in.t.cfg.Name, reason)
			in.t.log.Info("reloading: the change cannot be applied live", "reason", reason, "detail", why)
		}
	}
	if len(done) > 0 && g.canReload() && needReload {
		g.pace(ctx)
		sides := g.reloadSides(done, false)
		var watches []*workerWatch
		for _, side := range sides {
			side.saveBeforeReload(ctx)
			// A reload through the master CLI waits for the new worker itself.
			if !g.reload.IsZero() {
				if w := side.watchWorker(ctx); w != nil {
					watches = append(watches, w)
				}
			}
		}
		output, err := g.reloadNow(ctx, done[0].t.vars(""))
		if err == nil {
			err = g.confirmReload(ctx, watches, done[0].t.vars(""))
		}
		g.lastReload = time.Now()
		if err != nil {
			g.rollback(ctx, done, doneIdx, results, &Error{Stage: StageReload, Output: output, Err: err})
			done = nil
		} else {
			for _, in := range done {
				t := in.t
				t.metrics.reload(t.cfg.Name, "ok")
			}
		}
	}
	for _, in := range done {
		if in.t.cfg.Verify.IsZero() {
			continue
		}
		if output, err := in.t.cfg.Verify.run(ctx, in.t.vars(""), g.timeout); err != nil {
			g.rollback(ctx, done, doneIdx, results, &Error{Template: in.t.cfg.Name, Stage: StageVerify, Output: output, Err: err})
			done = nil
			break
		}
	}
	for _, in := range done {
		msg := "file updated"
		if g.canReload() && needReload {
			msg = "file updated and reloaded"
		}
		how := msg
		switch reloaded := needReload && g.canReload(); {
		case in.live != "" && reloaded:
			how = "reloaded with the rest of its group (live: " + in.live + ")"
		case in.live != "":
			how = "live: " + in.live
		case in.whyReload != "" && reloaded:
			how = "reloaded: " + in.whyReload
		case in.whyReload != "":
			how = "file updated, not reloaded (no reload command or haproxy.master): " + in.whyReload
		}
		in.t.commit(in.plan, true, how)
		in.t.log.Info(msg, "path", in.t.cfg.Destination, "rev", snap.Rev)
		// Off the path of the change: the new file is already in use.
		if err := in.t.syncDir(); err != nil {
			in.t.log.Warn("fsync of the destination's directory failed; a crash now could bring back the previous file", "path", in.t.cfg.Destination, "err", err)
		}
	}
	for i, t := range g.targets {
		if skipped[i] {
			t.metrics.skip(t.cfg.Name, snap.Rev)
			continue
		}
		t.metrics.observe(t.cfg.Name, t0, results[i].changed, snap.Rev, results[i].err)
	}
	return results
}

// rollback restores every file installed this round and reloads them, so
// what runs matches the files on disk; each such target fails with cause.
func (g *group) rollback(ctx context.Context, done []*installed, idx []int, results []result, cause *Error) {
	var restoreErr error
	for _, in := range done {
		if err := in.restore(); err != nil && restoreErr == nil {
			restoreErr = fmt.Errorf("restoring %s also failed: %w", in.t.cfg.Destination, err)
		}
	}
	if g.canReload() && restoreErr == nil {
		for _, side := range g.reloadSides(done, true) {
			side.saveBeforeReload(ctx)
		}
		if _, err := g.reloadNow(ctx, done[0].t.vars("")); err != nil {
			what := "file"
			if len(done) > 1 {
				what = "files"
			}
			restoreErr = fmt.Errorf("reload of the restored previous %s also failed: %w", what, err)
		}
	}
	for k, in := range done {
		e := *cause
		e.Template = in.t.cfg.Name
		if restoreErr != nil {
			e.Err = fmt.Errorf("%w; %w", cause.Err, restoreErr)
		}
		i := idx[k]
		results[i] = result{changed: !in.existed, err: &e}
		in.t.fail(&e)
		in.t.metrics.reload(in.t.cfg.Name, "restored")
		in.t.log.Error("change rolled back; the previous file is back in place", "stage", cause.Stage, "err", &e)
	}
}

// confirmReload waits until a new haproxy worker serves each watched
// stats socket. A reload signal can be lost (HAProxy 2.6's master misses
// a SIGUSR2 that arrives while it re-executes itself for the previous
// one: measured, 2 of 11 reloads 150 ms apart), so when no new worker
// shows up it reloads once more before giving up.
func (g *group) confirmReload(ctx context.Context, ws []*workerWatch, v cmdVars) error {
	timeout := g.timeout
	if timeout <= 0 {
		timeout = 30 * time.Second
	}
	for _, w := range ws {
		wait := min(timeout, w.t.cfg.HAProxy.timeout())
		// A lost signal should not cost the whole timeout: give the first
		// try a few times what the last confirmed reload took.
		first := wait
		if g.reloadTook > 0 {
			first = min(wait, max(2*time.Second, 4*g.reloadTook))
		}
		t0 := time.Now()
		err := w.wait(ctx, first)
		if err == nil {
			g.reloadTook = time.Since(t0)
			continue
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		w.t.log.Warn("reload command ran but haproxy did not reload; running it again", "err", err)
		w.t.metrics.reload(w.t.cfg.Name, "repeated")
		if _, rerr := g.reload.run(ctx, v, g.timeout); rerr != nil {
			return rerr
		}
		if err := w.wait(ctx, wait); err != nil {
			return fmt.Errorf("%w: the reload command ran twice but %w: haproxy may have rejected the new config (see its log)", ErrCommand, err)
		}
	}
	return nil
}

// pace waits until the reload minimum interval has passed.
func (g *group) pace(ctx context.Context) {
	if g.minInterval <= 0 || g.lastReload.IsZero() {
		return
	}
	wait := time.Until(g.lastReload.Add(g.minInterval))
	if wait <= 0 {
		return
	}
	t := time.NewTimer(wait)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}
