package render

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"syscall"
	"time"

	"github.com/rewire/rewire/render/haproxy"
)

// HAProxyConfig is a template's `haproxy:` block: apply server changes
// through HAProxy's runtime API instead of reloading.
type HAProxyConfig struct {
	// Socket is the admin stats socket (`stats socket PATH level admin`).
	// Empty: the one the rendered config declares.
	Socket string `yaml:"socket"`
	// Timeout bounds the runtime API commands of one change; default 10s.
	Timeout time.Duration `yaml:"timeout"`
	// Master is the master CLI socket of a master-worker haproxy (-W -S).
	// When the template has no reload command, the templater reloads
	// through it and checks `show proc`: a rejected reload is a failure
	// (the previous file is put back), not a silent no-op.
	Master string `yaml:"master"`
	// Live applies server-only changes through the runtime API; default
	// true. false reloads on every change, keeping the rest of the block:
	// the server-state file, and the check that a reload really started
	// a new worker.
	Live *bool `yaml:"live"`
}

// live reports whether server-only changes go through the runtime API.
func (hc *HAProxyConfig) live() bool { return hc.Live == nil || *hc.Live }

// Reasons a change to a haproxy template was reloaded instead of applied
// live: the label values of templater_haproxy_reloads_total.
const (
	reloadFirst     = "first_render"
	reloadParse     = "parse"
	reloadStructure = "structure"
	reloadNoSocket  = "no_socket"
	reloadRefused   = "refused"
	reloadVerify    = "verify"
	reloadLiveOff   = "live_off"
)

// applyLive tries to apply the installed change through the runtime API.
// It returns "" when HAProxy's live state now matches the new file (or
// nothing HAProxy runs changed), else the reason a reload is needed and
// a human explanation.
func (in *installed) applyLive(ctx context.Context) (reason, why string) {
	t, hc := in.t, in.t.cfg.HAProxy
	if !hc.live() {
		return reloadLiveOff, "haproxy.live is false"
	}
	if !in.existed {
		return reloadFirst, "no previous config to compare with"
	}
	oldCfg, err := haproxy.Parse(in.prev)
	if err != nil {
		return reloadParse, fmt.Sprintf("previous config: %v", err)
	}
	newCfg, err := haproxy.Parse(in.plan.out)
	if err != nil {
		return reloadParse, fmt.Sprintf("new config: %v", err)
	}
	plan, err := haproxy.Diff(oldCfg, newCfg)
	if err != nil {
		return reloadParse, err.Error()
	}
	if plan.Reload {
		return reloadStructure, plan.Reason
	}
	if plan.Empty() {
		in.how = "live: nothing haproxy runs changed"
		return "", "" // comments or formatting only
	}
	socket, ok := hc.socket(newCfg)
	if !ok {
		return reloadNoSocket, "the config declares no admin stats socket and haproxy.socket is not set"
	}
	actx, cancel := context.WithTimeout(ctx, hc.timeout())
	defer cancel()
	client := haproxy.NewClient(socket)
	if err := client.Apply(actx, plan); err != nil {
		return reloadRefused, err.Error()
	}
	if err := haproxy.Verify(actx, client, newCfg); err != nil {
		// HAProxy had drifted from the previous file (a change by hand, a
		// restart that lost the drain state): repair from its live state.
		fix, cerr := haproxy.Converge(actx, client, newCfg)
		if cerr != nil {
			return reloadVerify, fmt.Sprintf("%v; repairing from the live state: %v", err, cerr)
		}
		t.metrics.live(t.cfg.Name, len(fix.Changes))
		t.log.Warn("haproxy's live state had drifted from the previous file; repaired through the runtime API", "mismatch", err, "repairs", len(fix.Changes))
	}
	t.metrics.live(t.cfg.Name, len(plan.Changes))
	in.how = fmt.Sprintf("live: %d server changes through the runtime API, no reload", len(plan.Changes))
	t.log.Info("server changes applied live through the runtime API; no reload", "changes", len(plan.Changes), "path", t.cfg.Destination)
	// A later reload or restart by someone else must not load a state
	// file older than these changes.
	in.saveState(actx, client, newCfg)
	return "", ""
}

