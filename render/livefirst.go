package render

import (
	"context"

	"github.com/rewire/rewire/haproxy"
)

// Live-first: a change to a haproxy template that touches only servers is
// applied through the runtime API as soon as it is rendered, and only then
// checked, swapped in and fsynced. The check of a large config is most of
// the time between a registry change and traffic (about 600 ms for one
// backend of 10,000 servers, against a few milliseconds for the runtime
// API), and the runtime API validates every server change it takes. If
// the check then fails, the live servers are put back to the file still
// in place, so the file and HAProxy's live state disagree for at most one
// check. The file stays the only truth for reloads and restarts.
//
// It is not used (the change waits for the check, as before) when there
// is no check to wait for, no previous file, a change beyond server lines,
// no admin socket, `haproxy: {live: false}`, or `haproxy: {live_first:
// false}` for a check that validates more than HAProxy itself would (a
// site policy, say): then a change the check refuses must never be live,
// not even for one check.

// early is a change applied live before its file was checked.
type early struct {
	oldCfg, newCfg *haproxy.Config
	plan           haproxy.Plan
	client         *haproxy.Client
	// err is the runtime API's refusal (some commands may have gone
	// through): the change then takes the reload path after its check.
	err error
}

// liveFirst reports whether changes of this haproxy block go live before
// their check.
func (hc *HAProxyConfig) liveFirst() bool {
	return hc != nil && hc.live() && (hc.LiveFirst == nil || *hc.LiveFirst)
}

// applyEarly applies p live first when it is a server-only change of a
// haproxy template with a check; nil when it does not apply.
func (t *Target) applyEarly(ctx context.Context, p *planned) *early {
	hc := t.cfg.HAProxy
	if !hc.liveFirst() || !p.existed || t.cfg.Check.IsZero() {
		return nil
	}
	oldCfg, err := haproxy.Parse(p.prev)
	if err != nil {
		return nil
	}
	newCfg, err := haproxy.Parse(p.out)
	if err != nil {
		return nil
	}
	plan, err := haproxy.Diff(oldCfg, newCfg)
	if err != nil || plan.Reload || plan.Empty() {
		return nil
	}
	socket, ok := hc.socket(newCfg)
	if !ok {
		return nil
	}
	e := &early{oldCfg: oldCfg, newCfg: newCfg, plan: plan, client: haproxy.NewClient(socket)}
	actx, cancel := context.WithTimeout(ctx, hc.timeout())
	defer cancel()
	e.err = e.client.Apply(actx, plan)
	return e
}

// undo puts HAProxy's live servers back to the file in place: the change
// applied early did not pass its check (or could not be written).
func (e *early) undo(ctx context.Context, t *Target, cause error) {
	actx, cancel := context.WithTimeout(ctx, t.cfg.HAProxy.timeout())
	defer cancel()
	t.metrics.liveReload(t.cfg.Name, reloadEarlyUndone)
	if _, _, _, err := t.repairDrift(actx, e.client, e.oldCfg); err != nil {
		t.setDrift("a change applied live before its check failed, and putting the previous servers back failed too: " + err.Error())
		t.log.Error("the change was applied live but failed its check; putting haproxy's servers back to the file also failed",
			"path", t.cfg.Destination, "err", cause, "undo_err", err)
		return
	}
	t.log.Error("the change was applied live but failed its check; haproxy's servers are back to the file in place",
		"path", t.cfg.Destination, "err", cause)
}
