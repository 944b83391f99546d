package render

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"text/template"
	"time"

	"github.com/rewire/rewire/registry/schema"
)

// Options are shared by every Target of a templater.
type Options struct {
	Keys    schema.Keys
	Logger  *slog.Logger // nil: discard
	Metrics *Metrics     // nil: not recorded
}

// Target is one template and the file it renders into. It remembers what
// its last render read (Deps) and which snapshot the file reflects, so it
// re-renders only when something it read changed, and so its guards can
// compare. A Runner applies it; Apply does the same for one call.
type Target struct {
	cfg     TargetConfig
	keys    schema.Keys
	log     *slog.Logger
	metrics *Metrics

	// apply serializes applies of this target.
	apply sync.Mutex

	// mu guards the fields below.
	mu           sync.Mutex
	prog         *program
	srcText      string // the source the template was parsed from
	tmplChanged  bool
	parseErr     error
	deps         *Deps            // what the file's render read
	tried        *Deps            // what the last render attempt read
	applied      *schema.Snapshot // the snapshot the file reflects
	lastErr      error
	failingSince time.Time // when lastErr went from nil to set
	lastChange   time.Time
	lastApply    string // how the last change reached its consumer
	drift        string // the running process differs from the file and cannot be repaired live
	held         *hold
	heldSince    time.Time
	// baseline is every instance the file showed since baselineAt, up to
	// a hold window ago (instances added since are added to it, removed
	// ones stay): the fraction guards add removals up against it.
	baseline   *baseline // nil while the guards are off
	baselineAt time.Time
}

// NewTarget reads and parses cfg.Source. A parse error names the file and
// line.
func NewTarget(cfg TargetConfig, opts Options) (*Target, error) {
	if cfg.Mode == 0 {
		cfg.Mode = 0o644
	}
	if cfg.CommandTimeout == 0 {
		cfg.CommandTimeout = 30 * time.Second
	}
	// The staged file must live beside the destination for the rename to
	// be atomic: resolve the directory now, whatever the working directory
	// is later.
	dest, err := filepath.Abs(cfg.Destination)
	if err != nil {
		return nil, &Error{Template: cfg.Name, Stage: StageParse, Err: err}
	}
	cfg.Destination = dest
	text, err := os.ReadFile(cfg.Source)
	if err != nil {
		return nil, &Error{Template: cfg.Name, Stage: StageParse, Err: err}
	}
	tmpl, err := Parse(filepath.Base(cfg.Source), string(text))
	if err != nil {
		return nil, &Error{Template: cfg.Name, Stage: StageParse, Err: err}
	}
	for _, c := range []Command{cfg.Check, cfg.Reload, cfg.Verify} {
		if err := c.Validate(); err != nil {
			return nil, &Error{Template: cfg.Name, Stage: StageParse, Err: err}
		}
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if err := cfg.Guards.Validate(); err != nil {
		return nil, &Error{Template: cfg.Name, Stage: StageParse, Err: err}
	}
	return &Target{cfg: cfg, keys: opts.Keys, log: log.With("component", "render", "template", cfg.Name),
		metrics: opts.Metrics, prog: newCachedProgram(tmpl), srcText: string(text)}, nil
}

// Reparse reads the source file again. On success the next apply renders
// with the new template; on error the previous template stays in use and
// the error shows in Status. It reports whether the source changed.
func (t *Target) Reparse() (bool, error) {
	text, err := os.ReadFile(t.cfg.Source)
	if err == nil {
		t.mu.Lock()
		same := string(text) == t.srcText && t.parseErr == nil
		t.mu.Unlock()
		if same {
			return false, nil
		}
		var tmpl *template.Template
		if tmpl, err = Parse(filepath.Base(t.cfg.Source), string(text)); err == nil {
			t.mu.Lock()
			// A new program comes with an empty block cache: a render still
			// running with the old one fills only the old one's.
			t.prog, t.srcText, t.tmplChanged, t.parseErr = newCachedProgram(tmpl), string(text), true, nil
			t.mu.Unlock()
			t.log.Info("template source reloaded", "path", t.cfg.Source)
			return true, nil
		}
	}
	e := &Error{Template: t.cfg.Name, Stage: StageParse, Err: err}
	t.mu.Lock()
	t.parseErr = e
	t.mu.Unlock()
	t.metrics.fail(t.cfg.Name, StageParse)
	t.log.Error("template source invalid; the previous template stays in use", "path", t.cfg.Source, "err", e)
	return true, e
}

// Source returns the template's source file.
func (t *Target) Source() string { return t.cfg.Source }

// Name returns the template's configured name.
func (t *Target) Name() string { return t.cfg.Name }

// Destination returns the path the template renders into.
func (t *Target) Destination() string { return t.cfg.Destination }

// Render executes the template against snap without touching any file.
func (t *Target) Render(snap *schema.Snapshot) ([]byte, error) {
	out, _, _, err := t.render(context.Background(), snap)
	return out, err
}

// render executes the current program against snap; it also returns the
// program, which Reparse may replace meanwhile.
func (t *Target) render(ctx context.Context, snap *schema.Snapshot) ([]byte, *Deps, *program, error) {
	t.mu.Lock()
	prog := t.prog
	t.mu.Unlock()
	out, deps, err := prog.execute(ctx, snap, t.keys, prog.cache, t.cfg.limits())
	if err != nil {
		return nil, deps, prog, &Error{Template: t.cfg.Name, Stage: StageExecute, Err: err}
	}
	return out, deps, prog, nil
}

// Apply renders snap and, when the bytes differ from the destination,
// replaces it: staged file → check → fsync → rename → reload → verify. Any
// failure leaves the previous destination in place (after a failed reload
// or verify it is restored and reloaded again) and returns an *Error.
// Guards may hold the change: then nothing is written, changed is false,
// and the reason shows in Status.
func (t *Target) Apply(ctx context.Context, snap *schema.Snapshot) (changed bool, err error) {
	g := newGroup([]*Target{t}, nil)
	res := g.applyOnce(ctx, snap, true)
	return res[0].changed, res[0].err
}

// TargetStatus is what a Target reports about itself.
type TargetStatus struct {
	Name         string    `json:"name"`
	Source       string    `json:"source"`
	Destination  string    `json:"destination"`
	Revision     int64     `json:"revision"`               // the etcd revision the file reflects
	LastChange   time.Time `json:"last_change,omitzero"`   // when the file last changed
	LastApply    string    `json:"last_apply,omitempty"`   // how it went out: "file updated and reloaded", "live: 2 server changes ...", "reloaded: structure: ..."
	Services     []string  `json:"services"`               // services the last render read
	Error        string    `json:"error,omitempty"`        // the last failure, until an apply succeeds
	FailingSince time.Time `json:"failing_since,omitzero"` // when the failures began
	Held         string    `json:"held,omitempty"`         // why a guard keeps the current file
	HeldUntil    time.Time `json:"held_until,omitzero"`    // when a time-bounded hold ends
	HeldBy       string    `json:"held_by,omitempty"`      // the guard
	ParseError   string    `json:"parse_error,omitempty"`  // the source file's latest edit does not parse
	Drift        string    `json:"drift,omitempty"`        // the running process differs from the file, and a live repair failed
}

// Status reports the target's state; safe for concurrent use.
func (t *Target) Status() TargetStatus {
	t.mu.Lock()
	defer t.mu.Unlock()
	st := TargetStatus{Name: t.cfg.Name, Source: t.cfg.Source, Destination: t.cfg.Destination,
		LastChange: t.lastChange, LastApply: t.lastApply, Services: t.deps.Services()}
	if st.Services == nil {
		st.Services = []string{}
	}
	if t.applied != nil {
		st.Revision = t.applied.Rev
	}
	if t.lastErr != nil {
		st.Error, st.FailingSince = t.lastErr.Error(), t.failingSince
	}
	if t.parseErr != nil {
		st.ParseError = t.parseErr.Error()
	}
	st.Drift = t.drift
	if t.held != nil {
		st.Held, st.HeldUntil, st.HeldBy = t.held.reason, t.held.until, t.held.guard
	}
	return st
}

// inputsChanged reports whether anything the last render attempt read
// differs in snap (always true before the first attempt, or after the
// source was re-parsed).
func (t *Target) inputsChanged(snap *schema.Snapshot) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.tmplChanged || t.tried == nil || t.tried.Changed(snap)
}

