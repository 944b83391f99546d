package render

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/rewire/rewire/internal/backoff"
	"github.com/rewire/rewire/registry/schema"
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
	reloader    func(context.Context) error // a runtime's own reload, used when reload is zero
	timeout     time.Duration
	minInterval time.Duration
	wait        WaitConfig
	kick        chan struct{}
	log         *slog.Logger

	// lastReload and reloadTook are used only by the group's goroutine
	// (or one Apply).
	lastReload time.Time
	reloadTook time.Duration // how long the last confirmed reload took to show a new worker
	gc         *collector
}

func newGroup(targets []*Target, log *slog.Logger) *group {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	g := &group{kick: make(chan struct{}, 1), log: log, gc: newCollector()}
	for _, t := range targets {
		g.add(t, WaitConfig{})
	}
	return g
}

func (g *group) add(t *Target, def WaitConfig) {
	g.targets = append(g.targets, t)
	g.reload = t.cfg.Reload
	if t.cfg.Runtime != nil {
		if rl := t.cfg.Runtime.Reloader(); rl != nil {
			g.reloader = rl
		}
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
				if t.cfg.Runtime != nil && t.cfg.Runtime.ReconcileEvery() > 0 {
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
		failed := g.applyAll(ctx, snap, force)
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

// applyAll applies snap to the group and reports whether a target
// failed. A garbage collection that the next apply would start is started
// now, between the two (see collector).
func (g *group) applyAll(ctx context.Context, snap *schema.Snapshot, force bool) (failed bool) {
	g.gc.start()
	defer g.gc.done()
	for _, res := range g.applyOnce(ctx, snap, force) {
		failed = failed || res.err != nil
	}
	return failed
}

// reconcileEvery is the shortest reconcile interval of the group's
// runtimes; 0 when none reconciles.
func (g *group) reconcileEvery() time.Duration {
	var d time.Duration
	for _, t := range g.targets {
		if t.cfg.Runtime == nil {
			continue
		}
		if e := t.cfg.Runtime.ReconcileEvery(); e > 0 && (d == 0 || e < d) {
			d = e
		}
	}
	return d
}

// canReload reports whether the group has a way to reload.
func (g *group) canReload() bool { return !g.reload.IsZero() || g.reloader != nil }

// reloadNow runs the reload command, or has a runtime reload its process
// (HAProxy's master CLI) and wait until it serves again.
func (g *group) reloadNow(ctx context.Context, v cmdVars) (string, error) {
	if !g.reload.IsZero() {
		return g.reload.run(ctx, v, g.timeout)
	}
	if g.reloader == nil {
		return "", nil
	}
	rctx, cancel := context.WithTimeout(ctx, g.timeout)
	defer cancel()
	if err := g.reloader(rctx); err != nil {
		return "", fmt.Errorf("%w: %w", ErrCommand, err)
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
