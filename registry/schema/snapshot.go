package schema

import (
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"sort"
	"strings"

	"github.com/rewire/rewire/health/status"
)

// Service is everything the registry knows about one service at one
// revision.
type Service struct {
	Name string
	// Instances are the valid registered instances, sorted by ID, with
	// Maintenance set from the maintenance keys.
	Instances []Instance
	// Maintenance is the service-wide maintenance entry, or nil.
	Maintenance *Maintenance
	// Expect is the operator's expected instance count; 0 when unset.
	Expect int

	// tags caches Tags for a Service built by an Index (tagsSet):
	// templates ask for every service's tags on every render.
	tags    []string
	tagsSet bool
}

// Routable returns the instances that may receive traffic.
func (s *Service) Routable() []Instance {
	if s == nil {
		return nil
	}
	var out []Instance
	for _, in := range s.Instances {
		if in.Routable() {
			out = append(out, in)
		}
	}
	return out
}

// Tags returns the union of the instances' tags, sorted. For a Service
// from a Snapshot the slice is shared: do not modify it.
func (s *Service) Tags() []string {
	if s.tagsSet {
		return s.tags
	}
	return s.unionTags()
}

func (s *Service) unionTags() []string {
	set := map[string]bool{}
	for _, in := range s.Instances {
		for _, t := range in.Tags {
			set[t] = true
		}
	}
	return slices.Sorted(maps.Keys(set))
}

// KV is one free-form key and its value.
type KV struct {
	Key   string
	Value string
}

// Snapshot is the registry at one etcd revision. It is immutable and safe
// for concurrent use.
type Snapshot struct {
	Rev      int64
	services map[string]*Service
	kv       map[string]string
	kvKeys   []string // sorted keys of kv
	// vers numbers the records of each service an Index built, by the
	// service's Instances array (&Instances[0]); see Versions. It is kept
	// apart from the Services so that those compare as before.
	vers map[*Instance][]uint64
}

// Service returns the named service, or nil when nothing is known of it.
func (s *Snapshot) Service(name string) *Service { return s.services[name] }

// ServiceNames returns the names of every service that has instances, a
// maintenance entry or an expected count, sorted.
func (s *Snapshot) ServiceNames() []string { return slices.Sorted(maps.Keys(s.services)) }

// Get returns the value of a free-form key.
func (s *Snapshot) Get(key string) (string, bool) {
	v, ok := s.kv[key]
	return v, ok
}

// List returns the free-form keys that start with prefix, sorted by key.
func (s *Snapshot) List(prefix string) []KV {
	i := sort.SearchStrings(s.kvKeys, prefix)
	var out []KV
	for ; i < len(s.kvKeys) && strings.HasPrefix(s.kvKeys[i], prefix); i++ {
		out = append(out, KV{s.kvKeys[i], s.kv[s.kvKeys[i]]})
	}
	return out
}

// Index is the mutable registry state a reader builds from etcd events. It
// produces Snapshots that share every unchanged Service with the previous
// one, so a change costs work proportional to the services it touched.
// An Index is not safe for concurrent use.
//
// The instances live only in the last Snapshot's services (one copy of each
// record, which never changes once published) plus the records put or
// deleted since then (pending); Snapshot merges the two.
type Index struct {
	keys    Keys
	pending map[string]map[string]pendingInstance // service → id → change since the last Snapshot
	lastPut map[string]Instance                   // service → the record put last since the last Snapshot
	maint   map[string]map[string]Maintenance
	expect  map[string]int
	kv      map[string]string

	dirty   map[string]bool
	kvDirty bool
	last    *Snapshot
}

// pendingInstance is a record put, or deleted, since the last Snapshot.
type pendingInstance struct {
	in      Instance
	deleted bool
}

// NewIndex returns an empty index for keys under k.
func NewIndex(k Keys) *Index {
	return &Index{
		keys:    k,
		pending: map[string]map[string]pendingInstance{},
		lastPut: map[string]Instance{},
		maint:   map[string]map[string]Maintenance{},
		expect:  map[string]int{},
		kv:      map[string]string{},
		dirty:   map[string]bool{},
		kvDirty: true,
	}
}

// InvalidError says why a key's value was skipped.
type InvalidError struct {
	Key string
	Err error
}

func (e *InvalidError) Error() string { return fmt.Sprintf("schema: skipping %s: %v", e.Key, e.Err) }
func (e *InvalidError) Unwrap() error { return e.Err }

