package render

import (
	"fmt"
	"io"
	"maps"
	"reflect"
	"slices"
	"strings"
	"text/template"

	"github.com/Masterminds/sprig/v3"
	sockaddr "github.com/hashicorp/go-sockaddr/template"
	"github.com/rewire/rewire/graph"
	"github.com/rewire/rewire/health"
	"github.com/rewire/rewire/registry/schema"
)

// ServiceInfo is what `services` returns for each service.
type ServiceInfo struct {
	Name string
	Tags []string
}

// baseFuncs are the functions available at parse time: sprig, go-sockaddr
// and placeholders for the registry functions, which execute replaces with
// ones bound to a snapshot.
func baseFuncs() template.FuncMap {
	// go-sockaddr first, then sprig on top: both define join, and sprig's
	// two-argument join is the one template authors expect.
	m := template.FuncMap{}
	for _, fm := range []template.FuncMap{sockaddr.SourceFuncs, sockaddr.SortFuncs, sockaddr.FilterFuncs, sockaddr.HelperFuncs} {
		maps.Copy(m, fm)
	}
	maps.Copy(m, sprig.TxtFuncMap())
	// sprig's sortAlpha sorts a []string in place. The tags and other
	// lists templates get belong to an immutable snapshot, shared between
	// records and renders: sort a copy.
	if sortAlpha, ok := m["sortAlpha"].(func(any) []string); ok {
		m["sortAlpha"] = func(list any) []string {
			if l, ok := list.([]string); ok {
				list = slices.Clone(l)
			}
			return sortAlpha(list)
		}
	}
	// until and untilStep build the whole list before the template sees
	// it: bound them, so `until 1000000000000` fails instead of taking
	// the machine's memory.
	if until, ok := m["until"].(func(int) []int); ok {
		m["until"] = func(n int) ([]int, error) {
			if n > maxListLen || n < -maxListLen {
				return nil, fmt.Errorf("until %d: more than %d elements", n, maxListLen)
			}
			return until(n), nil
		}
	}
	if untilStep, ok := m["untilStep"].(func(int, int, int) []int); ok {
		m["untilStep"] = func(start, stop, step int) ([]int, error) {
			if step != 0 && (stop-start)/step > maxListLen {
				return nil, fmt.Errorf("untilStep %d %d %d: more than %d elements", start, stop, step, maxListLen)
			}
			return untilStep(start, stop, step), nil
		}
	}
	maps.Copy(m, registryFuncs(&execState{}))
	return m
}

// execState is one execution of a template: the snapshot it reads, where
// reads are recorded (swapped while a cached block executes), and the
// Target's block cache.
type execState struct {
	snap  *schema.Snapshot
	keys  schema.Keys
	deps  *Deps
	tmpl  *template.Template // the clone being executed
	cache *blockCache        // nil: no caching
	w     io.Writer          // what the template being executed writes to
	// blockBuf is w when w holds exactly the output of the cached block
	// being executed (not for a cachedRange element); nil otherwise.
	blockBuf *strings.Builder
	block    *blockEntry // the cached block being executed; nil at top level
	old      *blockEntry // block's previous entry, whose cachedRange calls it may reuse; may be nil
	// prevTop are the last complete render's cachedRange calls outside
	// any cached block; top this render's.
	prevTop, top []*rangeMemo
	// budget is what the render may still spend; nil outside a render.
	budget *budget
}

