package render

import (
	"context"
	"sync"
	"sync/atomic"
	"text/template"

	"github.com/rewire/rewire/registry/schema"
)

// Parse parses template text with every function of the package. name
// appears in error messages (use the source file's name).
// Every range body gets a check of the render's limits.
func Parse(name, text string) (*template.Template, error) {
	t, err := template.New(name).Option("missingkey=error").Funcs(baseFuncs()).Parse(text)
	if err != nil {
		return nil, err
	}
	instrument(t)
	printDirect(t)
	return t, nil
}

// Execute runs tmpl against snap in memory, under the default limits.
func Execute(tmpl *template.Template, snap *schema.Snapshot, keys schema.Keys) ([]byte, error) {
	out, _, err := newProgram(tmpl).execute(context.Background(), snap, keys, nil, TargetConfig{}.limits())
	return out, err
}

// program is a parsed template with clones of it whose registry functions
// are bound to an execState. Binding costs a clone of the template and a
// copy of its ~200 functions (about 0.1 ms, more than rendering a small
// file), so bound clones are kept for the next render instead of being
// made per render.
type program struct {
	tmpl *template.Template
	// mu guards free.
	mu   sync.Mutex
	free []*execState
	// size is the length of the last output: the next one is usually
	// about as long, so its buffer is sized once instead of doubled.
	size atomic.Int64
	// cache keeps cachedTemplate blocks between a Target's renders; nil
	// for one-off executions. It belongs to the program so that a new
	// source starts with an empty one.
	cache *blockCache
}

func newProgram(tmpl *template.Template) *program { return &program{tmpl: tmpl} }

func newCachedProgram(tmpl *template.Template) *program {
	return &program{tmpl: tmpl, cache: newBlockCache()}
}

// bound returns a clone of p's template bound to an execState nobody else
// uses until it is given back with release.
func (p *program) bound() (*execState, error) {
	p.mu.Lock()
	if n := len(p.free); n > 0 {
		st := p.free[n-1]
		p.free = p.free[:n-1]
		p.mu.Unlock()
		return st, nil
	}
	p.mu.Unlock()
	t, err := p.tmpl.Clone()
	if err != nil {
		return nil, err
	}
	st := &execState{tmpl: t}
	t.Funcs(registryFuncs(st))
	return st, nil
}

// release gives st back, dropping what it referenced. At most two are
// kept: renders of one Target are serialized, and an occasional
// concurrent Render just binds a clone of its own.
func (p *program) release(st *execState) {
	st.snap, st.deps, st.cache, st.block, st.budget = nil, nil, nil, nil, nil
	st.old, st.prevTop, st.top, st.w, st.blockBuf = nil, nil, nil, nil, nil
	p.mu.Lock()
	if len(p.free) < 2 {
		p.free = append(p.free, st)
	}
	p.mu.Unlock()
}

// execute runs the template against snap and records what it read. cache
// (may be nil) keeps cachedTemplate blocks between renders. The render
// stops with an ErrRenderLimit error when it goes over lim or ctx ends.
func (p *program) execute(ctx context.Context, snap *schema.Snapshot, keys schema.Keys, cache *blockCache, lim limits) ([]byte, *Deps, error) {
	st, err := p.bound()
	if err != nil {
		return nil, nil, err
	}
	defer p.release(st)
	deps := newDeps()
	st.snap, st.keys, st.deps, st.cache, st.budget = snap, keys, deps, cache, &budget{}
	disarm := st.budget.start(ctx, lim)
	defer disarm()
	if cache != nil {
		st.prevTop = cache.begin()
	}
	w := &budgetWriter{b: st.budget}
	if n := p.size.Load(); n > 0 {
		// Only a render that stayed within its limits sets size.
		w.buf = make([]byte, 0, min(n+n/16, lim.max))
	}
	st.w = w
	err = st.tmpl.Execute(w, nil)
	if cache != nil {
		cache.end(err == nil, st.top)
	}
	if err != nil {
		return nil, deps, unrenamed(limitError(err, st.budget))
	}
	p.size.Store(int64(len(w.buf)))
	return w.buf, deps, nil
}
