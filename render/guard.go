package render

import (
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/rewire/rewire/registry/schema"
)

// Guards protect a destination from removals that are more likely a fault
// (a partition, a mass lease expiry, a wiped or restored etcd, an
// operator's slip) than the truth.
//
// A guard never freezes the whole file: while it holds, the template is
// rendered from the new snapshot with the held instances put back as the
// file last showed them, so additions, health changes of the remaining
// instances and every other change still go out. What is held is only
// the removal.
//
// The guards compare every service the file reflects (what the applied
// render read) and every service the new render read, so a service that
// vanished entirely, which a template ranging over `services` no longer
// reads, counts as all its instances removed. The fraction guards judge
// removals against a baseline, the state the file reflected up to Hold
// ago, so removals that arrive in several renders (leases expiring a
// moment apart) add up.
type Guards struct {
	// MinServers: a change that leaves a service with fewer registered
	// instances than this, and fewer than the file has now, keeps the
	// missing instances for as long as that is so. 0: off.
	MinServers int `yaml:"min_servers"`
	// MaxRemovedFraction: a change that leaves a service with more than
	// this fraction of its baseline instances removed keeps them for Hold,
	// then lets the removal through. 0: off.
	MaxRemovedFraction float64 `yaml:"max_removed_fraction"`
	// MassExpiryFraction: when more than this fraction of every instance
	// in the registry (all services, not only the template's) vanished
	// since the baseline, the template's removed instances are kept for
	// Hold: many leases lost at once is more likely a partition than a
	// fleet death. 0: off.
	MassExpiryFraction float64 `yaml:"mass_expiry_fraction"`
	// Hold bounds how long the fraction guards keep removed instances, and
	// is the window over which removals add up; default 60s.
	Hold time.Duration `yaml:"hold"`
}

// DefaultGuards are the guards of a template whose config file does not
// set them (templater.yaml; a Guards value built in code is off unless
// set). They are self-preservation on, as in Eureka and Envoy: a service
// losing more than half its instances at once, or a registry losing
// more than 30% of all instances at once, keeps the vanished servers for
// a minute. If the loss is real, the file shows it a minute late; if it
// is a partition, an etcd outage or a wiped store, traffic keeps flowing
// to the instances that are still there. Set a field to 0 to turn it
// off.
func DefaultGuards() Guards {
	return Guards{MaxRemovedFraction: 0.5, MassExpiryFraction: 0.3, Hold: defaultHold}
}

const defaultHold = 60 * time.Second

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

func (g Guards) off() bool {
	return g.MinServers == 0 && g.MaxRemovedFraction == 0 && g.MassExpiryFraction == 0
}

func (g Guards) hold() time.Duration {
	if g.Hold == 0 {
		return defaultHold
	}
	return g.Hold
}

// Guard kinds, as in the templater_guard_trips_total metric.
const (
	GuardMinServers = "min_servers"
	GuardRemoved    = "max_removed_fraction"
	GuardMassExpiry = "mass_expiry"
	GuardPanic      = "panic"
)

// hold is a guard's decision to keep instances the new snapshot lacks.
type hold struct {
	guard  string
	reason string
	until  time.Time // zero: while the condition lasts
	// keep are the held services with the instances the file showed put
	// back in.
	keep []*schema.Service
}

// guardInput is what the guards compare.
type guardInput struct {
	applied  *schema.Snapshot // what the file reflects now
	baseline *baseline        // what it showed over the current window (at most Hold)
	snap     *schema.Snapshot // the new snapshot
	names    []string         // the services the file and the new render read
	since    time.Time        // when the current hold began; zero if none
	now      time.Time
}

