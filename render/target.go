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
	"strconv"
	"sync"
	"text/template"
	"time"

	"github.com/rewire/rewire/registry/schema"
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
	// CommandTimeout bounds check and reload; default 30s.
	CommandTimeout time.Duration `yaml:"command_timeout"`
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

// Target is one template and the file it renders into.
type Target struct {
	cfg     TargetConfig
	keys    schema.Keys
	log     *slog.Logger
	metrics *Metrics
	tmpl    *template.Template

	// mu serializes Apply.
	mu sync.Mutex
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
	for _, c := range []Command{cfg.Check, cfg.Reload} {
		if err := c.Validate(); err != nil {
			return nil, &Error{Template: cfg.Name, Stage: StageParse, Err: err}
		}
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Target{cfg: cfg, keys: opts.Keys, log: log.With("component", "render", "template", cfg.Name),
		metrics: opts.Metrics, tmpl: tmpl}, nil
}

// Parse parses template text with every function of the package. name
// appears in error messages (use the source file's name).
func Parse(name, text string) (*template.Template, error) {
	return template.New(name).Option("missingkey=error").Funcs(baseFuncs()).Parse(text)
}

// Execute runs tmpl against snap in memory.
func Execute(tmpl *template.Template, snap *schema.Snapshot, keys schema.Keys) ([]byte, error) {
	t, err := tmpl.Clone()
	if err != nil {
		return nil, err
	}
	var b bytes.Buffer
	if err := t.Funcs(registryFuncs(snap, keys)).Execute(&b, nil); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}

// Name returns the template's configured name.
func (t *Target) Name() string { return t.cfg.Name }

// Destination returns the path the template renders into.
func (t *Target) Destination() string { return t.cfg.Destination }

// Render executes the template against snap without touching any file.
func (t *Target) Render(snap *schema.Snapshot) ([]byte, error) {
	out, err := Execute(t.tmpl, snap, t.keys)
	if err != nil {
		return nil, &Error{Template: t.cfg.Name, Stage: StageExecute, Err: err}
	}
	return out, nil
}

// Apply renders snap and, when the bytes differ from the destination,
// replaces it: staged file → check → fsync → rename → reload. Any failure
// leaves the previous destination in place (after a failed reload it is
// restored and reloaded again) and returns an *Error.
func (t *Target) Apply(ctx context.Context, snap *schema.Snapshot) (changed bool, err error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t0 := time.Now()
	defer func() { t.metrics.observe(t.cfg.Name, t0, changed, err) }()
	out, err := t.Render(snap)
	if err != nil {
		return false, err
	}
	old, err := os.ReadFile(t.cfg.Destination)
	exists := err == nil
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return false, &Error{Template: t.cfg.Name, Stage: StageWrite, Err: err}
	}
	if exists && bytes.Equal(old, out) {
		return false, nil
	}
	if err := t.install(ctx, out); err != nil {
		return false, err
	}
	if t.cfg.Reload.IsZero() {
		t.log.Info("file updated", "path", t.cfg.Destination, "rev", snap.Rev)
		return true, nil
	}
	output, rerr := t.cfg.Reload.run(ctx, t.vars(""), t.cfg.CommandTimeout)
	if rerr == nil {
		t.log.Info("file updated and reloaded", "path", t.cfg.Destination, "rev", snap.Rev)
		return true, nil
	}
	e := &Error{Template: t.cfg.Name, Stage: StageReload, Output: output, Err: rerr}
	if !exists {
		return true, e
	}
	// Put the previous file back and reload it, so what runs matches the
	// file on disk.
	if err := t.writeAtomic(old); err != nil {
		e.Err = fmt.Errorf("%w; restoring the previous file also failed: %v", rerr, err)
		return true, e
	}
	if _, err := t.cfg.Reload.run(ctx, t.vars(""), t.cfg.CommandTimeout); err != nil {
		e.Err = fmt.Errorf("%w; reload of the restored previous file also failed: %v", rerr, err)
	}
	return false, e
}

func (t *Target) vars(staged string) cmdVars {
	return cmdVars{Staged: staged, Destination: t.cfg.Destination}
}

// install writes out to a staged file beside the destination, runs the
// check on it, and renames it into place.
func (t *Target) install(ctx context.Context, out []byte) error {
	staged, err := t.stage(out)
	if err != nil {
		return &Error{Template: t.cfg.Name, Stage: StageWrite, Err: err}
	}
	defer os.Remove(staged) // no-op after a successful rename
	if !t.cfg.Check.IsZero() {
		if output, err := t.cfg.Check.run(ctx, t.vars(staged), t.cfg.CommandTimeout); err != nil {
			return &Error{Template: t.cfg.Name, Stage: StageCheck, Output: output, Err: err}
		}
	}
	if err := rename(staged, t.cfg.Destination); err != nil {
		return &Error{Template: t.cfg.Name, Stage: StageWrite, Err: err}
	}
	return nil
}

// writeAtomic replaces the destination with b without a check.
func (t *Target) writeAtomic(b []byte) error {
	staged, err := t.stage(b)
	if err != nil {
		return err
	}
	if err := rename(staged, t.cfg.Destination); err != nil {
		os.Remove(staged)
		return err
	}
	return nil
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

// rename moves staged over dst and fsyncs the directory so the rename
// survives a crash.
func rename(staged, dst string) error {
	if err := os.Rename(staged, dst); err != nil {
		return err
	}
	d, err := os.Open(filepath.Dir(dst))
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