// registryFuncs returns the registry functions bound to st.
func registryFuncs(st *execState) template.FuncMap {
	abs := func(path string) (string, error) {
		if strings.HasPrefix(path, "/") {
			if !strings.HasPrefix(path, st.keys.Root()) {
				return "", fmt.Errorf("key %q is outside the watched prefix %s", path, st.keys.Root())
			}
			return path, nil
		}
		return st.keys.Root() + path, nil
	}
	list := func(path string, recursive bool) ([]schema.KV, error) {
		p, err := abs(path)
		if err != nil {
			return nil, err
		}
		p = strings.TrimSuffix(p, "/") + "/"
		all := st.snap.List(p)
		st.deps.prefix(p, all)
		var out []schema.KV
		for _, kv := range all {
			rel := strings.TrimPrefix(kv.Key, p)
			if !recursive && strings.Contains(rel, "/") {
				continue
			}
			out = append(out, schema.KV{Key: rel, Value: kv.Value})
		}
		return out, nil
	}
	return template.FuncMap{
		"service": func(name string, statuses ...string) ([]schema.Instance, error) {
			if len(statuses) > 1 {
				return nil, fmt.Errorf("service %q: want at most one status filter, got %d", name, len(statuses))
			}
			st.deps.service(st.snap, name)
			sv := service(st.snap, name)
			if len(statuses) == 0 {
				return sv.Routable(), nil
			}
			allow, err := parseStatuses(statuses[0])
			if err != nil {
				return nil, fmt.Errorf("service %q: %w", name, err)
			}
			var out []schema.Instance
			for _, in := range sv.Instances {
				if !in.Maintenance && !in.Draining && slices.Contains(allow, in.Health.Shallow) {
					out = append(out, in)
				}
			}
			return out, nil
		},
		"serviceTags": func(name string) []string {
			st.deps.service(st.snap, name)
			return service(st.snap, name).Tags()
		},
		"instances": func(name string) []schema.Instance {
			st.deps.service(st.snap, name)
			return service(st.snap, name).Instances
		},
		"serviceOrAll": func(name string, threshold float64) ([]schema.Instance, error) {
			if threshold < 0 || threshold > 1 {
				return nil, fmt.Errorf("serviceOrAll %q: threshold %v: want a fraction between 0 and 1", name, threshold)
			}
			st.deps.service(st.snap, name)
			sv := service(st.snap, name)
			routable := sv.Routable()
			if len(sv.Instances) == 0 || float64(len(routable)) >= threshold*float64(len(sv.Instances)) {
				return routable, nil
			}
			// Panic mode: too few healthy instances to carry the load.
			// Spread it over every instance not taken out by an operator.
			if st.deps != nil {
				st.deps.Panicked = append(st.deps.Panicked, name)
			}
			var out []schema.Instance
			for _, in := range sv.Instances {
				if !in.Maintenance && !in.Draining {
					out = append(out, in)
				}
			}
			return out, nil
		},
		"services": func() []ServiceInfo {
			st.deps.all(st.snap)
			var out []ServiceInfo
			for _, n := range st.snap.ServiceNames() {
				if sv := st.snap.Service(n); len(sv.Instances) > 0 {
					out = append(out, ServiceInfo{Name: n, Tags: sv.Tags()})
				}
			}
			return out
		},
		"key": func(path string) (string, error) {
			p, err := abs(path)
			if err != nil {
				return "", err
			}
			v, ok := st.snap.Get(p)
			st.deps.key(p, v, ok)
			if !ok {
				return "", fmt.Errorf("key %s does not exist (use keyOrDefault for optional keys)", p)
			}
			return v, nil
		},
		"keyOrDefault": func(path, def string) (string, error) {
			p, err := abs(path)
			if err != nil {
				return "", err
			}
			v, ok := st.snap.Get(p)
			st.deps.key(p, v, ok)
			if ok {
				return v, nil
			}
			return def, nil
		},
		// The dependency graph's edges, from the same model as
		// `registrar graph`. dependents reads every service: a change
		// to any record may add or remove an edge to name.
		"dependencies": func(name string) []string {
			st.deps.service(st.snap, name)
			return graph.DependsOn(st.snap.Service(name))
		},
		"dependents": func(name string) []string {
			st.deps.all(st.snap)
			return graph.DependentsIn(st.snap, name)
		},
		"cachedTemplate": func(name string, key reflect.Value) (string, error) {
			return st.cached(name, key)
		},
		"cachedRange": func(name string, list reflect.Value) (string, error) {
			return st.cachedRange(name, list, false)
		},
		// What {{ cachedTemplate ... }} and {{ cachedRange ... }} call
		// when they only print (see printDirect).
		cachedTemplatePrint: func(name string, key reflect.Value) (string, error) {
			return st.print(st.cached(name, key))
		},
		cachedRangePrint: func(name string, list reflect.Value) (string, error) {
			return st.cachedRange(name, list, true)
		},
		"ls":   func(path string) ([]schema.KV, error) { return list(path, false) },
		"tree": func(path string) ([]schema.KV, error) { return list(path, true) },
		// The render's limits: checked at the top of every range body (see
		// instrument), and before repeat builds a string.
		tickFunc: func() (string, error) { return "", st.budget.check() },
		"repeat": func(count int, s string) (string, error) {
			if count < 0 {
				return "", fmt.Errorf("repeat: negative count %d", count)
			}
			if err := st.budget.allows(int64(count) * int64(len(s))); err != nil {
				return "", err
			}
			return strings.Repeat(s, count), nil
		},
	}
}

func parseStatuses(s string) ([]health.Status, error) {
	if s == "any" {
		return []health.Status{health.Passing, health.Warning, health.Critical}, nil
	}
	var out []health.Status
	for f := range strings.SplitSeq(s, ",") {
		st, err := health.ParseStatus(strings.TrimSpace(f))
		if err != nil {
			return nil, fmt.Errorf("status filter %q: want \"any\" or a comma-separated list of passing, warning, critical", s)
		}
		out = append(out, st)
	}
	return out, nil
}

// service returns the named service, empty when the snapshot has none.
func service(snap *schema.Snapshot, name string) *schema.Service {
	if sv := snap.Service(name); sv != nil {
		return sv
	}
	return &schema.Service{Name: name}
}