// Put records key=value. An invalid record or operator key is removed from
// the index (as if deleted) and reported as *InvalidError: it never reaches
// a Snapshot.
func (x *Index) Put(key string, value []byte) error {
	kind, svc, id, err := x.keys.Parse(key)
	if err != nil {
		return &InvalidError{key, err}
	}
	switch kind {
	case KindOther:
		x.kv[key] = string(value)
		x.kvDirty = true
		return nil
	case KindInstance:
		in, err := DecodeInstance(value)
		if err == nil && (in.Service != svc || in.ID != id) {
			err = fmt.Errorf("record names %s/%s but is stored under %s/%s", in.Service, in.ID, svc, id)
		}
		if err != nil {
			x.Delete(key)
			return &InvalidError{key, err}
		}
		// Share values with the record's previous version and the record
		// put before it now, not at Snapshot: a first read of a large
		// registry would otherwise hold every record's own copies of them
		// until it ends.
		var prev, before *Instance
		if x.last != nil {
			if sv := x.last.services[svc]; sv != nil {
				if i, ok := slices.BinarySearchFunc(sv.Instances, id, func(in Instance, id string) int { return strings.Compare(in.ID, id) }); ok {
					prev = &sv.Instances[i]
				}
			}
		}
		if lp, ok := x.lastPut[svc]; ok {
			before = &lp
		}
		share(&in, prev, before)
		x.lastPut[svc] = in
		setIn(x.pending, svc, id, pendingInstance{in: in})
	case KindMaintenance:
		var m Maintenance
		if err := json.Unmarshal(value, &m); err != nil {
			// An unparsable maintenance value still means "in maintenance":
			// the operator's intent is clear from the key alone.
			m = Maintenance{Reason: "(unparsable maintenance value)"}
		}
		// Kept until deleted: copies, not pieces of the key.
		setIn(x.maint, strings.Clone(svc), strings.Clone(id), m)
	case KindExpect:
		var e Expect
		if err := json.Unmarshal(value, &e); err != nil || e.Instances < 0 {
			x.Delete(key)
			return &InvalidError{key, fmt.Errorf("want {\"instances\": N}, N >= 0")}
		}
		x.expect[strings.Clone(svc)] = e.Instances
	}
	x.dirty[svc] = true
	return nil
}

// Delete removes key.
func (x *Index) Delete(key string) {
	kind, svc, id, err := x.keys.Parse(key)
	if err != nil {
		return
	}
	switch kind {
	case KindOther:
		if _, ok := x.kv[key]; ok {
			delete(x.kv, key)
			x.kvDirty = true
		}
		return
	case KindInstance:
		setIn(x.pending, svc, id, pendingInstance{deleted: true})
	case KindMaintenance:
		deleteIn(x.maint, svc, id)
	case KindExpect:
		delete(x.expect, svc)
	}
	x.dirty[svc] = true
}

func setIn[V any](m map[string]map[string]V, svc, id string, v V) {
	if m[svc] == nil {
		m[svc] = map[string]V{}
	}
	m[svc][id] = v
}

func deleteIn[V any](m map[string]map[string]V, svc, id string) {
	delete(m[svc], id)
	if len(m[svc]) == 0 {
		delete(m, svc)
	}
}

// Snapshot returns the index as an immutable Snapshot at rev.
func (x *Index) Snapshot(rev int64) *Snapshot {
	s := &Snapshot{Rev: rev, services: map[string]*Service{}, vers: map[*Instance][]uint64{}}
	if x.last != nil {
		maps.Copy(s.services, x.last.services)
		s.vers = maps.Clone(x.last.vers)
		s.kv, s.kvKeys = x.last.kv, x.last.kvKeys
	}
	for svc := range x.dirty {
		if old := s.services[svc]; old != nil && len(old.Instances) > 0 {
			delete(s.vers, &old.Instances[0])
		}
		if sv, vers := x.buildService(svc); sv != nil {
			s.services[sv.Name] = sv // the key too: assigning replaces it
			if len(sv.Instances) > 0 {
				s.vers[&sv.Instances[0]] = vers
			}
		} else {
			delete(s.services, svc)
		}
	}
	clear(x.dirty)
	clear(x.lastPut)
	if x.kvDirty {
		s.kv = maps.Clone(x.kv)
		s.kvKeys = slices.Sorted(maps.Keys(s.kv))
		x.kvDirty = false
	}
	x.last = s
	return s
}

