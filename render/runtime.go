package render

import (
	"context"
	"os"
	"time"
)

// A Runtime is the process that runs a template's destination file, for
// a consumer that can take some changes without a reload: HAProxy's
// runtime API is one (package haproxy; the templater wires it in for a
// template with a `haproxy:` block). A second one would be another
// implementation of Runtime and RuntimeChange, not an edit of this
// package.
//
// The pipeline owns the file: render, stage, check, swap, reload, verify,
// roll back. It calls the runtime at four points: before the check
// (RuntimeChange.Early, for a change the runtime validates itself), after
// the swap (Apply: go live, or say why a reload is needed), around a
// reload (BeforeReload: keep live state across it and confirm it
// happened), and on a timer (Reconcile: repair drift). A template without
// a Runtime reloads on every change.
type Runtime interface {
	// Change returns the change from prev (nil: no file before) to next.
	// It must be cheap: the work happens in the change's methods, which
	// are called from one goroutine.
	Change(prev, next []byte) RuntimeChange
	// Reconcile compares what the process runs with file (the
	// destination's bytes now) and repairs differences live. It returns ""
	// when they agree, or when the process cannot be asked; else why they
	// still differ.
	Reconcile(ctx context.Context, file []byte) (unrepaired string)
	// ReconcileEvery is how often to reconcile; 0: never.
	ReconcileEvery() time.Duration
	// Reloader returns what reloads the process itself and waits until it
	// serves again, for a group without a reload command; nil: none.
	Reloader() func(context.Context) error
}

// A RuntimeChange is one change of a destination file, as its Runtime
// applies it.
type RuntimeChange interface {
	// Early applies the change before the new file is checked and
	// written (live-first) when the runtime validates it as well as the
	// check would, and reports whether it did.
	Early(ctx context.Context) bool
	// Undo takes back what Early applied: the new file failed its check
	// or could not be written (cause).
	Undo(ctx context.Context, cause error) error
	// Apply brings the process in line with the new file, now in place,
	// without a reload, and says what it did; an error says why the
	// change needs a reload instead.
	Apply(ctx context.Context) (done string, err error)
	// BeforeReload prepares the process for a reload into the new file
	// (the previous one when rolling back), keeping state a reload would
	// lose. With confirm it returns what waits, up to a timeout, until a
	// reloaded process serves; nil when it cannot tell.
	BeforeReload(ctx context.Context, rollback, confirm bool) (wait func(context.Context, time.Duration) error)
}

// applyEarly sends p's change to the runtime before the check and the
// write, when the target has a runtime; the change is returned with
// whether it went early. Without a check it still goes first: the write
// and fsync of a large file take longer than the runtime API.
func (t *Target) applyEarly(ctx context.Context, p *planned) (RuntimeChange, bool) {
	if t.cfg.Runtime == nil {
		return nil, false
	}
	prev := p.prev
	if !p.existed {
		prev = nil
	}
	ch := t.cfg.Runtime.Change(prev, p.out)
	return ch, ch.Early(ctx)
}

// undoEarly takes back a change applied before its file's check or write,
// which then failed (cause), and records a failure to do so as drift.
func (t *Target) undoEarly(ctx context.Context, ch RuntimeChange, cause error) {
	if err := ch.Undo(ctx, cause); err != nil {
		t.setDrift("a change applied live before its file was checked and written failed, and undoing it failed too: " + err.Error())
		t.log.Error("the change was applied live but its file failed the check or the write; undoing it failed too",
			"path", t.cfg.Destination, "err", cause, "undo_err", err)
		return
	}
	t.log.Error("the change was applied live but its file failed the check or the write; the running process is back to the file in place",
		"path", t.cfg.Destination, "err", cause)
}

// reloadSide is a template with a runtime in a group about to reload,
// and its change.
type reloadSide struct {
	t      *Target
	change RuntimeChange
}

// reloadSides returns the group's templates with a runtime around a
// reload of the files in done. Templates of the group that did not change
// load their current file again: their change is from that file to
// itself.
func (g *group) reloadSides(done []*installed) []reloadSide {
	changed := map[*Target]*installed{}
	for _, in := range done {
		changed[in.t] = in
	}
	var out []reloadSide
	for _, t := range g.targets {
		if t.cfg.Runtime == nil {
			continue
		}
		if in := changed[t]; in != nil {
			out = append(out, reloadSide{t, in.change})
			continue
		}
		cur, err := os.ReadFile(t.cfg.Destination)
		if err != nil {
			continue
		}
		out = append(out, reloadSide{t, t.cfg.Runtime.Change(cur, cur)})
	}
	return out
}

// reconcile compares what the runtime runs with the destination file and
// repairs differences. A difference it cannot repair is logged once while
// it lasts and shows in Status; the next change to the template reloads.
func (t *Target) reconcile(ctx context.Context) {
	t.apply.Lock()
	defer t.apply.Unlock()
	text, err := os.ReadFile(t.cfg.Destination)
	if err != nil {
		return // not rendered yet
	}
	msg := t.cfg.Runtime.Reconcile(ctx, text)
	if t.setDrift(msg) && msg != "" {
		t.log.Error("the running process differs from the file and cannot be repaired live; the next change to this template reloads",
			"path", t.cfg.Destination, "err", msg)
	}
}

// setDrift records the current unrepairable drift ("" for none) and
// reports whether it is new.
func (t *Target) setDrift(msg string) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	changed := t.drift != msg
	t.drift = msg
	return changed
}
