package templater

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/rewire/rewire/haproxy"
	"github.com/rewire/rewire/internal/yamlconf"
	"github.com/rewire/rewire/registry"
	"github.com/rewire/rewire/registry/schema"
	"github.com/rewire/rewire/render"
)

// Config is templater.yaml, a public contract: see README.md "templater.yaml".
type Config struct {
	Etcd      registry.Config   `yaml:"etcd"`
	Listen    string            `yaml:"listen"`
	Wait      render.WaitConfig `yaml:"wait"`
	Templates []Template        `yaml:"templates"`
}

// Template is one entry of `templates:`: what the render pipeline needs,
// and for a config HAProxy runs, its `haproxy:` block (the runtime API,
// the master CLI, server state).
type Template struct {
	render.TargetConfig `yaml:",inline"`
	HAProxy             *haproxy.RuntimeConfig `yaml:"haproxy"`
}

// DefaultListen is the status and metrics address when the file names none.
const DefaultListen = "127.0.0.1:9702"

// LoadConfig reads and validates path, and returns the parsed document
// too (for located errors). Relative source and destination paths are
// taken relative to the config file's directory.
func LoadConfig(path string) (Config, *yamlconf.Doc, error) {
	cfg := Config{Listen: DefaultListen}
	doc, decodeErr := yamlconf.Load(path, &cfg)
	if decodeErr != nil && !doc.Parsed() {
		return cfg, doc, decodeErr
	}
	// Validate what decoded too: every problem of the file at once.
	base := filepath.Dir(path)
	for i := range cfg.Templates {
		t := &cfg.Templates[i]
		defaultGuards(doc, fmt.Sprintf("templates[%d].guards", i), &t.Guards)
		if t.Source != "" && !filepath.IsAbs(t.Source) {
			t.Source = filepath.Join(base, t.Source)
		}
		if t.Destination != "" && !filepath.IsAbs(t.Destination) {
			t.Destination = filepath.Join(base, t.Destination)
		}
	}
	return cfg, doc, doc.Merge(decodeErr, cfg.Validate(doc))
}

// defaultGuards sets each guard the file does not mention to its default
// (render.DefaultGuards): self-preservation is on unless the file turns it
// off with an explicit 0.
func defaultGuards(doc *yamlconf.Doc, path string, g *render.Guards) {
	def := render.DefaultGuards()
	if !doc.Has(path + ".max_removed_fraction") {
		g.MaxRemovedFraction = def.MaxRemovedFraction
	}
	if !doc.Has(path + ".mass_expiry_fraction") {
		g.MassExpiryFraction = def.MassExpiryFraction
	}
	if !doc.Has(path + ".hold") {
		g.Hold = def.Hold
	}
}

