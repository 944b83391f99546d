package graph

import (
	"fmt"
	"slices"
	"strings"
)

// sccs returns the strongly connected components of the nodes for which
// in is true (all nodes when in is nil), following only edges between
// such nodes, in reverse topological order of the condensation (a
// component comes before any component that depends on it). Each
// component's members are sorted by index, that is by name.
func (g *Graph) sccs(in []bool) [][]int {
	n := len(g.Nodes)
	index, low := make([]int, n), make([]int, n)
	onStack := make([]bool, n)
	for i := range index {
		index[i] = -1
	}
	var stack []int
	var out [][]int
	next := 0
	var visit func(v int)
	visit = func(v int) {
		index[v], low[v] = next, next
		next++
		stack = append(stack, v)
		onStack[v] = true
		for _, w := range g.deps[v] {
			if in != nil && !in[w] {
				continue
			}
			if index[w] < 0 {
				visit(w)
				low[v] = min(low[v], low[w])
			} else if onStack[w] {
				low[v] = min(low[v], index[w])
			}
		}
		if low[v] != index[v] {
			return
		}
		var comp []int
		for {
			w := stack[len(stack)-1]
			stack = stack[:len(stack)-1]
			onStack[w] = false
			comp = append(comp, w)
			if w == v {
				break
			}
		}
		slices.Sort(comp)
		out = append(out, comp)
	}
	for v := range n {
		if index[v] < 0 && (in == nil || in[v]) {
			visit(v)
		}
	}
	return out
}

// cyclic reports whether a component is a cycle: more than one member,
// or one that depends on itself.
func (g *Graph) cyclic(comp []int) bool {
	return len(comp) > 1 || slices.Contains(g.deps[comp[0]], comp[0])
}

// findCycles names one cycle through each cyclic component: the shortest
// path from its smallest member back to itself.
func (g *Graph) findCycles() [][]string {
	out := [][]string{}
	for _, comp := range g.sccs(nil) {
		if g.cyclic(comp) {
			out = append(out, g.cycleThrough(comp))
		}
	}
	slices.SortFunc(out, func(a, b []string) int { return strings.Compare(a[0], b[0]) })
	return out
}

// cycleThrough returns the shortest cycle from comp[0] back to itself,
// staying inside comp.
func (g *Graph) cycleThrough(comp []int) []string {
	start := comp[0]
	prev := map[int]int{}
	queue := []int{start}
	for len(queue) > 0 {
		v := queue[0]
		queue = queue[1:]
		for _, w := range g.deps[v] {
			if !slices.Contains(comp, w) {
				continue
			}
			if w == start {
				path := []string{g.Nodes[v].Name}
				for v != start {
					v = prev[v]
					path = append(path, g.Nodes[v].Name)
				}
				slices.Reverse(path)
				return path
			}
			if _, seen := prev[w]; !seen {
				prev[w] = v
				queue = append(queue, w)
			}
		}
	}
	return []string{g.Nodes[start].Name} // not reached for a cyclic component
}

// CycleError is returned by Order when the graph has cycles: no order
// starts every service after its dependencies.
type CycleError struct {
	Cycles [][]string
}

func (e *CycleError) Error() string {
	parts := make([]string, len(e.Cycles))
	for i, c := range e.Cycles {
		parts[i] = FormatCycle(c)
	}
	return "graph: dependency cycle: " + strings.Join(parts, "; ")
}

// FormatCycle writes a cycle as "a → b → a".
func FormatCycle(c []string) string {
	return strings.Join(append(slices.Clone(c), c[0]), " → ")
}

// Order returns the services in start-up order, dependencies first, as
// stages: every service of a stage depends only on services of earlier
// stages, so a stage's services may start together. Names within a stage
// are sorted. When the graph has a cycle, Order returns a *CycleError
// naming every cycle.
func (g *Graph) Order() ([][]string, error) {
	if len(g.Cycles) > 0 {
		return nil, &CycleError{Cycles: g.Cycles}
	}
	waiting := make([]int, len(g.Nodes)) // dependencies not yet started
	var stage []int
	for i := range g.Nodes {
		waiting[i] = len(g.deps[i])
		if waiting[i] == 0 {
			stage = append(stage, i)
		}
	}
	var out [][]string
	for len(stage) > 0 {
		names := make([]string, len(stage))
		var next []int
		for k, i := range stage {
			names[k] = g.Nodes[i].Name
			for _, u := range g.users[i] {
				if waiting[u]--; waiting[u] == 0 {
					next = append(next, u)
				}
			}
		}
		slices.Sort(names)
		out = append(out, names)
		stage = next
	}
	return out, nil
}

