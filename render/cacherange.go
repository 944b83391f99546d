package render

import (
	"fmt"
	"io"
	"reflect"
	"slices"
	"strings"

	"github.com/rewire/rewire/registry/schema"
)

// rangeMemo is one cachedRange call: its whole output and, for each
// element, what is needed to tell whether its piece of that output can be
// reused by the next call. The next run of the same block copies the
// unchanged elements' pieces from out, in runs, so that a change to one
// element of 10,000 costs a copy of the output and an integer compare per
// element, not a map lookup and a record comparison each. Per element it
// holds no pointer (the elements are the LIST's own; ends are offsets), so
// building one costs the garbage collector little.
type rangeMemo struct {
	name string
	// out is the call's output. A call that printed straight into the
	// output of its cached block (see printDirect) gets it, as a part of
	// that output, when the block completes: at off, n bytes long.
	out    string
	off, n int
	elems  rangeCols
	// ends[i] is where element i's output ends in out; it starts where
	// element i-1's ends.
	ends []int
	// extras are the elements whose block read something (deps) or had
	// blocks nested in it, by index; the others read nothing.
	extras []rangeExtra
}

// rangeCols are the elements of a cachedRange LIST, as the cache compares
// them: a []schema.Instance LIST as it is (with the records' numbers when
// it is a service's Instances: schema.Snapshot.Versions), any other as
// the instance or string of each element.
type rangeCols struct {
	ins  []schema.Instance
	vers []uint64 // nil when unknown
	ids  []rangeID
}

// rangeID is an element of a LIST other than a []schema.Instance: an
// instance (in), or a string (key).
type rangeID struct {
	in  *schema.Instance
	key string
}

// rangeExtra is what an element's block read, and its entry when cached
// blocks ran nested in it or it made cachedRange calls (nil otherwise).
type rangeExtra struct {
	i     int
	deps  *Deps
	block *blockEntry
}

func (c *rangeCols) len() int {
	if c.ins != nil {
		return len(c.ins)
	}
	return len(c.ids)
}

func (c *rangeCols) inst(i int) *schema.Instance {
	if c.ins != nil {
		return &c.ins[i]
	}
	return c.ids[i].in
}

func (c *rangeCols) key(i int) string {
	if c.ids != nil {
		return c.ids[i].key
	}
	return ""
}

func (c *rangeCols) ver(i int) uint64 {
	if c.vers != nil {
		return c.vers[i]
	}
	return 0
}

// extra returns element j's deps and block.
func (m *rangeMemo) extra(j int) (*Deps, *blockEntry) {
	if len(m.extras) > 0 {
		if k, ok := slices.BinarySearchFunc(m.extras, j, func(x rangeExtra, j int) int { return x.i - j }); ok {
			return m.extras[k].deps, m.extras[k].block
		}
	}
	return noDeps, nil
}

// start returns where element j's output starts in out.
func (m *rangeMemo) start(j int) int {
	if j == 0 {
		return 0
	}
	return m.ends[j-1]
}

// newRangeCols reads a cachedRange LIST: a slice or array of strings or
// instances (or of interfaces holding them).
func newRangeCols(snap *schema.Snapshot, name string, list reflect.Value) (rangeCols, reflect.Value, error) {
	for list.IsValid() && (list.Kind() == reflect.Interface || list.Kind() == reflect.Pointer) && !list.IsNil() {
		list = list.Elem()
	}
	if !list.IsValid() || (list.Kind() != reflect.Slice && list.Kind() != reflect.Array) {
		return rangeCols{}, list, fmt.Errorf("cachedRange %q: want a list of strings or instances, not %v", name, list.Kind())
	}
	if list.Kind() == reflect.Slice && list.Type().Elem() == reflect.TypeFor[schema.Instance]() {
		ins := list.Interface().([]schema.Instance)
		if ins == nil {
			ins = []schema.Instance{} // non-nil: ins, not ids, holds the elements
		}
		return rangeCols{ins: ins, vers: snap.Versions(ins)}, list, nil
	}
	c := rangeCols{ids: make([]rangeID, list.Len())}
	for i := range c.ids {
		k, in, _, err := blockDot("cachedRange", name, list.Index(i))
		if err != nil {
			return rangeCols{}, list, err
		}
		c.ids[i] = rangeID{in: in, key: k.key}
	}
	return c, list, nil
}

