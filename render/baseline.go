package render

import (
	"maps"
	"slices"
	"strings"

	"github.com/rewire/rewire/registry/schema"
)

// baseline is every instance the file showed over the guards' window: the
// instances of snap, the snapshot it was last brought up to, plus gone,
// by service the sorted IDs of the instances shown since the window
// began that snap lacks.
//
// snap is the snapshot the file reflected when the baseline last moved,
// normally the Target's applied one, so the baseline costs almost no
// memory of its own. Keeping the earlier snapshot instead, as the
// baseline once did, kept a second copy of the records of every service
// that changed within the window: a health flip copies its service's
// records, so at 10,000 instances that was 2.7 MB more live heap, and
// twice that in resident memory under the collector's default headroom.
type baseline struct {
	snap *schema.Snapshot
	gone map[string][]string
}

// baseIDs is the baseline of one service: the instances of sv and the
// IDs in gone, which sv lacks.
type baseIDs struct {
	sv   *schema.Service
	gone []string
}

func newBaseline(snap *schema.Snapshot) *baseline { return &baseline{snap: snap} }

func (b *baseline) service(name string) baseIDs {
	return baseIDs{sv: b.snap.Service(name), gone: b.gone[name]}
}

// names returns the services the baseline has instances or IDs of, sorted.
func (b *baseline) names() []string {
	names := b.snap.ServiceNames()
	if len(b.gone) > 0 {
		names = unionSorted(names, slices.Collect(maps.Keys(b.gone)))
	}
	return names
}

// add returns the baseline with every instance of snap added: the
// instances of its snapshot that snap lacks move to gone.
func (b *baseline) add(snap *schema.Snapshot) *baseline {
	if snap == b.snap {
		return b
	}
	out := &baseline{snap: snap}
	for _, name := range b.names() {
		prev, cur, gone := b.snap.Service(name), snap.Service(name), b.gone[name]
		if prev != cur {
			gone = lacking(prev, gone, cur)
		}
		if len(gone) > 0 {
			if out.gone == nil {
				out.gone = map[string][]string{}
			}
			out.gone[name] = gone
		}
	}
	return out
}

// lacking returns the IDs of the instances of sv and of gone (sorted,
// none of them in sv) that after lacks, sorted; gone itself when after
// lacks none of sv's and all of gone's.
func lacking(sv *schema.Service, gone []string, after *schema.Service) []string {
	if missing(sv, after) == 0 && missingIDs(gone, after) == len(gone) {
		return gone
	}
	var out []string
	w := idWalk{lists: [2][]schema.Instance{instances(sv)}, gone: gone}
	w.each(after, func(id string, lacked bool) {
		if lacked {
			out = append(out, id)
		}
	})
	return out
}

// missingIDs counts the IDs (sorted) that after lacks.
func missingIDs(ids []string, after *schema.Service) int {
	n := 0
	w := idWalk{gone: ids}
	w.each(after, func(_ string, lacked bool) {
		if lacked {
			n++
		}
	})
	return n
}

func instances(sv *schema.Service) []schema.Instance {
	if sv == nil {
		return nil
	}
	return sv.Instances
}

// idWalk walks the sorted union of the IDs of up to two instance lists
// (sorted by ID) and a sorted ID list, each ID once, without allocating.
type idWalk struct {
	lists [2][]schema.Instance
	gone  []string
	at    [3]int
}

func (w *idWalk) next() (string, bool) {
	id, ok := "", false
	for l, list := range w.lists {
		if i := w.at[l]; i < len(list) && (!ok || strings.Compare(list[i].ID, id) < 0) {
			id, ok = list[i].ID, true
		}
	}
	if i := w.at[2]; i < len(w.gone) && (!ok || w.gone[i] < id) {
		id, ok = w.gone[i], true
	}
	if !ok {
		return "", false
	}
	for l, list := range w.lists {
		if i := w.at[l]; i < len(list) && list[i].ID == id {
			w.at[l]++
		}
	}
	if i := w.at[2]; i < len(w.gone) && w.gone[i] == id {
		w.at[2]++
	}
	return id, true
}

// each calls f with every ID of the walk, in order, and whether after
// (sorted by ID) lacks it.
func (w *idWalk) each(after *schema.Service, f func(id string, lacked bool)) {
	a, k := instances(after), 0
	for id, ok := w.next(); ok; id, ok = w.next() {
		for k < len(a) && a[k].ID < id {
			k++
		}
		f(id, k == len(a) || a[k].ID != id)
	}
}
