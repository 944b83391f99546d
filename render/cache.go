package render

import (
	"fmt"
	"io"
	"maps"
	"reflect"
	"strings"
	"sync"
	"unsafe"

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
	// top holds the cachedRange calls made outside any cached block by the
	// last complete render, in call order.
	top []*rangeMemo
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
	// nested: a cached block ran nested in this one (guarded by mu). An
	// element of a cachedRange keeps its entry only then, or when it made
	// cachedRange calls itself.
	nested bool
	// ranges holds the cachedRange calls the block made when it ran, in
	// call order. Written only while the block runs, before the entry is
	// put: read-only once the entry is shared.
	ranges []*rangeMemo
}

func newBlockCache() *blockCache { return &blockCache{entries: map[blockKey]*blockEntry{}} }

// begin starts a render; it returns the top-level cachedRange calls of
// the last complete one.
func (c *blockCache) begin() []*rangeMemo {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.gen++
	return c.top
}

// end drops, after a complete render (ok), the entries it did not use,
// and keeps its top-level cachedRange calls (top) for the next one.
func (c *blockCache) end(ok bool, top []*rangeMemo) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !ok {
		return
	}
	c.top = top
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
// then marks it used, nested in parent, and pointing at in. Otherwise it
// returns the stale entry for k as old (nil if none): its cachedRange
// calls may still be reused by the block's new run.
func (c *blockCache) reuse(k blockKey, snap *schema.Snapshot, in *schema.Instance, parent *blockEntry) (e, old *blockEntry) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e = c.entries[k]
	if e == nil {
		return nil, nil
	}
	if (in != nil && !e.in.Same(in)) || e.deps.Changed(snap) {
		return nil, e
	}
	e.gen, e.parent, e.in = c.gen, parent, in // in: the current snapshot's copy, so older ones can be freed
	if parent != nil {
		parent.nested = true
	}
	return e, nil
}

// put records e as the entry for k, used by the current render.
func (c *blockCache) put(k blockKey, e *blockEntry) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e.gen = c.gen
	c.entries[k] = e
	if e.parent != nil {
		e.parent.nested = true
	}
}

// adopt marks the entries of reused cachedRange elements used by the
// current render, nested in parent.
func (c *blockCache) adopt(parent *blockEntry, es []*blockEntry) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, e := range es {
		e.gen, e.parent = c.gen, parent
	}
	if len(es) > 0 && parent != nil {
		parent.nested = true
	}
}

// cached executes the named template with dot (a string, or an instance)
// as its dot, or reuses its output from the previous render when nothing
// it read changed, and for an instance, when it is the same record.
//
// dot comes as a reflect.Value so that an instance ranged over from a
// snapshot is reached in place: boxing it in an interface would copy the
// whole record for every line of every render.
func (st *execState) cached(name string, dot reflect.Value) (string, error) {
	k, in, data, err := blockDot("cachedTemplate", name, dot)
	if err != nil {
		return "", err
	}
	size := 0
	var old *blockEntry
	if st.cache != nil {
		var e *blockEntry
		if e, old = st.cache.reuse(k, st.snap, in, st.block); e != nil {
			st.deps.merge(e.deps)
			return e.out, nil
		}
		if old != nil {
			size = len(old.out)
		}
	}
	entry := &blockEntry{parent: st.block, in: in}
	var b strings.Builder
	b.Grow(size + size/16) // the new output is usually about as long as the last
	deps, err := st.run(&b, &b, name, data, entry, old)
	if err != nil {
		return "", err
	}
	if st.cache != nil {
		entry.deps, entry.out = deps, b.String()
		for _, m := range entry.ranges {
			if m.out == "" && m.n > 0 { // printed into b: see cachedRange
				m.out = entry.out[m.off : m.off+m.n]
			}
		}
		st.cache.put(k, entry)
	}
	return b.String(), nil
}

// blockDot checks the KEY of cachedTemplate or an element of cachedRange
// (fn names which, in errors): a string or an instance. It returns the
// block's key, the instance (nil for a string) and the block's dot.
func blockDot(fn, name string, dot reflect.Value) (k blockKey, in *schema.Instance, data any, err error) {
	k = blockKey{name: name}
	for dot.IsValid() && dot.Kind() == reflect.Interface && !dot.IsNil() {
		dot = dot.Elem()
	}
	switch {
	case !dot.IsValid() || (dot.Kind() == reflect.Interface || dot.Kind() == reflect.Pointer) && dot.IsNil():
		return k, nil, nil, fmt.Errorf("%s %q: the key is nil; want a string or an instance", fn, name)
	case dot.Kind() == reflect.String:
		k.key = dot.String()
		return k, nil, dot.Interface(), nil
	case dot.Type() == reflect.TypeFor[schema.Instance]():
		if dot.CanAddr() {
			in = dot.Addr().Interface().(*schema.Instance)
		} else {
			v := dot.Interface().(schema.Instance)
			in = &v
		}
	case dot.Type() == reflect.TypeFor[*schema.Instance]():
		in = dot.Interface().(*schema.Instance)
	default:
		return k, nil, nil, fmt.Errorf("%s %q: the key must be a string or an instance, not %s", fn, name, dot.Type())
	}
	k.key, k.id, k.instance = in.Service, in.ID, true
	return k, in, *in, nil // an instance block's dot is the record, whether given by value or pointer
}

// run executes the named template with data as its dot into w, as the
// cached block entry, whose previous run (old, may be nil) has the
// cachedRange calls it may reuse. buf is w when w holds exactly the
// block's output (nil otherwise). It returns what the block read, which
// it also adds to what the enclosing block read: noDeps for nothing.
func (st *execState) run(w io.Writer, buf *strings.Builder, name string, data any, entry, old *blockEntry) (*Deps, error) {
	outer, outerBlock, outerOld, outerW, outerBuf := st.deps, st.block, st.old, st.w, st.blockBuf
	st.deps, st.block, st.old, st.w, st.blockBuf = newDeps(), entry, old, w, buf
	err := st.tmpl.ExecuteTemplate(w, name, data)
	block := st.deps
	st.deps, st.block, st.old, st.w, st.blockBuf = outer, outerBlock, outerOld, outerW, outerBuf
	if err != nil {
		return nil, err
	}
	outer.merge(block)
	if block.empty() {
		block = noDeps // most instance blocks read nothing: share one
	}
	return block, nil
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

// print writes out to the writer of the template being executed, in place
// of text/template printing the returned "" (see printDirect).
func (st *execState) print(out string, err error) (string, error) {
	if err != nil {
		return "", err
	}
	_, err = io.WriteString(st.w, out)
	return "", err
}

// WriteString writes s as Write does, without first copying it into a new
// []byte, as io.WriteString would: print writes whole blocks, as large as
// every server of a service. Write only reads its argument.
func (w *budgetWriter) WriteString(s string) (int, error) {
	return w.Write(unsafe.Slice(unsafe.StringData(s), len(s)))
}
