package lab

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"time"

	"github.com/rewire/rewire/registry/schema"
)

// routable reports whether HAProxy may send in new requests.
func (in *Instance) routable() bool { return !in.Critical && !in.Draining && in.Weight > 0 }

// Routable counts the instances that take traffic.
func (l *Lab) Routable() int {
	n := 0
	for _, in := range l.Model {
		if in.routable() {
			n++
		}
	}
	return n
}

// Mix is how many changes of each kind a scenario makes.
type Mix struct{ Flips, Drains, Adds, Removes, Weights int }

// Total is the number of changes (a drain and its undrain count as one).
func (m Mix) Total() int { return m.Flips + m.Drains + m.Adds + m.Removes + m.Weights }

// HitlessMix is the change mix the hitless test and benchmark run: every
// kind of server change the templater may apply live.
var HitlessMix = Mix{Flips: 100, Drains: 30, Adds: 30, Removes: 30, Weights: 20}

// Run makes the changes of mix in a random interleaving (seeded), keeping
// at least minRoutable instances routable, and waits after every registry
// write until haproxy's live state reflects it (each within timeout).
// It returns the number of registry writes.
func (l *Lab) Run(ctx context.Context, mix Mix, seed uint64, minRoutable int, timeout time.Duration) (int, error) {
	rng := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	var ops []string
	for k, n := range map[string]int{"flip": mix.Flips, "drain": mix.Drains, "add": mix.Adds, "remove": mix.Removes, "weight": mix.Weights} {
		for range n {
			ops = append(ops, k)
		}
	}
	slices.Sort(ops) // map order is random: sort, then shuffle with the seed
	rng.Shuffle(len(ops), func(i, j int) { ops[i], ops[j] = ops[j], ops[i] })
	writes := 0
	wait := func() error {
		writes++
		if _, err := l.WaitReflected(ctx, timeout); err != nil {
			return fmt.Errorf("after write %d: %w", writes, err)
		}
		return nil
	}
	deferred := 0 // changes put back in a row, because none could be made
	for len(ops) > 0 {
		op := ops[0]
		ops = ops[1:]
		ids := make([]string, 0, len(l.Model))
		for id := range l.Model {
			ids = append(ids, id)
		}
		slices.Sort(ids)
		rng.Shuffle(len(ids), func(i, j int) { ids[i], ids[j] = ids[j], ids[i] })
		// pick returns the first instance (in random order) ok accepts.
		pick := func(ok func(*Instance) bool) *Instance {
			for _, id := range ids {
				if ok(l.Model[id]) {
					return l.Model[id]
				}
			}
			return nil
		}
		spare := l.Routable() > minRoutable // one routable instance may stop routing
		var in *Instance
		var err error
		switch op {
		case "flip":
			// Bring a critical instance back whenever routable ones run
			// short or several are down, and half the time otherwise.
			critical := len(l.Model) - l.Routable()
			if critical > 0 && (l.Routable() <= minRoutable+1 || critical >= 2 || rng.IntN(2) == 0) {
				in = pick(func(in *Instance) bool { return in.Critical })
			} else {
				in = pick(func(in *Instance) bool { return !in.routable() || spare })
			}
			if in != nil {
				if err = l.Update(ctx, in.ID, func(in *Instance) { in.Critical = !in.Critical }); err == nil {
					err = wait()
				}
			}
		case "drain":
			if in = pick(func(in *Instance) bool { return in.routable() && spare }); in != nil {
				for _, d := range []bool{true, false} {
					if err == nil {
						if err = l.Update(ctx, in.ID, func(in *Instance) { in.Draining = d }); err == nil {
							err = wait()
						}
					}
				}
			}
		case "add":
			if in, err = l.Add(ctx); err == nil {
				err = wait()
			}
		case "remove":
			if len(l.Model) > minRoutable+1 {
				if in = pick(func(in *Instance) bool { return !in.routable() || spare }); in != nil {
					if err = l.Remove(ctx, in.ID); err == nil {
						err = wait()
					}
				}
			}
		case "weight":
			in = pick(func(*Instance) bool { return true })
			w := in.Weight
			for w == in.Weight {
				w = 1 + rng.IntN(schema.MaxWeight)
			}
			if err = l.Update(ctx, in.ID, func(in *Instance) { in.Weight = w }); err == nil {
				err = wait()
			}
		}
		if err != nil {
			return writes, fmt.Errorf("%s: %w", op, err)
		}
		if in != nil {
			deferred = 0
			continue
		}
		// The change cannot be made now without leaving too few routable
		// instances: make it later.
		if deferred++; deferred > len(ops)+1 {
			return writes, fmt.Errorf("no remaining change keeps %d instances routable", minRoutable)
		}
		ops = append(ops, op)
	}
	return writes, nil
}
