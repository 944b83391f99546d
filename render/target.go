package render

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"text/template"
	"time"

	"github.com/rewire/rewire/registry/schema"
	"github.com/rewire/rewire/render/haproxy"
	"gopkg.in/yaml.v3"
)

// TargetConfig is one entry of the templater's `templates:` list.
type TargetConfig struct {
	Name        string   `yaml:"name"`
	Source      string   `yaml:"source"`
	Destination string   `yaml:"destination"`
	Mode        FileMode `yaml:"mode"`
	Check       Command  `yaml:"check"`
	Reload      Command  `yaml:"reload"`
	// Verify runs after the reload; if it fails, the previous file is put
	// back and reloaded.
	Verify Command `yaml:"verify"`
	// CommandTimeout bounds check, reload and verify; default 30s.
	CommandTimeout time.Duration `yaml:"command_timeout"`
	// RenderTimeout bounds one render; default DefaultRenderTimeout.
	RenderTimeout time.Duration `yaml:"render_timeout"`
	// MaxOutput bounds the rendered file; default DefaultMaxOutput.
	MaxOutput ByteSize `yaml:"max_output"`
	// Wait overrides the templater's quiescence for this template.
	Wait *WaitConfig `yaml:"wait"`
	// ReloadMinInterval is the least time between two reloads; changes in
	// between are applied together at the next one.
	ReloadMinInterval time.Duration `yaml:"reload_min_interval"`
	Guards            Guards        `yaml:"guards"`
	// HAProxy, when set, applies changes that touch only server lines
	// through HAProxy's runtime API, and reloads only for the rest.
	HAProxy *HAProxyConfig `yaml:"haproxy"`
}

// WaitConfig is quiescence: after a change, wait until no further change
// came for Min, but never longer than Max after the first one. Zero
// values render at once.
type WaitConfig struct {
	Min time.Duration `yaml:"min"`
	Max time.Duration `yaml:"max"`
}

// Validate checks that the durations make sense together.
func (w WaitConfig) Validate() error {
	switch {
	case w.Min < 0 || w.Max < 0:
		return fmt.Errorf("wait: negative duration")
	case w.Max != 0 && w.Max < w.Min:
		return fmt.Errorf("wait: max %s is shorter than min %s", w.Max, w.Min)
	}
	return nil
}

// FileMode is a permission mode written in YAML as an octal string ("0644").
type FileMode os.FileMode

// UnmarshalYAML parses an octal mode.
func (m *FileMode) UnmarshalYAML(n *yaml.Node) error {
	v, err := strconv.ParseUint(n.Value, 8, 32)
	if err != nil || v > 0o7777 {
		return fmt.Errorf("line %d: mode %q: want an octal permission like \"0644\"", n.Line, n.Value)
	}
	*m = FileMode(v)
	return nil
}

// Stage names the step of the pipeline an Error happened in.
type Stage string

// Stages of the pipeline.
const (
	StageParse   Stage = "parse"
	StageExecute Stage = "execute"
	StageWrite   Stage = "write"
	StageCheck   Stage = "check"
	StageReload  Stage = "reload"
	StageVerify  Stage = "verify"
)

// Error is a failure of one template at one stage. The destination file is
// left as it was (for StageReload: restored).
type Error struct {
	Template string
	Stage    Stage
	Output   string // the command's output, for check and reload
	Err      error
}

func (e *Error) Error() string {
	s := fmt.Sprintf("render: template %s: %s: %v", e.Template, e.Stage, e.Err)
	if e.Output != "" {
		s += "\n" + e.Output
	}
	return s
}

func (e *Error) Unwrap() error { return e.Err }

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
	drift        string // haproxy differs from the file and cannot be repaired live
	held         *hold
	heldSince    time.Time
	// baseline is every instance the file showed since baselineAt, up to
	// a hold window ago (instances added since are added to it, removed
	// ones stay): the fraction guards add removals up against it.
	baseline   *schema.Snapshot
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

// Parse parses template text with every function of the package. name
// appears in error messages (use the source file's name).
// Every range body gets a check of the render's limits.
func Parse(name, text string) (*template.Template, error) {
	t, err := template.New(name).Option("missingkey=error").Funcs(baseFuncs()).Parse(text)
	if err != nil {
		return nil, err
	}
	instrument(t)
	return t, nil
}

// Execute runs tmpl against snap in memory, under the default limits.
func Execute(tmpl *template.Template, snap *schema.Snapshot, keys schema.Keys) ([]byte, error) {
	out, _, err := newProgram(tmpl).execute(context.Background(), snap, keys, nil, TargetConfig{}.limits())
	return out, err
}

// program is a parsed template with clones of it whose registry functions
// are bound to an execState. Binding costs a clone of the template and a
// copy of its ~200 functions (about 0.1 ms, more than rendering a small
// file), so bound clones are kept for the next render instead of being
// made per render.
type program struct {
	tmpl *template.Template
	// mu guards free.
	mu   sync.Mutex
	free []*execState
	// size is the length of the last output: the next one is usually
	// about as long, so its buffer is sized once instead of doubled.
	size atomic.Int64
	// cache keeps cachedTemplate blocks between a Target's renders; nil
	// for one-off executions. It belongs to the program so that a new
	// source starts with an empty one.
	cache *blockCache
}

func newProgram(tmpl *template.Template) *program { return &program{tmpl: tmpl} }

func newCachedProgram(tmpl *template.Template) *program {
	return &program{tmpl: tmpl, cache: newBlockCache()}
}