// evaluate decides which removals from in.applied to in.snap to hold.
// expired reports that a time-bounded guard would hold but its time is
// up: the removal is real, and the baseline moves on.
func (g Guards) evaluate(in guardInput) (h *hold, expired bool) {
	if in.applied == nil || g.off() {
		return nil, false
	}
	if in.baseline == nil {
		in.baseline = newBaseline(in.applied)
	}
	bounded := in.since.IsZero() || in.now.Before(in.since.Add(g.hold()))
	var reasons [3]string // by priority: min_servers, fraction, mass expiry
	keep := map[string]bool{}
	templateRemoved := 0
	for _, name := range in.names {
		cur, after := in.applied.Service(name), in.snap.Service(name)
		if g.MinServers > 0 && count(after) < g.MinServers && count(after) < count(cur) {
			keep[name] = true
			if reasons[0] == "" {
				reasons[0] = fmt.Sprintf("service %s would go from %d to %d instances, below min_servers %d", name, count(cur), count(after), g.MinServers)
			}
			continue
		}
		// Judged against everything the file showed over the window (the
		// baseline and now), so removals in several renders add up.
		removed, of := worstRemoval(in.baseline.service(name), cur, after)
		templateRemoved += removed
		if g.MaxRemovedFraction > 0 && removed > 0 && float64(removed) > g.MaxRemovedFraction*float64(of) {
			if !bounded {
				expired = true
				continue
			}
			keep[name] = true
			if reasons[1] == "" {
				reasons[1] = fmt.Sprintf("service %s would lose %d of %d instances within %s (more than %.0f%%)", name, removed, of, g.hold(), 100*g.MaxRemovedFraction)
			}
		}
	}
	if g.MassExpiryFraction > 0 && templateRemoved > 0 {
		lost, before := fleetRemoved(in.baseline, in.applied, in.snap)
		if before > 0 && float64(lost) > g.MassExpiryFraction*float64(before) {
			if bounded {
				for _, name := range in.names {
					keep[name] = true
				}
				reasons[2] = fmt.Sprintf("%d of %d instances in the whole registry vanished within %s (more than %.0f%%): more likely a partition or a lost etcd than a fleet death", lost, before, g.hold(), 100*g.MassExpiryFraction)
			} else {
				expired = true
			}
		}
	}
	h = &hold{}
	for _, name := range slices.Sorted(maps.Keys(keep)) {
		if sv := restore(in.applied.Service(name), in.snap.Service(name)); sv != nil {
			h.keep = append(h.keep, sv)
		}
	}
	if len(h.keep) == 0 {
		return nil, expired // nothing the file shows would go
	}
	for i, guard := range []string{GuardMinServers, GuardRemoved, GuardMassExpiry} {
		if reasons[i] != "" {
			h.guard, h.reason = guard, reasons[i]
			break
		}
	}
	if h.guard != GuardMinServers {
		since := in.since
		if since.IsZero() {
			since = in.now
		}
		h.until = since.Add(g.hold())
	}
	return h, expired
}

func count(sv *schema.Service) int {
	if sv == nil {
		return 0
	}
	return len(sv.Instances)
}

// missing counts the instances of before that after lacks. Both are
// sorted by ID, so this is one merge walk without allocations.
func missing(before, after *schema.Service) int {
	if before == nil || before == after {
		return 0
	}
	if after == nil {
		return len(before.Instances)
	}
	n, i, j := 0, 0, 0
	b, a := before.Instances, after.Instances
	for i < len(b) {
		switch {
		case j < len(a) && a[j].ID == b[i].ID: // the usual case, and cheap: versions of a record share their ID
			i++
			j++
		case j < len(a) && a[j].ID < b[i].ID:
			j++
		default:
			n++
			i++
		}
	}
	return n
}

// worstRemoval returns how many of the instances in base or cur (what
// the file showed over the window) after lacks, and of how many. The
// union counts a service registered after the baseline was taken, and
// does not count instances added since as removed from a smaller base.
func worstRemoval(base baseIDs, cur, after *schema.Service) (removed, of int) {
	if len(base.gone) == 0 && (base.sv == cur || base.sv == nil) {
		return missing(cur, after), count(cur)
	}
	w := idWalk{lists: [2][]schema.Instance{instances(base.sv), instances(cur)}, gone: base.gone}
	w.each(after, func(_ string, lacked bool) {
		of++
		if lacked {
			removed++
		}
	})
	return removed, of
}

// restore returns after with the instances of cur it lacks put back, in
// ID order; nil when it lacks none.
func restore(cur, after *schema.Service) *schema.Service {
	if missing(cur, after) == 0 {
		return nil
	}
	sv := &schema.Service{Name: cur.Name, Maintenance: cur.Maintenance, Expect: cur.Expect}
	var a []schema.Instance
	if after != nil {
		a = after.Instances
		sv.Maintenance, sv.Expect = after.Maintenance, after.Expect
	}
	out := make([]schema.Instance, 0, len(cur.Instances)+len(a))
	i, j := 0, 0
	for i < len(cur.Instances) || j < len(a) {
		switch {
		case j == len(a) || (i < len(cur.Instances) && cur.Instances[i].ID < a[j].ID):
			out = append(out, cur.Instances[i])
			i++
		case i == len(cur.Instances) || a[j].ID < cur.Instances[i].ID:
			out = append(out, a[j])
			j++
		default: // in both: the new record wins
			out = append(out, a[j])
			i++
			j++
		}
	}
	sv.Instances = out
	return sv
}

// fleetRemoved counts the instances of every service that the file
// showed over the window (baseline or applied) and that are gone from
// snap, and all of those instances.
func fleetRemoved(base *baseline, applied, snap *schema.Snapshot) (lost, before int) {
	names := applied.ServiceNames()
	if base.snap != applied || len(base.gone) > 0 {
		names = unionSorted(base.names(), names)
	}
	for _, name := range names {
		r, n := worstRemoval(base.service(name), applied.Service(name), snap.Service(name))
		lost += r
		before += n
	}
	return lost, before
}
