package render

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"time"

	"github.com/rewire/rewire/haproxy"
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
	// Reconcile is how often the templater compares haproxy's live servers
	// with the file and repairs drift through the runtime API (changes
	// made by hand, a restart that lost the drain state); default 30s,
	// negative: never. Only with live on.
	Reconcile time.Duration `yaml:"reconcile"`
	// LiveFirst applies a server-only change through the runtime API
	// before the new file's check, and undoes it if the check fails;
	// default true (see livefirst.go for when it is not used).
	LiveFirst *bool `yaml:"live_first"`
}

// reconcileEvery returns the reconcile interval; 0 means never.
func (hc *HAProxyConfig) reconcileEvery() time.Duration {
	switch {
	case !hc.live() || hc.Reconcile < 0:
		return 0
	case hc.Reconcile == 0:
		return 30 * time.Second
	}
	return hc.Reconcile
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
	// reloadEarlyUndone counts changes applied live before their check
	// whose check then failed, so the live servers were put back.
	reloadEarlyUndone = "early_undone"
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
	var client *haproxy.Client
	var plan haproxy.Plan
	if e := in.early; e != nil {
		// Applied before the check (live-first); what is left is to verify.
		in.prevCfg, in.outCfg, plan, client = e.oldCfg, e.newCfg, e.plan, e.client
		if e.err != nil {
			return reloadRefused, e.err.Error()
		}
	} else {
		oldCfg, err := haproxy.Parse(in.prev)
		if err != nil {
			return reloadParse, fmt.Sprintf("previous config: %v", err)
		}
		in.prevCfg = oldCfg
		newCfg, err := haproxy.Parse(in.plan.out)
		if err != nil {
			return reloadParse, fmt.Sprintf("new config: %v", err)
		}
		in.outCfg = newCfg
		if plan, err = haproxy.Diff(oldCfg, newCfg); err != nil {
			return reloadParse, err.Error()
		}
		if plan.Reload {
			return reloadStructure, plan.Reason
		}
		if plan.Empty() {
			in.live = "nothing haproxy runs changed"
			return "", "" // comments or formatting only
		}
		socket, ok := hc.socket(newCfg)
		if !ok {
			return reloadNoSocket, "the config declares no admin stats socket and haproxy.socket is not set"
		}
		client = haproxy.NewClient(socket)
	}
	newCfg := in.outCfg
	actx, cancel := context.WithTimeout(ctx, hc.timeout())
	defer cancel()
	if in.early == nil {
		if err := client.Apply(actx, plan); err != nil {
			return reloadRefused, err.Error()
		}
	}
	// HAProxy may have drifted from the previous file (a change by hand, a
	// restart that lost the drain state): then repair from its live state.
	live, mismatch, _, err := t.repairDrift(actx, client, newCfg)
	if err != nil {
		if mismatch == nil {
			return reloadVerify, err.Error()
		}
		return reloadVerify, fmt.Sprintf("%v; repairing from the live state: %v", mismatch, err)
	}
	t.metrics.live(t.cfg.Name, len(plan.Changes))
	in.live = fmt.Sprintf("%d server changes through the runtime API, no reload", len(plan.Changes))
	t.log.Info("server changes applied live through the runtime API; no reload", "changes", len(plan.Changes), "path", t.cfg.Destination)
	// A later reload or restart by someone else must not load a state
	// file older than these changes.
	t.saveState(actx, client, live, newCfg)
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

// reloadSide is an haproxy template of a group about to reload: the
// config haproxy runs now and the one the reload makes it load (the same
// bytes for a template whose file did not change this round).
type reloadSide struct {
	t       *Target
	running *haproxy.Config // nil when unknown (first render)
	next    *haproxy.Config
}

// reloadSides returns the group's haproxy templates around a reload of
// the files in done (rollback: back to their previous files). Templates
// of the group that did not change load their current file again, so
// they need a fresh state file too.
func (g *group) reloadSides(done []*installed, rollback bool) []reloadSide {
	changed := map[*Target]*installed{}
	for _, in := range done {
		changed[in.t] = in
	}
	var sides []reloadSide
	for _, t := range g.targets {
		if t.cfg.HAProxy == nil {
			continue
		}
		// Each side's bytes, and its parse when applyLive already made it.
		var running, next []byte
		var runningCfg, nextCfg *haproxy.Config
		if in := changed[t]; in != nil {
			if in.existed {
				running, runningCfg = in.prev, in.prevCfg
			}
			next, nextCfg = in.plan.out, in.outCfg
			if rollback {
				next, nextCfg = in.prev, in.prevCfg
			}
		} else {
			cur, err := os.ReadFile(t.cfg.Destination)
			if err != nil {
				continue
			}
			running, next = cur, cur
		}
		side := reloadSide{t: t, running: runningCfg, next: nextCfg}
		if side.next == nil {
			var err error
			if side.next, err = haproxy.Parse(next); err != nil {
				continue // haproxy -c accepted it; nothing this package can reconcile against
			}
		}
		if side.running == nil && running != nil {
			side.running, _ = haproxy.Parse(running)
		}
		sides = append(sides, side)
	}
	return sides
}

// saveBeforeReload writes the server-state files of the config about to
// be loaded, from the haproxy that runs now (its socket is asked), so the
// reload keeps each server's health.
func (s reloadSide) saveBeforeReload(ctx context.Context) {
	hc := s.t.cfg.HAProxy
	socket, ok := hc.socket(s.running)
	if !ok {
		socket, ok = hc.socket(s.next)
	}
	sctx, cancel := context.WithTimeout(ctx, hc.timeout())
	defer cancel()
	var client *haproxy.Client
	if ok {
		client = haproxy.NewClient(socket)
	}
	s.t.saveState(sctx, client, nil, s.next)
}

// saveState writes cfg's server-state files from client's haproxy (see
// haproxy.SaveState), or from live when the caller has just read it.
// When that fails (no haproxy running, no socket), it removes them
// instead: a stale state file would bring back old addresses and states
// on the next start.
func (t *Target) saveState(ctx context.Context, client *haproxy.Client, live *haproxy.LiveState, cfg *haproxy.Config) {
	files, err := cfg.StateFiles()
	if err != nil {
		t.log.Warn("server-state file not written", "err", err)
		t.metrics.stateSaved(t.cfg.Name, "failed")
		return
	}
	if len(files) == 0 {
		return
	}
	switch {
	case live != nil:
		_, err = live.SaveState(cfg)
	case client == nil:
		err = errors.New("no admin stats socket to read the running state from")
	default:
		_, err = haproxy.SaveState(ctx, client, cfg)
	}
	if err == nil {
		t.metrics.stateSaved(t.cfg.Name, "ok")
		return
	}
	t.metrics.stateSaved(t.cfg.Name, "failed")
	level, msg := slog.LevelWarn, "could not save HAProxy's server state"
	var op *net.OpError
	if errors.As(err, &op) && op.Op == "dial" {
		// No haproxy running (yet): nothing to keep.
		level, msg = slog.LevelInfo, "no haproxy answers on the stats socket to save server state from"
	}
	if rmErr := haproxy.RemoveStateFiles(cfg); rmErr != nil {
		t.log.Error(msg+"; removing the stale state files failed too: haproxy may load old state on its next start",
			"err", err, "remove_err", rmErr)
		return
	}
	t.log.Log(ctx, level, msg+"; removed the state files, so haproxy's next start begins with every server fresh", "err", err)
}

// workerWatch is the haproxy worker that served a template's stats socket
// before a reload, and the socket the new one will serve.
type workerWatch struct {
	t      *Target
	client *haproxy.Client // on the next config's socket
	pid    int
}

// watchWorker notes which worker answers on the stats socket of the
// haproxy that runs now, or returns nil when none answers (not running
// yet, no socket) or the next config has no socket: then there is nothing
// to compare with.
func (s reloadSide) watchWorker(ctx context.Context) *workerWatch {
	hc := s.t.cfg.HAProxy
	if s.running == nil {
		return nil
	}
	oldSock, ok := hc.socket(s.running)
	if !ok {
		return nil
	}
	newSock, ok := hc.socket(s.next)
	if !ok {
		return nil
	}
	wctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	pid, err := haproxy.NewClient(oldSock).WorkerPID(wctx)
	if err != nil {
		return nil
	}
	return &workerWatch{t: s.t, client: haproxy.NewClient(newSock), pid: pid}
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

// reconcile compares what haproxy runs with the destination file and
// repairs differences through the runtime API. A difference it cannot
// repair live is logged (once while it lasts); the next change to the
// template reloads.
func (t *Target) reconcile(ctx context.Context) {
	t.apply.Lock()
	defer t.apply.Unlock()
	hc := t.cfg.HAProxy
	text, err := os.ReadFile(t.cfg.Destination)
	if err != nil {
		return // not rendered yet
	}
	cfg, err := haproxy.Parse(text)
	if err != nil {
		return
	}
	socket, ok := hc.socket(cfg)
	if !ok {
		return
	}
	rctx, cancel := context.WithTimeout(ctx, hc.timeout())
	defer cancel()
	client := haproxy.NewClient(socket)
	_, mismatch, repairs, err := t.repairDrift(rctx, client, cfg)
	switch {
	case mismatch == nil:
		// In line with the file, or haproxy not answering (not running,
		// restarting): nothing to repair.
		t.setDrift("")
	case err != nil:
		msg := fmt.Sprintf("%v; repairing through the runtime API: %v", mismatch, err)
		if t.setDrift(msg) {
			t.log.Error("haproxy's live servers differ from the file and cannot be repaired live; the next change to this template reloads",
				"path", t.cfg.Destination, "err", msg)
		}
	default:
		t.setDrift("")
		t.metrics.drift(t.cfg.Name, repairs)
		t.saveState(rctx, client, nil, cfg)
	}
}

// repairDrift verifies haproxy's live servers against cfg and, when they
// differ, repairs them through the runtime API (haproxy.Converge), then
// logs and counts the repair. It returns the live state it verified when
// that matched cfg as it was (nil after a repair), the mismatch Verify
// found (nil when none, or when reading the live state failed: err says
// why), the number of changes the repair made, and why the repair failed.
func (t *Target) repairDrift(ctx context.Context, client *haproxy.Client, cfg *haproxy.Config) (live *haproxy.LiveState, mismatch error, repairs int, err error) {
	live, err = client.LiveState(ctx)
	if err != nil {
		return nil, nil, 0, err
	}
	mismatch = live.Verify(cfg)
	if mismatch == nil {
		return live, nil, 0, nil
	}
	plan, err := haproxy.Converge(ctx, client, cfg)
	if err != nil {
		return nil, mismatch, 0, err
	}
	t.metrics.live(t.cfg.Name, len(plan.Changes))
	t.log.Warn("haproxy's live servers had drifted from the file; repaired through the runtime API",
		"path", t.cfg.Destination, "mismatch", mismatch, "repairs", len(plan.Changes))
	return nil, mismatch, len(plan.Changes), nil
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