// dot returns the dot of element i's block. Only the elements that run
// need it: boxing a record copies it.
func (c *rangeCols) dot(name string, list reflect.Value, i int) any {
	if c.ins != nil {
		return c.ins[i]
	}
	_, _, data, _ := blockDot("cachedRange", name, list.Index(i)) // newRangeCols checked it
	return data
}

// sameKey reports whether element j of a and element i of b name the
// same element: the same instance (service and ID) or the same string.
func sameKey(a *rangeCols, j int, b *rangeCols, i int) bool {
	x, y := a.inst(j), b.inst(i)
	if x == nil || y == nil {
		return x == y && a.key(j) == b.key(i)
	}
	return x.ID == y.ID && x.Service == y.Service
}

// before reports whether element j of a sorts before element i of b, both
// instances.
func before(a *rangeCols, j int, b *rangeCols, i int) bool {
	x, y := a.inst(j), b.inst(i)
	if x == nil || y == nil {
		return false
	}
	if x.Service != y.Service {
		return x.Service < y.Service
	}
	return x.ID < y.ID
}

// aligner finds, for each element of a new call, the element of the same
// key in the previous call, expecting the same order: it looks a few
// elements ahead of the last match, and only when that fails (elements
// moved, or many were deleted at one place) indexes the previous call.
type aligner struct {
	prev, cur *rangeCols
	next      int // the element after the last match
	index     map[rangeKey]int
}

type rangeKey struct {
	svc, id, key string
	instance     bool
}

func keyOf(c *rangeCols, i int) rangeKey {
	if in := c.inst(i); in != nil {
		return rangeKey{svc: in.Service, id: in.ID, instance: true}
	}
	return rangeKey{key: c.key(i)}
}

// lookahead is how many previous elements find skips (deleted since)
// before it indexes them all.
const lookahead = 8

// find returns the index of the previous element of element i, or -1
// when there is none (a new element).
func (a *aligner) find(i int) int {
	n := a.prev.len()
	for j := a.next; j < min(a.next+lookahead, n); j++ {
		switch {
		case sameKey(a.prev, j, a.cur, i):
			a.next = j + 1
			return j
		case before(a.cur, i, a.prev, j):
			return -1 // a list of instances in ID order: i is new
		}
	}
	if n == 0 || a.next >= n && before(a.prev, n-1, a.cur, i) {
		return -1 // appended
	}
	if a.index == nil {
		a.index = make(map[rangeKey]int, n)
		for j := range n {
			if k := keyOf(a.prev, j); a.index[k] == 0 {
				a.index[k] = j + 1
			}
		}
	}
	j := a.index[keyOf(a.cur, i)] - 1
	if j >= 0 {
		a.next = j + 1
	}
	return j
}

// sameElem reports whether element j of prev and element i of cur are
// the same record (by number when both have one) or the same string.
func sameElem(prev *rangeCols, j int, cur *rangeCols, i int) bool {
	x, y := prev.inst(j), cur.inst(i)
	switch {
	case x == nil || y == nil:
		return x == y && prev.key(j) == cur.key(i)
	case prev.ver(j) != 0 && cur.ver(i) != 0:
		return prev.ver(j) == cur.ver(i)
	}
	return x.Same(y)
}