// holdUntil returns when a time-bounded hold ends (zero if none).
func (t *Target) holdUntil() time.Time {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.held == nil {
		return time.Time{}
	}
	return t.held.until
}

// freshBaseline starts the guards' window again from the file's state
// when no hold is active and the window is older than Hold: removals
// older than that no longer add up with new ones. The guards judge a
// change against the baseline, so this runs before they do, not only
// after a change went out: a template whose services stayed quiet for an
// hour would otherwise judge its next removal together with everything
// that vanished from the registry in that hour. t.mu must be held.
func (t *Target) freshBaseline(now time.Time) {
	switch {
	case t.cfg.Guards.off():
		t.baseline = nil
	case t.applied == nil || t.held != nil:
	case t.baseline == nil || now.Sub(t.baselineAt) >= t.cfg.Guards.hold():
		t.baseline, t.baselineAt = newBaseline(t.applied), now
	}
}

// commit records that the destination now reflects p.snap, and moves the
// guards' baseline on when no hold is active and it is older than the
// hold window (or a hold just ran out: that removal is accepted).
func (t *Target) commit(p *planned, changed bool, how string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.deps, t.applied, t.lastErr = p.deps, p.snap, nil
	if p.prog == t.prog {
		// Rendered with the current source. (A render that started before
		// Reparse leaves tmplChanged set: the new source still has to go out.)
		t.tmplChanged = false
	}
	t.held = p.held
	if p.held == nil {
		t.heldSince = time.Time{}
		now := time.Now()
		switch {
		case t.cfg.Guards.off():
			t.baseline = nil
		case t.baseline == nil || p.expired || now.Sub(t.baselineAt) >= t.cfg.Guards.hold():
			t.baseline, t.baselineAt = newBaseline(p.snap), now
		default:
			t.baseline = t.baseline.add(p.snap)
		}
	}
	if changed {
		t.lastChange, t.lastApply = time.Now(), how
	}
}

// fail records a failed apply; the next apply renders again.
func (t *Target) fail(err error) {
	t.mu.Lock()
	if t.lastErr == nil {
		t.failingSince = time.Now()
	}
	t.lastErr = err
	t.mu.Unlock()
}

func (t *Target) vars(staged string) cmdVars {
	return cmdVars{Staged: staged, Destination: t.cfg.Destination}
}
