package render

import (
	"context"
	"fmt"
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
}

// Reasons a change to a haproxy template was reloaded instead of applied
// live: the label values of templater_haproxy_reloads_total.
const (
	reloadFirst     = "first_render"
	reloadParse     = "parse"
	reloadStructure = "structure"
	reloadNoSocket  = "no_socket"
	reloadRefused   = "refused"
	reloadVerify    = "verify"
)

// applyLive tries to apply the installed change through the runtime API.
// It returns "" when HAProxy's live state now matches the new file (or
// nothing HAProxy runs changed), else the reason a reload is needed and
// a human explanation.
func (in *installed) applyLive(ctx context.Context) (reason, why string) {
	t, hc := in.t, in.t.cfg.HAProxy
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
		return "", "" // comments or formatting only
	}
	socket := hc.Socket
	if socket == "" {
		var ok bool
		if socket, ok = newCfg.StatsSocket(); !ok {
			return reloadNoSocket, "the config declares no admin stats socket and haproxy.socket is not set"
		}
	}
	timeout := hc.Timeout
	if timeout <= 0 {
		timeout = 10 * time.Second
	}
	actx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	client := haproxy.NewClient(socket)
	if err := client.Apply(actx, plan); err != nil {
		return reloadRefused, err.Error()
	}
	if err := haproxy.Verify(actx, client, newCfg); err != nil {
		return reloadVerify, err.Error()
	}
	t.metrics.live(t.cfg.Name, len(plan.Changes))
	t.log.Info("server changes applied live through the runtime API; no reload", "changes", len(plan.Changes), "path", t.cfg.Destination)
	return "", ""
}