// cachedRange is {{ range LIST }}{{ cachedTemplate NAME . }}{{ end }} in
// one call: the loop runs in Go, not through text/template's evaluator,
// which costs a reflective call, a pipeline and a few allocations per
// element. LIST is a slice or array of strings or instances; each element
// is the KEY of cachedTemplate.
//
// With a block cache, the call also remembers its output and elements
// (rangeMemo, kept with the cached block it ran in, or with the render
// when it is not in one). The next run of that block at the same call
// reuses the output of each element that is the same instance record
// (for a service's Instances, known by its number: one integer compare)
// or string, and whose block read nothing that changed; only new and
// changed elements run. So a change to one instance of a service of
// 10,000 costs about what it costs in a service of 200, plus copying the
// service's lines.
//
// With print (the call's output is printed as it is: see printDirect), it
// writes the output itself and returns "". Inside a cached block it then
// writes straight into the block's output, and the call's memo is a part
// of that output: the lines of a service are built and kept once.
func (st *execState) cachedRange(name string, list reflect.Value, print bool) (string, error) {
	cols, list, err := newRangeCols(st.snap, name, list)
	if err != nil {
		return "", err
	}
	r := rangeRun{st: st, name: name, list: list, memo: &rangeMemo{name: name, elems: cols}, b: new(strings.Builder)}
	direct := print && st.cache != nil && st.block != nil && st.blockBuf != nil && st.w == io.Writer(st.blockBuf)
	if direct {
		r.b, r.base = st.blockBuf, st.blockBuf.Len()
	}
	if st.cache != nil {
		r.prev = st.prevRange(name)
		r.memo.ends = make([]int, 0, cols.len())
	}
	if r.prev != nil {
		if !direct {
			r.b.Grow(len(r.prev.out) + len(r.prev.out)/16)
		}
		r.a = aligner{prev: &r.prev.elems, cur: &r.memo.elems}
	}
	for i, n := 0, cols.len(); i < n; {
		if err := st.budget.check(); err != nil {
			return "", err
		}
		for limit := min(i+256, n); i < limit; {
			k, err := r.same(i, limit)
			if err != nil {
				return "", err
			}
			if k > i {
				i = k
				continue
			}
			if err := r.elem(i); err != nil {
				return "", err
			}
			i++
		}
	}
	r.flush()
	if st.cache != nil {
		st.cache.adopt(st.block, r.adopted)
		st.addRange(r.memo)
	}
	if direct {
		r.memo.off, r.memo.n = r.base, r.b.Len()-r.base // out: set by cached when the block completes
		return "", nil
	}
	r.memo.out = r.b.String()
	if print {
		return st.print(r.memo.out, nil)
	}
	return r.memo.out, nil
}

// rangeRun is one cachedRange call in progress.
type rangeRun struct {
	st      *execState
	name    string
	list    reflect.Value
	prev    *rangeMemo // the previous call; nil if none
	memo    *rangeMemo // this one
	a       aligner
	b       *strings.Builder // the output: the call's own, or its block's from base on
	base    int
	lo, hi  int           // the run of prev.out still to copy into b
	adopted []*blockEntry // the reused elements' entries
}

// same reuses at once the run of elements from i on (up to limit) that
// are the same records at the same places as in the previous call, by
// their numbers, and read nothing: the bulk of a large service. It
// returns the index after the run (i when there is none).
func (r *rangeRun) same(i, limit int) (int, error) {
	if r.prev == nil || r.memo.elems.vers == nil || r.prev.elems.vers == nil {
		return i, nil
	}
	cv, pv, j := r.memo.elems.vers, r.prev.elems.vers, r.a.next
	if x, _ := slices.BinarySearchFunc(r.prev.extras, j, func(x rangeExtra, j int) int { return x.i - j }); x < len(r.prev.extras) {
		limit = min(limit, i+r.prev.extras[x].i-j) // stop before an element with deps or a block
	}
	k := 0
	for i+k < limit && j+k < len(pv) && pv[j+k] == cv[i+k] {
		k++
	}
	if k == 0 {
		return i, nil
	}
	if start := r.prev.start(j); start != r.hi {
		r.flush()
		r.lo = start
	}
	// Element j+m ends at prev.ends[j+m] in the previous output, and at
	// that minus lo, after what b already holds, in this one.
	off := r.b.Len() - r.base - r.lo
	for m := range k {
		r.memo.ends = append(r.memo.ends, off+r.prev.ends[j+m])
	}
	r.hi, r.a.next = r.prev.ends[j+k-1], j+k
	return i + k, r.st.budget.allows(int64(off + r.hi))
}

