// Package templater is the templater daemon's engine: it keeps one
// render.Runner applying the configured templates as the registry changes,
// re-parses a template whose source file is edited, and swaps the whole
// runner when the config file changes (on its own or on Reload). The
// binary (cmd/templater) does flags, the etcd connection, the status page
// and signals; everything that happens between a config and the files it
// produces is here, and testable in process.
//
//	e := templater.New(templater.Options{Source: watcher, ConfigPath: path, Load: load}, first)
//	go func() { for range sighup { e.Reload() } }()
//	err := e.Run(ctx) // returns after the runner finished any apply it started
package templater

import (
	"context"
	"log/slog"
	"os"
	"sync"
	"time"

	"github.com/rewire/rewire/internal/daemon"
	"github.com/rewire/rewire/render"
)

// Loaded is a config as the engine runs it: the templates, parsed, and the
// default quiescence.
type Loaded struct {
	Wait    render.WaitConfig
	Targets []*render.Target
}

// Options configures New.
type Options struct {
	// Source is the registry (a *registry.Watcher); the engine does not
	// run it.
	Source render.Source
	// ConfigPath is the config file: its edits reload the config.
	ConfigPath string
	// Load reads and parses ConfigPath. An error keeps the running config
	// and shows in ConfigError.
	Load func() (Loaded, error)
	// Logger: nil discards.
	Logger *slog.Logger
}

// Engine runs the templater's templates. Its methods are safe for
// concurrent use.
type Engine struct {
	opts   Options
	log    *slog.Logger
	reload chan struct{}
	first  Loaded

	// mu guards the fields below.
	mu        sync.Mutex
	runner    *render.Runner
	configErr string
}

// New returns an Engine that starts with first (what Load returned at
// start-up, so that a broken config fails the start, not the first
// reload); call Run to start it.
func New(opts Options, first Loaded) *Engine {
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Engine{opts: opts, log: log, reload: make(chan struct{}, 1), first: first}
}

// Reload asks Run to read the config file again (SIGHUP). It does not
// wait: a rejected config shows in ConfigError and the log.
func (e *Engine) Reload() {
	select {
	case e.reload <- struct{}{}:
	default:
	}
}

// Targets returns the running config's templates.
func (e *Engine) Targets() []*render.Target {
	e.mu.Lock()
	r := e.runner
	e.mu.Unlock()
	if r == nil {
		return nil
	}
	return r.Targets()
}

// ConfigError is why the last config reload was rejected, "" when the
// running config is the file's.
func (e *Engine) ConfigError() string {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.configErr
}

func (e *Engine) setConfigErr(s string) {
	e.mu.Lock()
	e.configErr = s
	e.mu.Unlock()
}

// Run applies the templates until ctx ends, reloading the config when it
// changes. It returns after the runner stopped; an apply in progress
// finishes or rolls back first (see render.Runner).
func (e *Engine) Run(ctx context.Context) error {
	stop := e.start(ctx, e.first)
	loaded := readFileString(e.opts.ConfigPath)
	for {
		select {
		case <-ctx.Done():
			stop()
			return nil
		case <-e.reload:
		}
		text := readFileString(e.opts.ConfigPath)
		if text == loaded {
			// A template source changed, not the config; or the config is
			// back to the running one, and a rejection of an edit is moot.
			e.setConfigErr("")
			continue
		}
		next, err := e.opts.Load()
		if err != nil {
			e.setConfigErr(err.Error())
			e.log.Error("config reload rejected; the running config stays", "path", e.opts.ConfigPath, "err", err)
			continue
		}
		stop()
		loaded = text
		e.setConfigErr("")
		stop = e.start(ctx, next)
		e.log.Info("config reloaded", "path", e.opts.ConfigPath, "templates", len(next.Targets))
	}
}

// start runs a runner for l, and a watch of its template sources and the
// config file, until the returned func stops both and waits for them.
func (e *Engine) start(ctx context.Context, l Loaded) (stop func()) {
	r := render.NewRunner(render.RunnerOptions{Source: e.opts.Source, Targets: l.Targets, Wait: l.Wait, Logger: e.log})
	e.mu.Lock()
	e.runner = r
	e.mu.Unlock()
	rctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Go(func() { r.Run(rctx) })
	// Edits of a template's source are re-parsed and re-rendered; a source
	// that does not parse leaves the previous template running.
	paths := []string{e.opts.ConfigPath}
	for _, t := range l.Targets {
		paths = append(paths, t.Source())
	}
	wg.Go(func() {
		err := daemon.WatchFiles(rctx, paths, 100*time.Millisecond, func() {
			for _, t := range l.Targets {
				if changed, _ := t.Reparse(); changed {
					r.Kick(t.Name())
				}
			}
			e.Reload() // the config file may have changed too
		})
		if err != nil {
			e.log.Warn("not watching template sources; restart or SIGHUP to pick up edits", "err", err)
		}
	})
	return func() { cancel(); wg.Wait() }
}

func readFileString(path string) string {
	b, _ := os.ReadFile(path)
	return string(b)
}
