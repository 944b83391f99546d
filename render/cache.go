package render

import (
	"maps"
	"strings"
	"sync"
)

// blockCache keeps the output of cachedTemplate blocks between renders of
// one Target, with what each block read. An entry is reused while nothing
// it read changed, so the cache is exact for deterministic blocks. Entries
// not used by a render are dropped after it.
type blockCache struct {
	// mu guards the maps.
	mu   sync.Mutex
	prev map[string]blockEntry // from the last complete render
	next map[string]blockEntry // being filled by the current render
}

type blockEntry struct {
	deps *Deps
	out  string
}

func newBlockCache() *blockCache { return &blockCache{prev: map[string]blockEntry{}} }

func (c *blockCache) begin() {
	c.mu.Lock()
	c.next = map[string]blockEntry{}
	c.mu.Unlock()
}

// end makes the current render's entries the cache; after a failed
// render (ok false) the previous entries stay.
func (c *blockCache) end(ok bool) {
	c.mu.Lock()
	if ok {
		c.prev = c.next
	}
	c.next = nil
	c.mu.Unlock()
}

func (c *blockCache) get(key string) (blockEntry, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.prev[key]
	return e, ok
}

func (c *blockCache) put(key string, e blockEntry) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.next != nil {
		c.next[key] = e
	}
}

// cached executes the named template with key as its dot, or reuses its
// output from the previous render when nothing it read has changed.
func (st *execState) cached(name, key string) (string, error) {
	ck := name + "\x00" + key
	if st.cache != nil {
		if e, ok := st.cache.get(ck); ok && !e.deps.Changed(st.snap) {
			st.deps.merge(e.deps)
			st.cache.put(ck, e)
			return e.out, nil
		}
	}
	outer := st.deps
	st.deps = newDeps()
	var b strings.Builder
	err := st.tmpl.ExecuteTemplate(&b, name, key)
	block := st.deps
	st.deps = outer
	if err != nil {
		return "", err
	}
	outer.merge(block)
	if st.cache != nil {
		st.cache.put(ck, blockEntry{deps: block, out: b.String()})
	}
	return b.String(), nil
}

// merge adds what o read to d.
func (d *Deps) merge(o *Deps) {
	if d == nil || o == nil {
		return
	}
	maps.Copy(d.services, o.services)
	if o.allServices != nil && d.allServices == nil {
		d.allServices = maps.Clone(o.allServices)
	}
	maps.Copy(d.keys, o.keys)
	maps.Copy(d.prefixes, o.prefixes)
	d.Panicked = append(d.Panicked, o.Panicked...)
}
