package render

import (
	"fmt"
	"maps"
	"reflect"
	"strings"
	"sync"

	"github.com/rewire/rewire/registry/schema"
)

// blockCache keeps the output of cachedTemplate blocks between renders of
// one Target, with what each block read. An entry is reused while nothing
// it read changed, so the cache is exact for deterministic blocks (and an
// entry from a render that failed later is as good as any). Entries not
// used by a complete render are dropped after it; a block nested in a
// reused block counts as used, since the reused output contains it.
type blockCache struct {
	// mu guards the fields below and the entries' gen, in and parent.
	mu      sync.Mutex
	entries map[blockKey]*blockEntry
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
	// parent is the block this one last ran in (nil at top level): while
	// the parent is reused, so is this one's output, inside the parent's.
	parent *blockEntry
	// in is the instance the block ran with, for an instance dot: the
	// entry is reused only for the same record. It points into the
	// snapshot of the render that last used the entry, or of its parent.
	in *schema.Instance
}

func newBlockCache() *blockCache { return &blockCache{entries: map[blockKey]*blockEntry{}} }

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
	maps.DeleteFunc(c.entries, func(_ blockKey, e *blockEntry) bool { return !c.usedLocked(e) })
}

// usedLocked reports whether e, or a block it is nested in, was used by
// the current render. The walk is bounded: blocks whose nesting changed
// between renders could, in principle, name each other as parents.
func (c *blockCache) usedLocked(e *blockEntry) bool {
	for depth := 0; e != nil && depth < maxNesting; e, depth = e.parent, depth+1 {
		if e.gen == c.gen {
			return true
		}
	}
	return false
}

// maxNesting bounds the parent walk; templates nest cached blocks a few
// levels deep at most.
const maxNesting = 32

// reuse returns the entry for k if it may be used now: nothing it read
// changed in snap and, for an instance block, in is the same record. It
// then marks it used, nested in parent, and pointing at in.
func (c *blockCache) reuse(k blockKey, snap *schema.Snapshot, in *schema.Instance, parent *blockEntry) (*blockEntry, int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e := c.entries[k]
	if e == nil {
		return nil, 0
	}
	if (in != nil && !e.in.Same(in)) || e.deps.Changed(snap) {
		return nil, len(e.out)
	}
	e.gen, e.parent, e.in = c.gen, parent, in // in: the current snapshot's copy, so older ones can be freed
	return e, 0
}

// put records e as the entry for k, used by the current render.
func (c *blockCache) put(k blockKey, e *blockEntry) {
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
	for dot.IsValid() && dot.Kind() == reflect.Interface && !dot.IsNil() {
		dot = dot.Elem()
	}
	switch {
	case !dot.IsValid() || (dot.Kind() == reflect.Interface || dot.Kind() == reflect.Pointer) && dot.IsNil():
		return "", fmt.Errorf("cachedTemplate %q: the key is nil; want a string or an instance", name)
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
	case dot.Type() == reflect.TypeFor[*schema.Instance]():
		in = dot.Interface().(*schema.Instance)
		k.key, k.id, k.instance = in.Service, in.ID, true
	default:
		return "", fmt.Errorf("cachedTemplate %q: the key must be a string or an instance, not %s", name, dot.Type())
	}
	size := 0
	if st.cache != nil {
		var e *blockEntry
		if e, size = st.cache.reuse(k, st.snap, in, st.block); e != nil {
			st.deps.merge(e.deps)
			return e.out, nil
		}
	}
	outer, outerBlock := st.deps, st.block
	entry := &blockEntry{parent: outerBlock, in: in}
	st.deps, st.block = newDeps(), entry
	var b strings.Builder
	b.Grow(size + size/16) // the new output is usually about as long as the last
	var data any = dot.Interface()
	if in != nil {
		data = *in // an instance block's dot is the record, whether given by value or pointer
	}
	err := st.tmpl.ExecuteTemplate(&b, name, data)
	block := st.deps
	st.deps, st.block = outer, outerBlock
	if err != nil {
		return "", err
	}
	outer.merge(block)
	if block.empty() {
		block = noDeps // most instance blocks read nothing: share one
	}
	if st.cache != nil {
		entry.deps, entry.out = block, b.String()
		st.cache.put(k, entry)
	}
	return b.String(), nil
}

// cachedRange is {{ range LIST }}{{ cachedTemplate NAME . }}{{ end }} in
// one call: the loop runs in Go, not through text/template's evaluator,
// which costs a reflective call, a pipeline and a few allocations per
// element. For a service of 10,000 instances where one changed, that
// overhead was most of the render. LIST is a slice or array of strings or
// instances; each element is the KEY of cachedTemplate.
func (st *execState) cachedRange(name string, list reflect.Value) (string, error) {
	for list.IsValid() && (list.Kind() == reflect.Interface || list.Kind() == reflect.Pointer) && !list.IsNil() {
		list = list.Elem()
	}
	if !list.IsValid() || (list.Kind() != reflect.Slice && list.Kind() != reflect.Array) {
		return "", fmt.Errorf("cachedRange %q: want a list of strings or instances, not %v", name, list.Kind())
	}
	var b strings.Builder
	for i := range list.Len() {
		if i%256 == 0 {
			if err := st.budget.check(); err != nil {
				return "", err
			}
		}
		out, err := st.cached(name, list.Index(i))
		if err != nil {
			return "", err
		}
		if err := st.budget.allows(int64(b.Len() + len(out))); err != nil {
			return "", err
		}
		b.WriteString(out)
	}
	return b.String(), nil
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
