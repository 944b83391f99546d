package render

import (
	"bytes"
	"context"
	"errors"
	"io/fs"
	"os"
	"slices"
	"time"

	"github.com/rewire/rewire/registry/schema"
)

// planned is what plan decided for one target.
type planned struct {
	out     []byte
	deps    *Deps
	prog    *program         // what rendered out
	snap    *schema.Snapshot // what out reflects: the snapshot, with held instances kept
	held    *hold            // the guard keeping instances in out, if any
	expired bool             // a time-bounded hold ran out: the baseline moves on
	prev    []byte           // the destination's bytes when planned
	existed bool
}

// plan renders snap when something the target read changed (or force),
// and returns the bytes to install, or nil when there is nothing to do:
// the inputs or bytes are unchanged. When a guard holds a removal, the
// bytes are rendered with the removed instances kept.
func (t *Target) plan(ctx context.Context, snap *schema.Snapshot, force bool) (*planned, error) {
	t.mu.Lock()
	clean := !force && !t.tmplChanged && t.lastErr == nil && t.held == nil && t.deps != nil && !t.deps.Changed(snap)
	if clean {
		// Nothing it reads differs: the file reflects snap too, and so
		// does the baseline, which would otherwise keep the records of
		// the services the template does not read as they were.
		t.freshBaseline(time.Now())
		if t.baseline != nil {
			t.baseline = t.baseline.add(snap)
		}
		t.applied = snap
	}
	t.mu.Unlock()
	if clean {
		return nil, errSkipped
	}
	out, deps, prog, err := t.render(ctx, snap)
	t.mu.Lock()
	t.tried = deps
	t.mu.Unlock()
	if err != nil {
		return nil, err
	}
	for _, name := range deps.Panicked {
		t.metrics.guard(t.cfg.Name, GuardPanic)
		t.log.Warn("panic threshold: too few routable instances, rendering all of them", "service", name, "rev", snap.Rev)
	}
	old, readErr := os.ReadFile(t.cfg.Destination)
	if readErr != nil && !errors.Is(readErr, fs.ErrNotExist) {
		return nil, &Error{Template: t.cfg.Name, Stage: StageWrite, Err: readErr}
	}
	p := &planned{out: out, deps: deps, prog: prog, snap: snap, prev: old, existed: readErr == nil}
	if readErr == nil && bytes.Equal(old, out) {
		t.commit(p, false, "")
		return nil, nil
	}
	if err := t.guard(ctx, p); err != nil {
		return nil, err
	}
	if p.held != nil && readErr == nil && bytes.Equal(old, p.out) {
		t.commit(p, false, "") // held, and nothing else changed
		return nil, nil
	}
	return p, nil
}

// guard runs the guards on p and, when they hold a removal, renders p
// again from its snapshot with the held instances kept.
func (t *Target) guard(ctx context.Context, p *planned) error {
	if t.cfg.Guards.off() {
		return nil // nothing to judge: skip collecting the names on every render
	}
	t.mu.Lock()
	now := time.Now()
	t.freshBaseline(now)
	in := guardInput{applied: t.applied, baseline: t.baseline, snap: p.snap, since: t.heldSince, now: now,
		names: unionSorted(t.deps.Services(), p.deps.Services())}
	wasHeld := t.held
	t.mu.Unlock()
	h, expired := t.cfg.Guards.evaluate(in)
	p.expired = expired
	t.mu.Lock()
	if h != nil && t.heldSince.IsZero() {
		t.heldSince = in.now
	}
	t.held = h
	if h == nil {
		t.heldSince = time.Time{}
	}
	t.mu.Unlock()
	if h == nil {
		if wasHeld != nil {
			t.log.Warn("guard released; applying the held removal", "guard", wasHeld.guard, "rev", p.snap.Rev)
		}
		return nil
	}
	if wasHeld == nil || wasHeld.reason != h.reason {
		t.metrics.guard(t.cfg.Name, h.guard)
		attrs := []any{"guard", h.guard, "reason", h.reason, "rev", p.snap.Rev}
		if !h.until.IsZero() {
			attrs = append(attrs, "until", h.until.Format(time.RFC3339))
		}
		t.log.Error("guard holds a removal; the vanished instances stay in the file, every other change goes out", attrs...)
	}
	kept := p.snap.With(h.keep...)
	out, deps, prog, err := t.render(ctx, kept)
	if err != nil {
		return err
	}
	p.out, p.deps, p.prog, p.snap, p.held = out, deps, prog, kept, h
	return nil
}

// unionSorted merges two sorted name lists without duplicates.
func unionSorted(a, b []string) []string {
	out := slices.Concat(a, b)
	slices.Sort(out)
	return slices.Compact(out)
}

// errSkipped says plan did not render: nothing the target reads changed.
var errSkipped = errors.New("render: skipped")
