package graph

import (
	"fmt"
	"slices"
	"strings"
)

// unhealthy returns the set of nodes that are not Healthy.
func (g *Graph) unhealthy() []bool {
	bad := make([]bool, len(g.Nodes))
	for i := range g.Nodes {
		bad[i] = !g.Nodes[i].Healthy
	}
	return bad
}

// markRoots sets Node.Root: an unhealthy service is a root cause when
// none of its dependencies is unhealthy. When unhealthy services depend
// on each other in a cycle and on nothing else unhealthy, the roots are
// the members of the cycle that are down themselves (no routable
// instance); the others only fail their deep checks because of them. If
// every member still has routable instances, no one of them stands out:
// all are marked.
func (g *Graph) markRoots() {
	bad := g.unhealthy()
	for _, comp := range g.sccs(bad) {
		if !g.bottom(comp, bad) {
			continue
		}
		down := slices.DeleteFunc(slices.Clone(comp), func(i int) bool { return g.Nodes[i].Routable > 0 })
		if len(down) == 0 {
			down = comp
		}
		for _, i := range down {
			g.Nodes[i].Root = true
		}
	}
}

// bottom reports whether no member of comp depends on an unhealthy
// service outside comp.
func (g *Graph) bottom(comp []int, bad []bool) bool {
	for _, i := range comp {
		for _, j := range g.deps[i] {
			if bad[j] && !slices.Contains(comp, j) {
				return false
			}
		}
	}
	return true
}

// Cause is one root cause.
type Cause struct {
	Service string `json:"service"`
	Missing bool   `json:"missing,omitempty"`
	Reason  string `json:"reason"`
	// Chain runs from the service asked about to this root, through
	// unhealthy services only (Why; empty in Roots).
	Chain []string `json:"chain,omitempty"`
	// Cycle is set when the root is one of a cycle of unhealthy services
	// waiting on each other.
	Cycle  []string       `json:"cycle,omitempty"`
	Checks []FailingCheck `json:"failing_checks,omitempty"`
	// Waiting are the unhealthy services that wait on this root, directly
	// or through other unhealthy services, sorted.
	Waiting []string `json:"waiting"`
}

// Diagnosis is the answer to "why is this service unhealthy?".
type Diagnosis struct {
	Service string `json:"service"`
	Healthy bool   `json:"healthy"`
	// Summary is one line for people: "web is healthy" or "web is
	// unhealthy: it waits on db (no routable instance of 2 ...)".
	Summary string  `json:"summary"`
	Roots   []Cause `json:"roots"`
}

// Why explains the state of name. A healthy service gets Healthy and a
// summary saying so. For an unhealthy one it walks the dependencies that
// are unhealthy too, down to the root causes, and returns each root with
// the chain from name to it, its failing checks, and every unhealthy
// service waiting on it.
func (g *Graph) Why(name string) (Diagnosis, error) {
	i, err := g.lookup(name)
	if err != nil {
		return Diagnosis{}, err
	}
	n := &g.Nodes[i]
	d := Diagnosis{Service: name, Healthy: n.Healthy, Roots: []Cause{}}
	if n.Healthy {
		d.Summary = fmt.Sprintf("%s is healthy: %d of %d instances routable", name, n.Routable, n.Instances)
		if bad := g.badDeps(i); len(bad) > 0 {
			d.Summary += "; unhealthy dependencies (its routable instances still pass): " + strings.Join(bad, ", ")
		}
		return d, nil
	}
	bad := g.unhealthy()
	prev := g.paths(i, bad)
	for r := range g.Nodes {
		if !g.Nodes[r].Root || (r != i && prev[r] < 0) {
			continue
		}
		c := g.cause(r, bad)
		for v := r; ; v = prev[v] {
			c.Chain = append(c.Chain, g.Nodes[v].Name)
			if v == i {
				break
			}
		}
		slices.Reverse(c.Chain)
		d.Roots = append(d.Roots, c)
	}
	d.Summary = g.summary(i, d.Roots)
	return d, nil
}

// badDeps names the direct dependencies of i that are unhealthy.
func (g *Graph) badDeps(i int) []string {
	var out []string
	for _, j := range g.deps[i] {
		if !g.Nodes[j].Healthy {
			out = append(out, g.Nodes[j].Name)
		}
	}
	return out
}

// paths runs a breadth-first search from i along dependencies, through
// unhealthy nodes only, and returns each reached node's predecessor on a
// shortest path (i itself: i; not reached: -1).
func (g *Graph) paths(i int, bad []bool) []int {
	prev := make([]int, len(g.Nodes))
	for k := range prev {
		prev[k] = -1
	}
	prev[i] = i
	queue := []int{i}
	for len(queue) > 0 {
		v := queue[0]
		queue = queue[1:]
		for _, w := range g.deps[v] {
			if bad[w] && prev[w] < 0 {
				prev[w] = v
				queue = append(queue, w)
			}
		}
	}
	return prev
}

// cause describes root r, without a chain.
func (g *Graph) cause(r int, bad []bool) Cause {
	n := &g.Nodes[r]
	c := Cause{Service: n.Name, Missing: n.Missing, Reason: n.Reason, Checks: n.Checks}
	for _, cy := range g.Cycles {
		if slices.Contains(cy, n.Name) {
			c.Cycle = cy
		}
	}
	waiting := g.reach([]int{r}, g.users, bad)
	waiting[r] = false
	c.Waiting = g.names(waiting)
	return c
}

// summary is the one-line answer for unhealthy service i.
func (g *Graph) summary(i int, roots []Cause) string {
	n := &g.Nodes[i]
	if len(roots) == 1 && roots[0].Service == n.Name {
		return fmt.Sprintf("%s is unhealthy and is itself the root cause: %s", n.Name, n.Reason)
	}
	names := make([]string, 0, len(roots))
	for _, r := range roots {
		if r.Service != n.Name {
			names = append(names, r.Service)
		}
	}
	return fmt.Sprintf("%s is unhealthy: it waits on %s; root cause%s: %s", n.Name, strings.Join(g.badDeps(i), ", "), plural(len(names)), strings.Join(names, ", "))
}

func plural(n int) string {
	if n == 1 {
		return ""
	}
	return "s"
}

// Roots returns every root cause in the graph, each with the unhealthy
// services waiting on it, sorted by how many wait (most first), then by
// name: the grouping that turns a wall of red into "12 services wait on
// db".
func (g *Graph) Roots() []Cause {
	bad := g.unhealthy()
	out := []Cause{}
	for r := range g.Nodes {
		if g.Nodes[r].Root {
			out = append(out, g.cause(r, bad))
		}
	}
	slices.SortStableFunc(out, func(a, b Cause) int { return len(b.Waiting) - len(a.Waiting) })
	return out
}

// Grouping is a cause's line: "12 services wait on db (no instance
// registered)".
func (c Cause) Grouping() string {
	switch len(c.Waiting) {
	case 0:
		return fmt.Sprintf("%s is unhealthy (%s); nothing waits on it", c.Service, c.Reason)
	case 1:
		return fmt.Sprintf("1 service waits on %s (%s): %s", c.Service, c.Reason, c.Waiting[0])
	}
	names := strings.Join(c.Waiting, ", ")
	if len(c.Waiting) > maxNamed {
		names = fmt.Sprintf("%s and %d more", strings.Join(c.Waiting[:maxNamed], ", "), len(c.Waiting)-maxNamed)
	}
	return fmt.Sprintf("%d services wait on %s (%s): %s", len(c.Waiting), c.Service, c.Reason, names)
}

// maxNamed bounds the names Grouping lists.
const maxNamed = 10
