package haproxy

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// FileChange is one change of a template's file, from the config haproxy
// runs to the next one, as the render pipeline hands it over: it parses
// the two files when first asked and keeps what it applied.
type FileChange struct {
	r          *Runtime
	prev, next []byte // prev nil: no file before

	parsed           bool
	prevCfg, nextCfg *Config
	prevErr, nextErr error
	plan             Plan
	planErr          error
	client           *Client // set once the change went to the runtime API
	early            bool    // Early sent the change to the runtime API
	earlyErr         error   // and this is what the runtime API refused
}

// Change returns the change from prev (nil: no file before) to next. It
// does no work until one of its methods is called.
func (r *Runtime) Change(prev, next []byte) *FileChange {
	return &FileChange{r: r, prev: prev, next: next}
}

// parse parses both sides once and diffs them.
func (c *FileChange) parse() {
	if c.parsed {
		return
	}
	c.parsed = true
	if c.prev != nil {
		if prevCfg, nextCfg, plan, ok := c.r.splice(c.prev, c.next); ok {
			c.prevCfg, c.nextCfg, c.plan = prevCfg, nextCfg, plan
			return
		}
		c.prevCfg, c.prevErr = c.r.parse(c.prev)
	}
	c.nextCfg, c.nextErr = c.r.parse(c.next)
	if c.prevCfg != nil && c.nextCfg != nil {
		c.plan, c.planErr = Diff(c.prevCfg, c.nextCfg)
	}
}

// Early applies a server-only change through the runtime API before the
// new file is checked (live-first), and reports whether it went to the
// runtime API (a refusal after some commands went through counts: Apply
// then asks for a reload).
func (c *FileChange) Early(ctx context.Context) bool {
	if !c.r.cfg.liveFirst() || c.prev == nil {
		return false
	}
	c.parse()
	if c.prevErr != nil || c.nextErr != nil || c.planErr != nil || c.plan.Reload || c.plan.Empty() {
		return false
	}
	socket, ok := c.r.cfg.socket(c.nextCfg)
	if !ok {
		return false
	}
	c.client = NewClient(socket)
	actx, cancel := context.WithTimeout(ctx, c.r.cfg.timeout())
	defer cancel()
	c.earlyErr = c.client.Apply(actx, c.plan)
	c.early = true
	return true
}

// Undo puts haproxy's live servers back to the previous file after Early,
// the new file having failed its check or write (cause).
func (c *FileChange) Undo(ctx context.Context, cause error) error {
	actx, cancel := context.WithTimeout(ctx, c.r.cfg.timeout())
	defer cancel()
	c.r.metrics.liveReload(c.r.name, ReasonEarlyUndone)
	if _, _, _, err := c.r.repairDrift(actx, c.client, c.prevCfg); err != nil {
		return fmt.Errorf("putting haproxy's servers back to the previous file: %w", err)
	}
	return nil
}

// Apply brings haproxy's live servers in line with the new file, which is
// now in place, through the runtime API (or verifies what Early applied).
// It returns what it did, or a *ReloadNeeded saying why the change needs
// a reload; each such answer is counted by reason.
func (c *FileChange) Apply(ctx context.Context) (string, error) {
	done, err := c.apply(ctx)
	if rn := (*ReloadNeeded)(nil); errors.As(err, &rn) {
		c.r.metrics.liveReload(c.r.name, rn.Reason)
	}
	return done, err
}