// elem adds element i's output: reused from the previous call, or run.
func (r *rangeRun) elem(i int) error {
	cur, j, same := &r.memo.elems, -1, false
	if r.prev != nil {
		p := &r.prev.elems
		if cur.vers != nil && p.vers != nil && r.a.next < len(p.vers) && p.vers[r.a.next] == cur.vers[i] {
			j, same = r.a.next, true // the common case: the same record at the same place
			r.a.next++
		} else if j = r.a.find(i); j >= 0 {
			same = sameElem(p, j, cur, i)
		}
	}
	var deps *Deps
	var block *blockEntry
	reused := false
	if j >= 0 {
		deps, block = r.prev.extra(j)
		reused = same && (deps == noDeps || !deps.Changed(r.st.snap))
	}
	if reused {
		if start := r.prev.start(j); start != r.hi {
			r.flush()
			r.lo = start
		}
		r.hi = r.prev.ends[j]
		if deps != noDeps {
			r.st.deps.merge(deps)
		}
		if block != nil {
			r.adopted = append(r.adopted, block)
		}
	} else {
		r.flush()
		var err error
		if deps, block, err = r.st.runElem(r.b, r.name, cur.dot(r.name, r.list, i), block); err != nil {
			return err
		}
	}
	end := r.b.Len() - r.base + r.hi - r.lo
	if err := r.st.budget.allows(int64(end)); err != nil {
		return err
	}
	if r.st.cache != nil {
		r.memo.ends = append(r.memo.ends, end)
		if deps != noDeps || block != nil {
			r.memo.extras = append(r.memo.extras, rangeExtra{i: i, deps: deps, block: block})
		}
	}
	return nil
}

// flush copies the pending run of the previous output.
func (r *rangeRun) flush() {
	if r.hi > r.lo {
		r.b.WriteString(r.prev.out[r.lo:r.hi])
	}
	r.lo, r.hi = 0, 0
}

// runElem runs one element's block into b. Its entry (for blocks nested in
// it) is kept only when something was nested. old is its previous entry,
// whose cachedRange calls it may reuse.
func (st *execState) runElem(b *strings.Builder, name string, data any, old *blockEntry) (*Deps, *blockEntry, error) {
	entry := &blockEntry{parent: st.block}
	deps, err := st.run(b, nil, name, data, entry, old)
	if err != nil {
		return nil, nil, err
	}
	if st.cache == nil {
		return deps, nil, nil
	}
	st.cache.mu.Lock()
	keep := entry.nested
	st.cache.mu.Unlock()
	if !keep && len(entry.ranges) == 0 {
		entry = nil
	}
	return deps, entry, nil
}

// prevRange returns the previous run's memo of the cachedRange call about
// to be made, if it was made with the same NAME: calls are matched by
// their order in the enclosing cached block (or in the render, outside
// any), which is the same while the template is.
func (st *execState) prevRange(name string) *rangeMemo {
	var prev []*rangeMemo
	n := len(st.top)
	if st.block != nil {
		n = len(st.block.ranges)
		if st.old != nil {
			prev = st.old.ranges
		}
	} else {
		prev = st.prevTop
	}
	if n < len(prev) && prev[n].name == name {
		return prev[n]
	}
	return nil
}

// addRange records memo as the next cachedRange call of the enclosing
// cached block, or of the render.
func (st *execState) addRange(memo *rangeMemo) {
	if st.block != nil {
		st.block.ranges = append(st.block.ranges, memo)
	} else {
		st.top = append(st.top, memo)
	}
}
