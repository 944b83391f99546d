package render

import (
	"fmt"
	"os"
	"strconv"
	"time"

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
	// Runtime, when set, is the process that runs the file and can take
	// some changes without a reload (see Runtime). The templater sets it
	// from a template's `haproxy:` block.
	Runtime Runtime `yaml:"-"`
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