func (c *FileChange) apply(ctx context.Context) (string, error) {
	if !c.r.cfg.live() {
		return "", &ReloadNeeded{ReasonLiveOff, "haproxy.live is false"}
	}
	if c.prev == nil {
		return "", &ReloadNeeded{ReasonFirst, "no previous config to compare with"}
	}
	c.parse()
	switch {
	case c.prevErr != nil:
		return "", &ReloadNeeded{ReasonParse, fmt.Sprintf("previous config: %v", c.prevErr)}
	case c.nextErr != nil:
		return "", &ReloadNeeded{ReasonParse, fmt.Sprintf("new config: %v", c.nextErr)}
	case c.planErr != nil:
		return "", &ReloadNeeded{ReasonParse, c.planErr.Error()}
	case c.plan.Reload:
		return "", &ReloadNeeded{ReasonStructure, c.plan.Reason}
	case c.plan.Empty():
		return "nothing haproxy runs changed", nil // comments or formatting only
	}
	actx, cancel := context.WithTimeout(ctx, c.r.cfg.timeout())
	defer cancel()
	if c.early {
		if c.earlyErr != nil {
			return "", &ReloadNeeded{ReasonRefused, c.earlyErr.Error()}
		}
	} else {
		socket, ok := c.r.cfg.socket(c.nextCfg)
		if !ok {
			return "", &ReloadNeeded{ReasonNoSocket, "the config declares no admin stats socket and haproxy.socket is not set"}
		}
		c.client = NewClient(socket)
		if err := c.client.Apply(actx, c.plan); err != nil {
			return "", &ReloadNeeded{ReasonRefused, err.Error()}
		}
	}
	// HAProxy may have drifted from the previous file (a change by hand, a
	// restart that lost the drain state): then repair from its live state.
	live, mismatch, _, err := c.r.repairDrift(actx, c.client, c.nextCfg)
	if err != nil {
		if mismatch == nil {
			return "", &ReloadNeeded{ReasonVerify, err.Error()}
		}
		return "", &ReloadNeeded{ReasonVerify, fmt.Sprintf("%v; repairing from the live state: %v", mismatch, err)}
	}
	n := len(c.plan.Changes)
	c.r.metrics.live(c.r.name, n)
	c.r.log.Info("server changes applied live through the runtime API; no reload", "changes", n)
	// A later reload or restart by someone else must not load a state
	// file older than these changes.
	c.r.saveState(actx, c.client, live, c.nextCfg)
	return fmt.Sprintf("%d server changes through the runtime API, no reload", n), nil
}

// BeforeReload prepares haproxy for a reload into the new file (into the
// previous one when rolling back): it writes the server-state files of
// the config about to be loaded from the haproxy that runs now, so the
// reload keeps each server's health. With confirm, it returns what waits
// until a new worker answers on the stats socket, or nil when it cannot
// tell (no haproxy running yet, no socket).
func (c *FileChange) BeforeReload(ctx context.Context, rollback, confirm bool) func(context.Context, time.Duration) error {
	c.parse()
	// The stats socket to read state from is the previous config's (the
	// haproxy running before this round), else the one to be loaded.
	running, next := c.prevCfg, c.nextCfg
	if rollback {
		next = c.prevCfg
	}
	if next == nil {
		return nil // haproxy -c accepted it; nothing this package can reconcile against
	}
	socket, ok := c.r.cfg.socket(running)
	if !ok {
		socket, ok = c.r.cfg.socket(next)
	}
	sctx, cancel := context.WithTimeout(ctx, c.r.cfg.timeout())
	defer cancel()
	var client *Client
	if ok {
		client = NewClient(socket)
	}
	c.r.saveState(sctx, client, nil, next)
	if !confirm {
		return nil
	}
	return c.r.watchWorker(ctx, running, next)
}

// watchWorker notes which worker answers on the stats socket of the
// haproxy that runs now and returns what waits for another one on the
// next config's socket; nil when none answers (not running yet, no
// socket) or the next config has no socket.
func (r *Runtime) watchWorker(ctx context.Context, running, next *Config) func(context.Context, time.Duration) error {
	if running == nil {
		return nil
	}
	oldSock, ok := r.cfg.socket(running)
	if !ok {
		return nil
	}
	newSock, ok := r.cfg.socket(next)
	if !ok {
		return nil
	}
	wctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	pid, err := NewClient(oldSock).WorkerPID(wctx)
	if err != nil {
		return nil
	}
	client := NewClient(newSock)
	return func(ctx context.Context, timeout time.Duration) error {
		timeout = min(timeout, r.cfg.timeout())
		ctx, cancel := context.WithTimeout(ctx, timeout)
		defer cancel()
		tick := time.NewTicker(10 * time.Millisecond)
		defer tick.Stop()
		for {
			if got, err := client.WorkerPID(ctx); err == nil && got != pid {
				return nil
			}
			select {
			case <-ctx.Done():
				return fmt.Errorf("no new haproxy worker answered on the stats socket within %s (worker %d still does)", timeout, pid)
			case <-tick.C:
			}
		}
	}
}
