package schema

import (
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"sort"
	"strings"
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
type Index struct {
	keys      Keys
	instances map[string]map[string]Instance // service → id → record
	maint     map[string]map[string]Maintenance
	expect    map[string]int
	kv        map[string]string
	// order caches each service's instance ids, sorted, so that a change
	// to an existing instance does not sort them again; a service's entry
	// is dropped when an id is added or removed.
	order map[string][]string

	dirty   map[string]bool
	kvDirty bool
	last    *Snapshot
}

// NewIndex returns an empty index for keys under k.
func NewIndex(k Keys) *Index {
	return &Index{
		keys:      k,
		instances: map[string]map[string]Instance{},
		maint:     map[string]map[string]Maintenance{},
		expect:    map[string]int{},
		kv:        map[string]string{},
		order:     map[string][]string{},
		dirty:     map[string]bool{},
		kvDirty:   true,
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
		if _, ok := x.instances[svc][id]; !ok {
			delete(x.order, svc)
		}
		setIn(x.instances, svc, id, in)
	case KindMaintenance:
		var m Maintenance
		if err := json.Unmarshal(value, &m); err != nil {
			// An unparsable maintenance value still means "in maintenance":
			// the operator's intent is clear from the key alone.
			m = Maintenance{Reason: "(unparsable maintenance value)"}
		}
		setIn(x.maint, svc, id, m)
	case KindExpect:
		var e Expect
		if err := json.Unmarshal(value, &e); err != nil || e.Instances < 0 {
			x.Delete(key)
			return &InvalidError{key, fmt.Errorf("want {\"instances\": N}, N >= 0")}
		}
		x.expect[svc] = e.Instances
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
		deleteIn(x.instances, svc, id)
		delete(x.order, svc)
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
	s := &Snapshot{Rev: rev, services: map[string]*Service{}}
	if x.last != nil {
		maps.Copy(s.services, x.last.services)
		s.kv, s.kvKeys = x.last.kv, x.last.kvKeys
	}
	for svc := range x.dirty {
		if sv := x.buildService(svc); sv != nil {
			s.services[svc] = sv
		} else {
			delete(s.services, svc)
		}
	}
	clear(x.dirty)
	if x.kvDirty {
		s.kv = maps.Clone(x.kv)
		s.kvKeys = slices.Sorted(maps.Keys(s.kv))
		x.kvDirty = false
	}
	x.last = s
	return s
}

func (x *Index) buildService(name string) *Service {
	insts, maint, expect := x.instances[name], x.maint[name], x.expect[name]
	if len(insts) == 0 && len(maint) == 0 && expect == 0 {
		return nil
	}
	sv := &Service{Name: name, Expect: expect}
	if m, ok := maint[""]; ok {
		sv.Maintenance = &m
	}
	if len(insts) == 0 {
		return sv
	}
	ids, ok := x.order[name]
	if !ok {
		ids = slices.Sorted(maps.Keys(insts))
		x.order[name] = ids
	}
	sv.Instances = make([]Instance, 0, len(ids))
	for _, id := range ids {
		in := insts[id]
		_, instMaint := maint[id]
		in.Maintenance = sv.Maintenance != nil || instMaint
		sv.Instances = append(sv.Instances, in)
	}
	sv.tags, sv.tagsSet = slices.Clip(sv.unionTags()), true
	return sv
}
