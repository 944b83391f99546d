package render

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/rewire/rewire/registry/schema"
)

type result struct {
	changed bool
	err     error
}

// round is one apply of a group, phase by phase: what each target's plan
// and install came to, and which files went out.
type round struct {
	g       *group
	snap    *schema.Snapshot
	results []result // one per target of the group
	skipped []bool   // nothing the target reads changed: not rendered
	done    []*installed
	doneIdx []int // done[k] is the install of g.targets[doneIdx[k]]
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
	r := &round{g: g, snap: snap, results: make([]result, len(g.targets)), skipped: make([]bool, len(g.targets))}
	plans := r.plan(ctx, force)
	if ctx.Err() != nil {
		return r.results // stopping: nothing was installed, nothing to finish
	}
	actx := context.WithoutCancel(ctx)
	r.install(actx, plans)
	needReload := r.applyLive(actx)
	r.reload(actx, needReload)
	r.verify(actx)
	r.commit(needReload)
	r.observe(t0)
	return r.results
}

// plan renders every target whose inputs changed (or all, with force).
func (r *round) plan(ctx context.Context, force bool) []*planned {
	plans := make([]*planned, len(r.g.targets))
	for i, t := range r.g.targets {
		p, err := t.plan(ctx, r.snap, force)
		if errors.Is(err, errSkipped) {
			r.skipped[i], err = true, nil
		}
		plans[i], r.results[i].err = p, err
	}
	return plans
}

// install checks and swaps in every planned file; a change its runtime
// validates itself goes live first, and back if its check fails.
func (r *round) install(ctx context.Context, plans []*planned) {
	for i, t := range r.g.targets {
		if p := plans[i]; p != nil && r.results[i].err == nil {
			ch, early := t.applyEarly(ctx, p) // live-first: traffic moves before the check
			in, err := t.install(ctx, p)
			if err == nil {
				in.change = ch
				r.done, r.doneIdx = append(r.done, in), append(r.doneIdx, i)
				r.results[i].changed = true
			} else if early {
				t.undoEarly(ctx, ch, err)
			}
			r.results[i].err = err
		}
		if err := r.results[i].err; err != nil {
			t.fail(err)
			t.log.Error("template not applied; the previous file stays in place", "rev", r.snap.Rev, "err", err)
		}
	}
}

// applyLive applies each installed change through its template's runtime.
// It reports whether the group must reload: a template without a runtime,
// or a change its runtime cannot apply live.
func (r *round) applyLive(ctx context.Context) (needReload bool) {
	for _, in := range r.done {
		if in.change == nil {
			needReload = true
			continue
		}
		done, err := in.change.Apply(ctx)
		if err != nil {
			in.whyReload = err.Error()
			needReload = true
			in.t.log.Info("reloading: the change cannot be applied live", "reason", err)
			continue
		}
		in.live = done
	}
	return needReload
}

// reload reloads the group once for everything installed, letting each
// runtime keep its state first and confirming the reload after; a failure
// rolls the whole round back.
func (r *round) reload(ctx context.Context, needReload bool) {
	g := r.g
	if len(r.done) == 0 || !g.canReload() || !needReload {
		return
	}
	g.pace(ctx)
	var watches []reloadWatch
	for _, side := range g.reloadSides(r.done) {
		// A reload through the runtime's own reloader waits by itself.
		if w := side.change.BeforeReload(ctx, false, !g.reload.IsZero()); w != nil {
			watches = append(watches, reloadWatch{t: side.t, wait: w})
		}
	}
	output, err := g.reloadNow(ctx, r.done[0].t.vars(""))
	if err == nil {
		err = g.confirmReload(ctx, watches, r.done[0].t.vars(""))
	}
	g.lastReload = time.Now()
	if err != nil {
		g.rollback(ctx, r.done, r.doneIdx, r.results, &Error{Stage: StageReload, Output: output, Err: err})
		r.done = nil
		return
	}
	for _, in := range r.done {
		in.t.metrics.reload(in.t.cfg.Name, "ok")
	}
}

// verify runs each installed template's verify command; the first failure
// rolls the whole round back.
func (r *round) verify(ctx context.Context) {
	for _, in := range r.done {
		if in.t.cfg.Verify.IsZero() {
			continue
		}
		if output, err := in.t.cfg.Verify.run(ctx, in.t.vars(""), r.g.timeout); err != nil {
			r.g.rollback(ctx, r.done, r.doneIdx, r.results, &Error{Template: in.t.cfg.Name, Stage: StageVerify, Output: output, Err: err})
			r.done = nil
			return
		}
	}
}

// commit records what went out, and how, for every file still installed.
func (r *round) commit(needReload bool) {
	reloaded := needReload && r.g.canReload()
	for _, in := range r.done {
		msg := "file updated"
		if reloaded {
			msg = "file updated and reloaded"
		}
		how := msg
		switch {
		case in.live != "" && reloaded:
			how = "reloaded with the rest of its group (live: " + in.live + ")"
		case in.live != "":
			how = "live: " + in.live
		case in.whyReload != "" && reloaded:
			how = "reloaded: " + in.whyReload
		case in.whyReload != "":
			how = "file updated, not reloaded (no reload command, and the runtime cannot reload): " + in.whyReload
		}
		in.t.commit(in.plan, true, how)
		in.t.log.Info(msg, "path", in.t.cfg.Destination, "rev", r.snap.Rev)
		// Off the path of the change: the new file is already in use.
		if err := in.t.syncDir(); err != nil {
			in.t.log.Warn("fsync of the destination's directory failed; a crash now could bring back the previous file", "path", in.t.cfg.Destination, "err", err)
		}
	}
}

// observe records each target's outcome in the metrics.
func (r *round) observe(t0 time.Time) {
	for i, t := range r.g.targets {
		if r.skipped[i] {
			t.metrics.skip(t.cfg.Name, r.snap.Rev)
			continue
		}
		t.metrics.observe(t.cfg.Name, t0, r.results[i].changed, r.snap.Rev, r.results[i].err)
	}
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
		for _, side := range g.reloadSides(done) {
			side.change.BeforeReload(ctx, true, false)
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

// reloadWatch waits until a template's process has reloaded.
type reloadWatch struct {
	t    *Target
	wait func(context.Context, time.Duration) error
}

// confirmReload waits until each watched runtime serves from a reloaded
// process. A reload signal can be lost (HAProxy 2.6's master misses a
// SIGUSR2 that arrives while it re-executes itself for the previous one:
// measured, 2 of 11 reloads 150 ms apart), so when none shows up it
// reloads once more before giving up.
func (g *group) confirmReload(ctx context.Context, ws []reloadWatch, v cmdVars) error {
	wait := g.timeout
	if wait <= 0 {
		wait = 30 * time.Second
	}
	for _, w := range ws {
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
		w.t.log.Warn("reload command ran but the process did not reload; running it again", "err", err)
		w.t.metrics.reload(w.t.cfg.Name, "repeated")
		if _, rerr := g.reload.run(ctx, v, g.timeout); rerr != nil {
			return rerr
		}
		if err := w.wait(ctx, wait); err != nil {
			return fmt.Errorf("%w: the reload command ran twice but %w: the process may have rejected the new config (see its log)", ErrCommand, err)
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
