package render

import (
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/rewire/rewire/health"
	"github.com/rewire/rewire/registry/schema"
)

// TestBaselineMatchesModel drives a baseline through random snapshots
// (instances put, deleted and flipped in a few services, whole services
// gone, the window starting again) and checks it against a model that
// keeps, per service, the set of every instance ID shown since the window
// began: the IDs the baseline holds, worstRemoval against any later
// snapshot, and fleetRemoved. Some steps leave the baseline behind the
// snapshot the file reflects, as a hold does.
func TestBaselineMatchesModel(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 11))
	x := schema.NewIndex(benchKeys)
	live := map[string]bool{} // "svc/id" registered now
	svcs := []string{"a", "b", "c", "d"}
	step := func(rev int64) *schema.Snapshot {
		for range 1 + r.IntN(4) {
			svc, id := svcs[r.IntN(len(svcs))], fmt.Sprintf("i%02d", r.IntN(12))
			key := benchKeys.Instance(svc, id)
			switch n := r.IntN(10); {
			case n < 3 && live[svc+"/"+id]:
				x.Delete(key)
				delete(live, svc+"/"+id)
			case n == 3: // every instance of svc goes
				for k := range live {
					if k[:len(svc)+1] == svc+"/" {
						x.Delete(benchKeys.Instance(svc, k[len(svc)+1:]))
						delete(live, k)
					}
				}
			default:
				st := health.Passing
				if r.IntN(2) == 0 {
					st = health.Critical
				}
				if err := x.Put(key, benchRecord(t, svc, id, r.IntN(100), st)); err != nil {
					t.Fatal(err)
				}
				live[svc+"/"+id] = true
			}
		}
		return x.Snapshot(rev)
	}
	idsOf := func(sv *schema.Service) []string {
		var ids []string
		for _, in := range instances(sv) {
			ids = append(ids, in.ID)
		}
		return ids
	}
	snap := step(1)
	b := newBaseline(snap)
	model := map[string]map[string]bool{}
	shown := func(s *schema.Snapshot) {
		for _, name := range s.ServiceNames() {
			for _, id := range idsOf(s.Service(name)) {
				if model[name] == nil {
					model[name] = map[string]bool{}
				}
				model[name][id] = true
			}
		}
	}
	shown(snap)
	for rev := int64(2); rev < 2000; rev++ {
		after := step(rev)
		for _, name := range svcs {
			base, cur := b.service(name), snap.Service(name)
			union := maps.Clone(model[name])
			if union == nil {
				union = map[string]bool{}
			}
			for _, id := range idsOf(cur) {
				union[id] = true
			}
			wantRemoved := 0
			for id := range union {
				if !slices.Contains(idsOf(after.Service(name)), id) {
					wantRemoved++
				}
			}
			removed, of := worstRemoval(base, cur, after.Service(name))
			if removed != wantRemoved || of != len(union) {
				t.Fatalf("rev %d, service %s: worstRemoval = %d of %d, want %d of %d", rev, name, removed, of, wantRemoved, len(union))
			}
		}
		lost, before := fleetRemoved(b, snap, after)
		wantLost, wantBefore := 0, 0
		for _, name := range svcs {
			r, n := worstRemoval(b.service(name), snap.Service(name), after.Service(name))
			wantLost, wantBefore = wantLost+r, wantBefore+n
		}
		if lost != wantLost || before != wantBefore {
			t.Fatalf("rev %d: fleetRemoved = %d of %d, want %d of %d (the sum over every service)", rev, lost, before, wantLost, wantBefore)
		}

		snap = after
		switch n := r.IntN(25); {
		case n == 0: // the window starts again
			b, model = newBaseline(snap), map[string]map[string]bool{}
			shown(snap)
		case n < 5: // a hold, or a render skipped: the baseline stays behind
		default:
			b = b.add(snap)
			shown(snap)
		}
		for _, name := range svcs {
			base := b.service(name)
			got := idsOf(base.sv)
			for _, id := range base.gone {
				if slices.Contains(got, id) {
					t.Fatalf("rev %d, service %s: gone holds %s, which the snapshot has", rev, name, id)
				}
			}
			got = append(got, base.gone...)
			slices.Sort(got)
			if want := slices.Sorted(maps.Keys(model[name])); !slices.Equal(got, want) {
				t.Fatalf("rev %d, service %s: baseline holds %v, want %v", rev, name, got, want)
			}
		}
	}
}