// buildService builds the named service from the last snapshot's and the
// changes since; it also returns the numbers of its instances.
func (x *Index) buildService(name string) (*Service, []uint64) {
	var prev *Service
	// name is a piece of the etcd key that changed: keep the previous
	// Service's name, or a copy, not the whole key.
	svName := ""
	if x.last != nil {
		if prev = x.last.services[name]; prev != nil {
			svName = prev.Name
		}
	}
	if svName == "" {
		svName = strings.Clone(name)
	}
	pend, maint, expect := x.pending[name], x.maint[name], x.expect[name]
	delete(x.pending, name)
	sv := &Service{Name: svName, Expect: expect}
	if m, ok := maint[""]; ok {
		sv.Maintenance = &m
	}
	var prevVers []uint64
	if prev != nil {
		prevVers = x.last.Versions(prev.Instances)
	}
	m := merge{sv: sv, maint: maint}
	m.run(prev, prevVers, pend)
	if len(m.out) == 0 {
		if sv.Maintenance == nil && len(maint) == 0 && expect == 0 {
			return nil, nil
		}
		return sv, nil
	}
	sv.Instances = slices.Clip(m.out) // an append by a reader must not write into a shared array
	if m.tagsKept {
		sv.tags = prev.tags
	} else {
		sv.tags = slices.Clip(sv.unionTags())
	}
	sv.tagsSet = true
	return sv, slices.Clip(m.vers)
}

// share makes a new record use the memory of equal values it has in common
// with refs (its previous version, the record put before it; nil ones are
// skipped) instead of its own copies: records of one service mostly share
// tags, meta and check names, and a record that changed mostly keeps its
// previous values. Records in a Snapshot are never modified, so sharing is
// safe. Statuses and kinds become the package constants.
func share(in *Instance, refs ...*Instance) {
	in.Health.Shallow, in.Health.Deep = canonStatus(in.Health.Shallow), canonStatus(in.Health.Deep)
	for k := range in.Health.Checks {
		c := &in.Health.Checks[k]
		c.Status = canonStatus(c.Status)
		switch c.Kind { // equal strings; the constants' bytes are static
		case status.Shallow:
			c.Kind = status.Shallow
		case status.Deep:
			c.Kind = status.Deep
		}
	}
	own := true // in.Health.Checks is still the record's own array
	for _, r := range refs {
		if r == nil {
			continue
		}
		if in.Service == r.Service {
			in.Service = r.Service
		}
		if in.ID == r.ID {
			in.ID = r.ID
		}
		if in.Node == r.Node {
			in.Node = r.Node
		}
		if in.Address == r.Address {
			in.Address = r.Address
		}
		if slices.Equal(in.Tags, r.Tags) {
			in.Tags = r.Tags
		}
		if slices.Equal(in.DependsOn, r.DependsOn) {
			in.DependsOn = r.DependsOn
		}
		if maps.Equal(in.Meta, r.Meta) {
			in.Meta = r.Meta
		}
		if own && slices.Equal(in.Health.Checks, r.Health.Checks) {
			in.Health.Checks, own = r.Health.Checks, false
		}
	}
	if !own {
		return
	}
	// The checks differ from every ref's: keep the record's own array (it
	// may be written: it is not published yet) with the refs' strings.
	for _, r := range refs {
		if r == nil {
			continue
		}
		for k := range min(len(in.Health.Checks), len(r.Health.Checks)) {
			if c, rc := &in.Health.Checks[k], r.Health.Checks[k]; c.Name == rc.Name {
				c.Name = rc.Name
				if c.Output == rc.Output {
					c.Output = rc.Output
				}
			}
		}
	}
}

// canonStatus returns the package constant equal to s, so that records do
// not each hold a copy of the same few words.
func canonStatus(s status.Status) status.Status {
	switch s {
	case status.Passing:
		return status.Passing
	case status.Warning:
		return status.Warning
	case status.Critical:
		return status.Critical
	}
	return s
}

// With returns a copy of s in which each given service replaces the one of
// the same name (or is added). Everything else is shared with s, which is
// left as it is. The templater's guards use it to keep instances that
// vanished while a removal is held; a Service passed here must be sorted
// by ID like the ones an Index builds.
func (s *Snapshot) With(services ...*Service) *Snapshot {
	out := &Snapshot{Rev: s.Rev, services: maps.Clone(s.services), kv: s.kv, kvKeys: s.kvKeys, vers: s.vers}
	if out.services == nil {
		out.services = map[string]*Service{}
	}
	for _, sv := range services {
		out.services[sv.Name] = sv
	}
	return out
}
