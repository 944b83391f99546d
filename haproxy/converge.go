package haproxy

import (
	"context"
	"fmt"
)

// Converge brings what HAProxy runs back to cfg through the runtime API,
// from `show servers state` rather than from a previous config: it repairs
// drift (a change made by hand, an haproxy started from the file without
// the runtime-only drain state, a change applied halfway). It returns the
// plan it applied (empty when nothing differed) and the outcome of Verify
// afterwards; a plan that needs a reload (a backend that cannot take a missing server, a
// server whose options differ) is returned with ErrReloadRequired.
//
// Unlike Verify, it also ends a drain set by hand on a server whose line
// has no DrainMark: the config is the truth.
func Converge(ctx context.Context, c *Client, cfg *Config) (Plan, error) {
	states, err := c.ShowServersState(ctx, "")
	if err != nil {
		return Plan{}, err
	}
	plan, err := Diff(liveConfig(cfg, states), cfg)
	if err != nil {
		return plan, err
	}
	if plan.Reload {
		return plan, fmt.Errorf("%w: %s", ErrReloadRequired, plan.Reason)
	}
	if !plan.Empty() {
		if err := c.Apply(ctx, plan); err != nil {
			return plan, err
		}
	}
	// Also when there was nothing to apply: some differences Verify sees
	// cannot be repaired this way (a backend the config lacks, the port of
	// a server given by name), and must not pass for repaired.
	return plan, Verify(ctx, c, cfg)
}

// liveConfig is cfg with the servers of its backend and listen sections
// replaced by the running ones, as Diff needs them: the values the
// runtime API sets come from states; options, and addresses that are not
// IPs (HAProxy resolved them), come from cfg, since show servers state
// does not show them and they cannot differ at runtime.
func liveConfig(cfg *Config, states []ServerState) *Config {
	byBackend := map[string][]ServerState{}
	for _, st := range states {
		byBackend[st.Backend] = append(byBackend[st.Backend], st)
	}
	live := &Config{Sections: make([]*Section, len(cfg.Sections))}
	for i, sec := range cfg.Sections {
		if !hasServers(sec.Kind) {
			live.Sections[i] = sec
			continue
		}
		cp := *sec
		cp.Servers = nil
		templated := templateNames(sec)
		want := make(map[string]Server, len(sec.Servers))
		for _, s := range sec.Servers {
			want[s.Name] = s
		}
		for _, st := range byBackend[sec.Name] {
			if templated[st.Name] {
				continue // made by a server-template line: not Diff's business
			}
			s := Server{Name: st.Name, Addr: st.Addr, Port: st.Port, Weight: st.Weight,
				Disabled: st.AdminMaint(), Drain: st.Drain()}
			if want, ok := want[st.Name]; ok {
				s.Options, s.Defaults, s.Line = want.Options, want.Defaults, want.Line
				if !want.IsIP() {
					s.Addr, s.Port = want.Addr, want.Port
				}
			}
			cp.Servers = append(cp.Servers, s)
		}
		live.Sections[i] = &cp
	}
	return live
}