// socket returns the admin stats socket to use for cfg: haproxy.socket,
// else the one cfg declares.
func (hc *HAProxyConfig) socket(cfg *haproxy.Config) (string, bool) {
	if hc.Socket != "" {
		return hc.Socket, true
	}
	if cfg == nil {
		return "", false
	}
	return cfg.StatsSocket()
}

func (hc *HAProxyConfig) timeout() time.Duration {
	if hc.Timeout <= 0 {
		return 10 * time.Second
	}
	return hc.Timeout
}

// saveBeforeReload writes the server-state files of the config about to be
// loaded (the new one, or the previous one when rolling back), from the
// running haproxy, so the reload keeps each server's health. The running
// haproxy is the one the previous file started: its socket is asked.
func (in *installed) saveBeforeReload(ctx context.Context, rollback bool) {
	hc := in.t.cfg.HAProxy
	next := in.plan.out
	if rollback {
		next = in.prev
	}
	cfg, err := haproxy.Parse(next)
	if err != nil {
		return // haproxy -c accepted it, so it has little to load; nothing to reconcile against
	}
	running := cfg
	if in.existed {
		if prev, err := haproxy.Parse(in.prev); err == nil {
			running = prev
		}
	}
	socket, ok := hc.socket(running)
	if !ok {
		socket, ok = hc.socket(cfg)
	}
	sctx, cancel := context.WithTimeout(ctx, hc.timeout())
	defer cancel()
	var client *haproxy.Client
	if ok {
		client = haproxy.NewClient(socket)
	}
	in.saveState(sctx, client, cfg)
}

// saveState writes cfg's server-state files from client's haproxy (see
// haproxy.SaveState). When that fails (no haproxy running, no socket),
// it removes them instead: a stale state file would bring back old
// addresses and states on the next start.
func (in *installed) saveState(ctx context.Context, client *haproxy.Client, cfg *haproxy.Config) {
	t := in.t
	files, err := cfg.StateFiles()
	if err != nil {
		t.log.Warn("server-state file not written", "err", err)
		t.metrics.stateSaved(t.cfg.Name, "failed")
		return
	}
	if len(files) == 0 {
		return
	}
	if client == nil {
		err = errors.New("no admin stats socket to read the running state from")
	} else {
		_, err = haproxy.SaveState(ctx, client, cfg)
	}
	if err == nil {
		t.metrics.stateSaved(t.cfg.Name, "ok")
		return
	}
	t.metrics.stateSaved(t.cfg.Name, "failed")
	rmErr := haproxy.RemoveStateFiles(cfg)
	level := slog.LevelWarn
	if errors.Is(err, syscall.ENOENT) || errors.Is(err, syscall.ECONNREFUSED) {
		level = slog.LevelInfo // no haproxy running (yet): nothing to keep
	}
	t.log.Log(ctx, level, "could not read HAProxy's server state; removed the state files, so its next start begins with every server fresh",
		"err", err, "remove_err", rmErr)
}

// workerWatch is the haproxy worker that served a template's stats socket
// before a reload.
type workerWatch struct {
	in     *installed
	client *haproxy.Client
	pid    int
}

// watchWorker notes which worker answers on the stats socket of the
// haproxy that runs the previous file, or returns nil when none answers
// (not running yet, no socket): then there is nothing to compare with.
func (in *installed) watchWorker(ctx context.Context) *workerWatch {
	hc := in.t.cfg.HAProxy
	var running *haproxy.Config
	if in.existed {
		running, _ = haproxy.Parse(in.prev)
	}
	socket, ok := hc.socket(running)
	if !ok {
		return nil
	}
	wctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	client := haproxy.NewClient(socket)
	pid, err := client.WorkerPID(wctx)
	if err != nil {
		return nil
	}
	return &workerWatch{in: in, client: client, pid: pid}
}

// wait polls the stats socket until a worker other than the watched one
// answers, or timeout passes.
func (w *workerWatch) wait(ctx context.Context, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for {
		if pid, err := w.client.WorkerPID(ctx); err == nil && pid != w.pid {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("no new haproxy worker answered on the stats socket within %s (worker %d still does)", timeout, w.pid)
		case <-tick.C:
		}
	}
}