// bound returns a clone of p's template bound to an execState nobody else
// uses until it is given back with release.
func (p *program) bound() (*execState, error) {
	p.mu.Lock()
	if n := len(p.free); n > 0 {
		st := p.free[n-1]
		p.free = p.free[:n-1]
		p.mu.Unlock()
		return st, nil
	}
	p.mu.Unlock()
	t, err := p.tmpl.Clone()
	if err != nil {
		return nil, err
	}
	st := &execState{tmpl: t}
	t.Funcs(registryFuncs(st))
	return st, nil
}

// release gives st back, dropping what it referenced. At most two are
// kept: renders of one Target are serialized, and an occasional
// concurrent Render just binds a clone of its own.
func (p *program) release(st *execState) {
	st.snap, st.deps, st.cache, st.block, st.budget = nil, nil, nil, nil, nil
	p.mu.Lock()
	if len(p.free) < 2 {
		p.free = append(p.free, st)
	}
	p.mu.Unlock()
}

// execute runs the template against snap and records what it read. cache
// (may be nil) keeps cachedTemplate blocks between renders. The render
// stops with an ErrRenderLimit error when it goes over lim or ctx ends.
func (p *program) execute(ctx context.Context, snap *schema.Snapshot, keys schema.Keys, cache *blockCache, lim limits) ([]byte, *Deps, error) {
	st, err := p.bound()
	if err != nil {
		return nil, nil, err
	}
	defer p.release(st)
	deps := newDeps()
	st.snap, st.keys, st.deps, st.cache, st.budget = snap, keys, deps, cache, &budget{}
	disarm := st.budget.start(ctx, lim)
	defer disarm()
	if cache != nil {
		cache.begin()
	}
	w := &budgetWriter{b: st.budget}
	if n := p.size.Load(); n > 0 {
		// Only a render that stayed within its limits sets size.
		w.buf = make([]byte, 0, min(n+n/16, lim.max))
	}
	err = st.tmpl.Execute(w, nil)
	if cache != nil {
		cache.end(err == nil)
	}
	if err != nil {
		return nil, deps, limitError(err, st.budget)
	}
	p.size.Store(int64(len(w.buf)))
	return w.buf, deps, nil
}

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
		t.applied = snap // nothing it reads differs: the file reflects snap too
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
	t.mu.Lock()
	in := guardInput{applied: t.applied, baseline: t.baseline, snap: p.snap, since: t.heldSince, now: time.Now(),
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
	Drift        string    `json:"drift,omitempty"`        // haproxy's live servers differ from the file, and a live repair failed
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
		if t.baseline == nil || p.expired || now.Sub(t.baselineAt) >= t.cfg.Guards.hold() {
			t.baseline, t.baselineAt = p.snap, now
		} else if !t.cfg.Guards.off() {
			t.baseline = accumulate(t.baseline, p.snap)
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

// installed is a destination replaced in this round, with what to put
// back if the round fails.
type installed struct {
	t       *Target
	plan    *planned
	prev    []byte
	existed bool
	// For haproxy templates: what applyLive did live, or why it reloads,
	// and the previous and new files as it parsed them (nil if it did not),
	// so that a reload after it does not parse them again.
	live, whyReload string
	prevCfg, outCfg *haproxy.Config
	// early is the change as applyEarly applied it before the check
	// (live-first), or nil.
	early *early
}

// install writes out to a staged file beside the destination, runs the
// check on it, and renames it into place.
func (t *Target) install(ctx context.Context, p *planned) (*installed, error) {
	staged, err := t.stage(p.out)
	if err != nil {
		return nil, &Error{Template: t.cfg.Name, Stage: StageWrite, Err: err}
	}
	defer os.Remove(staged) // no-op after a successful rename
	if !t.cfg.Check.IsZero() {
		if output, err := t.cfg.Check.run(ctx, t.vars(staged), t.cfg.CommandTimeout); err != nil {
			return nil, &Error{Template: t.cfg.Name, Stage: StageCheck, Output: output, Err: err}
		}
	}
	// The directory is fsynced later (syncDir), after the change reached
	// its consumer: a crash before that can only bring back the previous
	// file, which the templater replaces again when it starts.
	if err := os.Rename(staged, t.cfg.Destination); err != nil {
		return nil, &Error{Template: t.cfg.Name, Stage: StageWrite, Err: err}
	}
	return &installed{t: t, plan: p, prev: p.prev, existed: p.existed}, nil
}

// restore puts the previous file back. A destination that did not exist
// before is left in place: there is nothing to go back to.
func (in *installed) restore() error {
	if !in.existed {
		return nil
	}
	return in.t.writeAtomic(in.prev)
}

// writeAtomic replaces the destination with b without a check.
func (t *Target) writeAtomic(b []byte) error {
	staged, err := t.stage(b)
	if err != nil {
		return err
	}
	if err := os.Rename(staged, t.cfg.Destination); err != nil {
		os.Remove(staged)
		return err
	}
	return t.syncDir()
}

// stage writes b to a new file in the destination's directory, fsynced,
// with the configured mode.
func (t *Target) stage(b []byte) (string, error) {
	dir, base := filepath.Dir(t.cfg.Destination), filepath.Base(t.cfg.Destination)
	f, err := os.CreateTemp(dir, "."+base+".rewire-*")
	if err != nil {
		return "", err
	}
	name := f.Name()
	_, err = f.Write(b)
	if err == nil {
		err = f.Chmod(os.FileMode(t.cfg.Mode))
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(name)
		return "", err
	}
	return name, nil
}

// syncDir fsyncs the destination's directory, so that a rename into it
// survives a crash.
func (t *Target) syncDir() error {
	d, err := os.Open(filepath.Dir(t.cfg.Destination))
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