// Impact returns every service that depends on name, directly or
// through others, sorted: what stops working when name does.
func (g *Graph) Impact(name string) ([]string, error) {
	i, err := g.lookup(name)
	if err != nil {
		return nil, err
	}
	seen := g.reach([]int{i}, g.users, nil)
	seen[i] = false
	return g.names(seen), nil
}

// Upstream returns every service name depends on, directly or through
// others, sorted.
func (g *Graph) Upstream(name string) ([]string, error) {
	i, err := g.lookup(name)
	if err != nil {
		return nil, err
	}
	seen := g.reach([]int{i}, g.deps, nil)
	seen[i] = false
	return g.names(seen), nil
}

// reach marks every node reachable from the starts along adj, visiting
// only nodes for which in is true (all when in is nil).
func (g *Graph) reach(starts []int, adj [][]int, in []bool) []bool {
	seen := make([]bool, len(g.Nodes))
	queue := slices.Clone(starts)
	for _, s := range starts {
		seen[s] = true
	}
	for len(queue) > 0 {
		v := queue[len(queue)-1]
		queue = queue[:len(queue)-1]
		for _, w := range adj[v] {
			if !seen[w] && (in == nil || in[w]) {
				seen[w] = true
				queue = append(queue, w)
			}
		}
	}
	return seen
}

// Neighbourhood returns the part of the graph around name: the service,
// the services it depends on and those that depend on it, directly, with
// the edges among them. Use Upstream and Impact for the transitive sets.
func (g *Graph) Neighbourhood(name string) (*Graph, error) {
	i, err := g.lookup(name)
	if err != nil {
		return nil, err
	}
	keep := make([]bool, len(g.Nodes))
	keep[i] = true
	for _, j := range g.deps[i] {
		keep[j] = true
	}
	for _, j := range g.users[i] {
		keep[j] = true
	}
	return g.sub(keep), nil
}

// Select returns the part of the graph made of the named services (names
// the graph does not hold are ignored) and the edges among them.
func (g *Graph) Select(names ...string) *Graph {
	keep := make([]bool, len(g.Nodes))
	for _, n := range names {
		if i, ok := g.index[n]; ok {
			keep[i] = true
		}
	}
	return g.sub(keep)
}

// sub returns the subgraph of the kept nodes and the edges between them.
// Node fields (DependsOn, Dependents, Root) stay as in the whole graph:
// they describe the service, not the excerpt; Cycles lists the whole
// graph's cycles that lie entirely inside the excerpt.
func (g *Graph) sub(keep []bool) *Graph {
	s := &Graph{Rev: g.Rev, index: map[string]int{}, Edges: []Edge{}, Cycles: [][]string{}}
	old := make([]int, 0, len(g.Nodes))
	for i, k := range keep {
		if k {
			s.index[g.Nodes[i].Name] = len(s.Nodes)
			s.Nodes = append(s.Nodes, g.Nodes[i])
			old = append(old, i)
		}
	}
	s.deps, s.users = make([][]int, len(s.Nodes)), make([][]int, len(s.Nodes))
	for ni, oi := range old {
		for _, oj := range g.deps[oi] {
			if keep[oj] {
				nj := s.index[g.Nodes[oj].Name]
				s.deps[ni] = append(s.deps[ni], nj)
				s.users[nj] = append(s.users[nj], ni)
				s.Edges = append(s.Edges, Edge{From: g.Nodes[oi].Name, To: g.Nodes[oj].Name})
			}
		}
	}
	for _, c := range g.Cycles {
		if !slices.ContainsFunc(c, func(n string) bool { _, ok := s.index[n]; return !ok }) {
			s.Cycles = append(s.Cycles, c)
		}
	}
	return s
}

// String is a short description for logs.
func (g *Graph) String() string {
	return fmt.Sprintf("graph at rev %d: %d services, %d edges, %d cycles", g.Rev, len(g.Nodes), len(g.Edges), len(g.Cycles))
}