// Validate returns one located error per problem.
func (c *Config) Validate(doc *yamlconf.Doc) error {
	var errs []error
	bad := func(path string, err error) { errs = append(errs, doc.Error(path, err)) }
	if len(c.Templates) == 0 {
		bad("templates", errors.New("no templates configured"))
	}
	if err := c.Wait.Validate(); err != nil {
		bad("wait", err)
	}
	names, dests := map[string]int{}, map[string]int{}
	for i, t := range c.Templates {
		p := fmt.Sprintf("templates[%d]", i)
		switch {
		case t.Name == "":
			bad(p+".name", errors.New("missing"))
		case schema.ValidateName(t.Name) != nil:
			bad(p+".name", schema.ValidateName(t.Name))
		default:
			if j, dup := names[t.Name]; dup {
				bad(p+".name", fmt.Errorf("duplicate template name %q (also templates[%d])", t.Name, j))
			}
			names[t.Name] = i
		}
		if t.Source == "" {
			bad(p+".source", errors.New("missing"))
		} else if _, err := os.Stat(t.Source); err != nil {
			bad(p+".source", err)
		}
		if t.Destination == "" {
			bad(p+".destination", errors.New("missing"))
		} else {
			// Compared as the file they name: two spellings of one path
			// (through .., a symlinked directory) would be two writers of
			// one file, the last one winning.
			real := resolvePath(t.Destination)
			if j, dup := dests[real]; dup {
				bad(p+".destination", fmt.Errorf("%s (%s) is also the destination of templates[%d]", t.Destination, real, j))
			}
			dests[real] = i
			if st, err := os.Stat(filepath.Dir(t.Destination)); err != nil || !st.IsDir() {
				bad(p+".destination", fmt.Errorf("directory %s does not exist", filepath.Dir(t.Destination)))
			}
		}
		if t.Wait != nil {
			if err := t.Wait.Validate(); err != nil {
				bad(p+".wait", err)
			}
		}
		if err := t.Guards.Validate(); err != nil {
			bad(p+".guards", err)
		}
		if t.ReloadMinInterval < 0 {
			bad(p+".reload_min_interval", errors.New("negative"))
		}
		for field, cmd := range map[string]render.Command{"check": t.Check, "reload": t.Reload, "verify": t.Verify} {
			if err := cmd.Validate(); err != nil {
				bad(p+"."+field, err)
			}
		}
		if t.CommandTimeout < 0 {
			bad(p+".command_timeout", errors.New("negative"))
		}
		if t.RenderTimeout < 0 {
			bad(p+".render_timeout", errors.New("negative"))
		}
		if t.HAProxy != nil {
			if err := t.HAProxy.Validate(); err != nil {
				bad(p+".haproxy", err)
			}
		}
	}
	return errors.Join(errs...)
}

// resolvePath returns the file path names once symlinks are followed; for
// a file that does not exist yet, its directory's.
func resolvePath(path string) string {
	if abs, err := filepath.Abs(path); err == nil {
		path = abs
	}
	if r, err := filepath.EvalSymlinks(path); err == nil {
		return r
	}
	if d, err := filepath.EvalSymlinks(filepath.Dir(path)); err == nil {
		return filepath.Join(d, filepath.Base(path))
	}
	return filepath.Clean(path)
}

// Metrics are the templater's metrics: the render pipeline's and the
// HAProxy runtime's.
type Metrics struct {
	Render  *render.Metrics
	HAProxy *haproxy.RuntimeMetrics
}

// NewMetrics registers every templater metric with reg (nil: unregistered).
func NewMetrics(reg prometheus.Registerer) Metrics {
	return Metrics{Render: render.NewMetrics(reg), HAProxy: haproxy.NewRuntimeMetrics(reg)}
}

// Targets parses every template and wires in the HAProxy runtime of those
// with a `haproxy:` block. A parse error names the template, file and
// line.
func (c *Config) Targets(keys schema.Keys, log *slog.Logger, m Metrics) ([]*render.Target, error) {
	var errs []error
	var out []*render.Target
	opts := render.Options{Keys: keys, Logger: log, Metrics: m.Render}
	for _, tc := range c.Templates {
		if tc.HAProxy != nil {
			tc.Runtime = HAProxyRuntime(*tc.HAProxy, haproxy.RuntimeOptions{Name: tc.Name, Logger: log, Metrics: m.HAProxy})
		}
		t, err := render.NewTarget(tc.TargetConfig, opts)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		out = append(out, t)
	}
	return out, errors.Join(errs...)
}

// HAProxyRuntime returns the render runtime of a template's `haproxy:`
// block.
func HAProxyRuntime(cfg haproxy.RuntimeConfig, opts haproxy.RuntimeOptions) render.Runtime {
	return haproxyRuntime{haproxy.NewRuntime(cfg, opts)}
}

// haproxyRuntime adapts *haproxy.Runtime to render.Runtime: the haproxy
// package does not import render, so its Change returns its own type.
type haproxyRuntime struct{ *haproxy.Runtime }

func (r haproxyRuntime) Change(prev, next []byte) render.RuntimeChange {
	return r.Runtime.Change(prev, next)
}
