package schema

import (
	"maps"
	"slices"
	"strings"
	"sync/atomic"
)

// lastVersion is the last number given to a record's state by any Index
// of the process: numbers stay unique when a reader replaces its Index
// (after a resync), so that a renderer's cache never mistakes a record
// of the new Index for one of the old.
var lastVersion atomic.Uint64

// Versions returns, when list is the Instances of one of s's services
// (the same array, whole), a number for each of its records: two records
// with the same number, from any Snapshots of the process, hold the same
// values, Maintenance included. A record gets a new number when it is put
// with other values or its Maintenance changes, so a renderer can tell
// what changed with one integer compare per record instead of
// Instance.Same. It returns nil for any other list (a filtered copy, a
// part, the Instances of a Service that no Index built). The slice is
// shared: do not modify it.
func (s *Snapshot) Versions(list []Instance) []uint64 {
	if len(list) == 0 {
		return nil
	}
	// The key keeps the array alive: no other array can take its address
	// while the entry exists.
	if v := s.vers[&list[0]]; len(v) == len(list) {
		return v
	}
	return nil
}

// samePut reports whether a record just put holds the same values as the
// published one it replaces; Maintenance, which a put does not carry, is
// not compared.
func samePut(put, published *Instance) bool {
	in := *put
	in.Maintenance = published.Maintenance
	return in.Same(published)
}

// merge builds a service's instances from its previous ones and the
// records put or deleted since, both in ID order, with Maintenance set
// and each record's number (see Snapshot.Versions).
type merge struct {
	sv    *Service // the new service; its Maintenance is set
	maint map[string]Maintenance
	out   []Instance
	vers  []uint64
	// tagsKept: the union of the tags is the previous service's. It is
	// while no record was deleted or changed its tags, and new records
	// brought no new tag: on a health change, a service of 10,000
	// instances then needs no walk over every instance's tags.
	tagsKept bool
}

// run merges prev (may be nil; prevVers its numbers, may be nil) with pend.
func (m *merge) run(prev *Service, prevVers []uint64, pend map[string]pendingInstance) {
	var old []Instance
	if prev != nil {
		old = prev.Instances
		m.tagsKept = prev.tagsSet
	}
	m.out = make([]Instance, 0, len(old)+len(pend))
	m.vers = make([]uint64, 0, cap(m.out))
	ver := func(i int) uint64 {
		if prevVers == nil {
			return 0
		}
		return prevVers[i]
	}
	i := 0
	for _, id := range slices.Sorted(maps.Keys(pend)) {
		k, found := slices.BinarySearchFunc(old[i:], id, func(in Instance, id string) int { return strings.Compare(in.ID, id) })
		m.keep(old[i:i+k], prevVers, i)
		i += k
		p := pend[id]
		switch {
		case found && p.deleted:
			m.tagsKept = false
			i++
		case found && samePut(&p.in, &old[i]):
			// Put again as it was (a registrar that registers again):
			// keep the published record and its number.
			m.add(old[i], ver(i))
			i++
		case found:
			m.tagsKept = m.tagsKept && slices.Equal(p.in.Tags, old[i].Tags)
			m.add(p.in, 0)
			i++
		case !p.deleted:
			m.tagsKept = m.tagsKept && knownTags(p.in.Tags, prev.tags)
			m.add(p.in, 0)
		}
	}
	m.keep(old[i:], prevVers, i)
}

// keep appends the unchanged records run, which starts at index at of the
// previous service (prevVers: its numbers, may be nil): in one copy, since
// in a service of 10,000 instances nearly all are unchanged. Then only
// the records whose Maintenance changed get a new number.
func (m *merge) keep(run []Instance, prevVers []uint64, at int) {
	if len(run) == 0 {
		return
	}
	n := len(m.out)
	m.out = append(m.out, run...)
	if prevVers != nil {
		m.vers = append(m.vers, prevVers[at:at+len(run)]...)
	} else {
		m.vers = append(m.vers, make([]uint64, len(run))...)
	}
	all := m.sv.Maintenance != nil
	for k := n; k < len(m.out); k++ {
		in := &m.out[k]
		maint := all
		if !all && len(m.maint) > 0 {
			_, maint = m.maint[in.ID]
		}
		if m.vers[k] == 0 || maint != in.Maintenance {
			in.Maintenance, m.vers[k] = maint, lastVersion.Add(1)
		}
	}
}

// add appends in; ver is its number in the previous snapshot (0: none),
// kept unless its Maintenance changes.
func (m *merge) add(in Instance, ver uint64) {
	_, instMaint := m.maint[in.ID]
	maint := m.sv.Maintenance != nil || instMaint
	if ver == 0 || maint != in.Maintenance {
		ver = lastVersion.Add(1)
	}
	in.Maintenance = maint
	m.out = append(m.out, in)
	m.vers = append(m.vers, ver)
}

// knownTags reports whether every tag is in union (sorted).
func knownTags(tags, union []string) bool {
	for _, t := range tags {
		if _, ok := slices.BinarySearch(union, t); !ok {
			return false
		}
	}
	return true
}
