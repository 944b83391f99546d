package render

import (
	"context"
	"log/slog"

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

// Runner applies every Target whenever the Source changes.
type Runner struct {
	src     Source
	targets []*Target
	log     *slog.Logger
}

// NewRunner returns a Runner; call Run to start it.
func NewRunner(src Source, targets []*Target, logger *slog.Logger) *Runner {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return &Runner{src: src, targets: targets, log: logger.With("component", "render.runner")}
}

// Run applies every target to each new snapshot until ctx ends. A failing
// target is logged and retried on the next change; it never stops the
// others or the Runner. Because the Source only ever holds complete
// snapshots, an unreachable etcd leaves the files as they are.
func (r *Runner) Run(ctx context.Context) error {
	var last int64 = -1
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-r.src.Updates():
		}
		snap := r.src.Current()
		if snap == nil || snap.Rev == last {
			continue
		}
		last = snap.Rev
		r.ApplyAll(ctx, snap)
	}
}

// ApplyAll applies every target to snap and reports whether all succeeded.
func (r *Runner) ApplyAll(ctx context.Context, snap *schema.Snapshot) bool {
	ok := true
	for _, t := range r.targets {
		if ctx.Err() != nil {
			return false
		}
		if _, err := t.Apply(ctx, snap); err != nil {
			ok = false
			r.log.Error("template not applied; the previous file stays in place", "template", t.Name(), "rev", snap.Rev, "err", err)
		}
	}
	return ok
}
