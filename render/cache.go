package render

import (
	"fmt"
	"maps"
	"reflect"
	"slices"
	"strings"
	"sync"

	"github.com/rewire/rewire/registry/schema"
)

// blockCache keeps the output of cachedTemplate blocks between renders of
// one Target, with what each block read. An entry is reused while nothing
// it read changed, so the cache is exact for deterministic blocks (and an
// entry from a render that failed later is as good as any). Entries not
// used by a complete render are dropped after it.
type blockCache struct {
	// mu guards the fields below.
	mu      sync.Mutex
	entries map[blockKey]blockEntry
	gen     uint64 // the current render's number
}

// blockKey names a cached block: the template and its dot, a string or
// one instance (service and ID).
type blockKey struct {
	name     string
	key, id  string
	instance bool
}

type blockEntry struct {
	deps *Deps
	out  string
	gen  uint64 // the last render that used it
	// in is the instance the block ran with, for an instance dot: the
	// entry is reused only for the same record. It points into the
	// snapshot of the render that last used the entry, never older.
	in *schema.Instance
}

func newBlockCache() *blockCache { return &blockCache{entries: map[blockKey]blockEntry{}} }

func (c *blockCache) begin() {
	c.mu.Lock()
	c.gen++
	c.mu.Unlock()
}

// end drops, after a complete render (ok), the entries it did not use.
func (c *blockCache) end(ok bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !ok {
		return
	}
	maps.DeleteFunc(c.entries, func(_ blockKey, e blockEntry) bool { return e.gen != c.gen })
}

func (c *blockCache) get(k blockKey) (blockEntry, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.entries[k]
	return e, ok
}

// put records e as used by the current render.
func (c *blockCache) put(k blockKey, e blockEntry) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e.gen = c.gen
	c.entries[k] = e
}

// cached executes the named template with dot (a string, or an instance)
// as its dot, or reuses its output from the previous render when nothing
// it read changed, and for an instance, when it is the same record.
//
// dot comes as a reflect.Value so that an instance ranged over from a
// snapshot is reached in place: boxing it in an interface would copy the
// whole record for every line of every render.
func (st *execState) cached(name string, dot reflect.Value) (string, error) {
	k := blockKey{name: name}
	var in *schema.Instance
	for dot.Kind() == reflect.Interface && !dot.IsNil() {
		dot = dot.Elem()
	}
	switch {
	case dot.Kind() == reflect.String:
		k.key = dot.String()
	case dot.Type() == reflect.TypeFor[schema.Instance]():
		if dot.CanAddr() {
			in = dot.Addr().Interface().(*schema.Instance)
		} else {
			v := dot.Interface().(schema.Instance)
			in = &v
		}
		k.key, k.id, k.instance = in.Service, in.ID, true
	case dot.Type() == reflect.TypeFor[*schema.Instance]() && !dot.IsNil():
		in = dot.Interface().(*schema.Instance)
		k.key, k.id, k.instance = in.Service, in.ID, true
	default:
		return "", fmt.Errorf("cachedTemplate %q: the key must be a string or an instance, not %s", name, dot.Type())
	}
	size := 0
	if st.cache != nil {
		e, ok := st.cache.get(k)
		if ok && (in == nil || sameRecord(e.in, in)) && !e.deps.Changed(st.snap) {
			st.deps.merge(e.deps)
			e.in = in // the current snapshot's copy: older ones can be freed
			st.cache.put(k, e)
			return e.out, nil
		}
		size = len(e.out) // the new output is usually about as long
	}
	outer := st.deps
	st.deps = newDeps()
	var b strings.Builder
	b.Grow(size + size/16)
	var data any = dot.Interface()
	if in != nil {
		data = *in
	}
	err := st.tmpl.ExecuteTemplate(&b, name, data)
	block := st.deps
	st.deps = outer
	if err != nil {
		return "", err
	}
	outer.merge(block)
	if block.empty() {
		block = noDeps // most instance blocks read nothing: share one
	}
	if st.cache != nil {
		st.cache.put(k, blockEntry{deps: block, out: b.String(), in: in})
	}
	return b.String(), nil
}

// sameRecord reports whether a and b hold the same values a template can
// print. Records of a snapshot share their slices and maps with their
// earlier versions while those are unchanged, so this is mostly pointer
// comparisons; it is exact either way.
func sameRecord(a, b *schema.Instance) bool {
	if a == nil || b == nil {
		return false
	}
	return a.V == b.V && a.Service == b.Service && a.ID == b.ID && a.Node == b.Node &&
		a.Address == b.Address && a.Port == b.Port && a.Weight == b.Weight &&
		a.Draining == b.Draining && a.Maintenance == b.Maintenance &&
		a.RegisteredAt.Equal(b.RegisteredAt) && a.RegisteredAt.Location() == b.RegisteredAt.Location() &&
		a.Health.Shallow == b.Health.Shallow && a.Health.Deep == b.Health.Deep &&
		a.Health.Since.Equal(b.Health.Since) && a.Health.Since.Location() == b.Health.Since.Location() &&
		slices.Equal(a.Tags, b.Tags) && slices.Equal(a.DependsOn, b.DependsOn) &&
		maps.Equal(a.Meta, b.Meta) && slices.Equal(a.Health.Checks, b.Health.Checks)
}

// merge adds what o read to d.
func (d *Deps) merge(o *Deps) {
	if d == nil || o == nil {
		return
	}
	for k, v := range o.services {
		set(&d.services, k, v)
	}
	if o.allServices != nil && d.allServices == nil {
		d.allServices = maps.Clone(o.allServices)
	}
	for k, v := range o.keys {
		set(&d.keys, k, v)
	}
	for k, v := range o.prefixes {
		set(&d.prefixes, k, v)
	}
	d.Panicked = append(d.Panicked, o.Panicked...)
}
