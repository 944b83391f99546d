package render

import (
	"fmt"
	"time"

	"github.com/rewire/rewire/registry/schema"
)

// Guards protect a destination from changes that are more likely a fault
// (a partition, a mass lease expiry, an operator's slip) than the truth.
// They compare the instances of every service the template read with the
// snapshot the file on disk reflects.
type Guards struct {
	// MinServers: a change that leaves a service the template reads with
	// fewer registered instances than this, and fewer than the file has
	// now, is held for as long as that is so. 0: off.
	MinServers int `yaml:"min_servers"`
	// MaxRemovedFraction: a change that removes more than this fraction of
	// a service's instances at once is held for Hold, then applied. 0: off.
	MaxRemovedFraction float64 `yaml:"max_removed_fraction"`
	// MassExpiryFraction: when more than this fraction of every instance
	// in the registry (all services, not only the template's) vanished
	// since the file was written, a change that removes any of the
	// template's instances is held for Hold: many leases lost at once is
	// more likely a partition than a fleet death. 0: off.
	MassExpiryFraction float64 `yaml:"mass_expiry_fraction"`
	// Hold bounds how long the fraction guards hold a change; default 60s.
	Hold time.Duration `yaml:"hold"`
}

// Validate checks the guard settings.
func (g Guards) Validate() error {
	switch {
	case g.MinServers < 0:
		return fmt.Errorf("min_servers %d is negative", g.MinServers)
	case g.MaxRemovedFraction < 0 || g.MaxRemovedFraction >= 1:
		return fmt.Errorf("max_removed_fraction %v: want a fraction from 0 (off) up to, not including, 1", g.MaxRemovedFraction)
	case g.MassExpiryFraction < 0 || g.MassExpiryFraction >= 1:
		return fmt.Errorf("mass_expiry_fraction %v: want a fraction from 0 (off) up to, not including, 1", g.MassExpiryFraction)
	case g.Hold < 0:
		return fmt.Errorf("hold %s is negative", g.Hold)
	}
	return nil
}

// Guard kinds, as in the templater_guard_trips_total metric.
const (
	GuardMinServers = "min_servers"
	GuardRemoved    = "max_removed_fraction"
	GuardMassExpiry = "mass_expiry"
	GuardPanic      = "panic"
)

// hold is a guard's decision to keep the current file.
type hold struct {
	guard  string
	reason string
	until  time.Time // zero: while the condition lasts
}

// evaluate decides whether moving from the snapshot the file reflects
// (applied) to snap, for the services in deps, must be held. since is
// when the current removal was first held (zero if it was not).
func (g Guards) evaluate(applied, snap *schema.Snapshot, deps *Deps, since time.Time) *hold {
	if applied == nil || (g.MinServers == 0 && g.MaxRemovedFraction == 0 && g.MassExpiryFraction == 0) {
		return nil
	}
	var templateRemoved int
	var worst *hold
	for _, name := range deps.Services() {
		before, after := instanceIDs(applied.Service(name)), instanceIDs(snap.Service(name))
		if g.MinServers > 0 && len(after) < g.MinServers && len(after) < len(before) {
			return &hold{guard: GuardMinServers, reason: fmt.Sprintf("service %s would go from %d to %d instances, below min_servers %d", name, len(before), len(after), g.MinServers)}
		}
		removed := 0
		for id := range before {
			if !after[id] {
				removed++
			}
		}
		templateRemoved += removed
		if g.MaxRemovedFraction > 0 && removed > 0 && float64(removed) > g.MaxRemovedFraction*float64(len(before)) && worst == nil {
			worst = &hold{guard: GuardRemoved, reason: fmt.Sprintf("service %s would lose %d of %d instances at once (more than %.0f%%)", name, removed, len(before), 100*g.MaxRemovedFraction)}
		}
	}
	if worst == nil && g.MassExpiryFraction > 0 && templateRemoved > 0 {
		lost, before := fleetRemoved(applied, snap)
		if before > 0 && float64(lost) > g.MassExpiryFraction*float64(before) {
			worst = &hold{guard: GuardMassExpiry, reason: fmt.Sprintf("%d of %d instances in the whole registry vanished at once (more than %.0f%%): more likely a partition than a fleet death", lost, before, 100*g.MassExpiryFraction)}
		}
	}
	if worst == nil {
		return nil
	}
	d := g.Hold
	if d == 0 {
		d = 60 * time.Second
	}
	if since.IsZero() {
		since = time.Now()
	}
	worst.until = since.Add(d)
	if !time.Now().Before(worst.until) {
		return nil // held long enough: the removal is real
	}
	return worst
}

func instanceIDs(sv *schema.Service) map[string]bool {
	out := map[string]bool{}
	if sv != nil {
		for _, in := range sv.Instances {
			out[in.ID] = true
		}
	}
	return out
}

// fleetRemoved counts the instances of every service in applied that are
// gone from snap, and all instances in applied.
func fleetRemoved(applied, snap *schema.Snapshot) (lost, before int) {
	for _, name := range applied.ServiceNames() {
		old := applied.Service(name)
		before += len(old.Instances)
		cur := snap.Service(name)
		if cur == old {
			continue // shared: unchanged
		}
		now := instanceIDs(cur)
		for _, in := range old.Instances {
			if !now[in.ID] {
				lost++
			}
		}
	}
	return lost, before
}
