package graph

import (
	"fmt"
	"slices"
	"sort"
	"strings"

	"github.com/rewire/rewire/health"
	"github.com/rewire/rewire/registry/schema"
)

// Counts are instances by health status.
type Counts struct {
	Passing  int `json:"passing"`
	Warning  int `json:"warning"`
	Critical int `json:"critical"`
}

func (c *Counts) add(s health.Status) {
	switch s {
	case health.Passing:
		c.Passing++
	case health.Warning:
		c.Warning++
	default:
		c.Critical++
	}
}

// Node is one service: what its instances report, and its place in the
// graph.
type Node struct {
	Name string `json:"name"`
	// Missing is true when something depends on the service but no
	// instance of it is registered (and the registry knows nothing else
	// of it: no maintenance entry, no expected count).
	Missing bool `json:"missing,omitempty"`
	// Instances is how many are registered; Expect how many the operator
	// said should be (0: no expectation), for "2 of 3 reporting".
	Instances int    `json:"instances"`
	Expect    int    `json:"expect,omitempty"`
	Routable  int    `json:"routable"`
	Shallow   Counts `json:"shallow"`
	Deep      Counts `json:"deep"`
	// Maintenance counts the instances in maintenance (the whole service's
	// entry included); MaintenanceReason is the service-wide entry's
	// reason when there is one, and InMaintenance says there is.
	Maintenance       int    `json:"maintenance"`
	InMaintenance     bool   `json:"in_maintenance,omitempty"`
	MaintenanceReason string `json:"maintenance_reason,omitempty"`
	Draining          int    `json:"draining"`
	// Status is the service as its dependents' checks see it: passing
	// when a routable instance passes, warning when routable instances
	// only warn, critical when none is routable.
	Status health.Status `json:"status"`
	// Healthy is true when some routable instance is not deep-critical.
	// Reason says, when it is false, why not.
	Healthy bool   `json:"healthy"`
	Reason  string `json:"reason,omitempty"`
	// Root is true when the service is unhealthy while none of its
	// dependencies is (or it sits in a cycle of unhealthy services that
	// depends on nothing else unhealthy): a root cause.
	Root bool `json:"root,omitempty"`
	// State sums the above up in one word, for people and for styling:
	// healthy, degraded (healthy, but some instances are not routable or
	// only warn), waiting (unhealthy because a dependency is), root,
	// missing (a root with nothing registered).
	State string `json:"state"`
	// Checks are the failing checks of an unhealthy service (a few
	// instances' worth), with their outputs.
	Checks []FailingCheck `json:"failing_checks,omitempty"`
	// DependsOn and Dependents are the direct edges, sorted.
	DependsOn  []string `json:"depends_on"`
	Dependents []string `json:"dependents"`
}

// Reporting is "2 of 3 reporting" when an expectation exists, else "".
func (n *Node) Reporting() string {
	if n.Expect == 0 {
		return ""
	}
	return fmt.Sprintf("%d of %d reporting", n.Instances, n.Expect)
}

// FailingCheck is one failing check of one instance.
type FailingCheck struct {
	Instance string        `json:"instance"`
	Check    string        `json:"check"`
	Kind     health.Kind   `json:"kind"`
	Status   health.Status `json:"status"`
	Output   string        `json:"output"`
}

// Edge says From depends on To.
type Edge struct {
	From string `json:"from"`
	To   string `json:"to"`
}

// Graph is the dependency graph of one snapshot. Immutable.
type Graph struct {
	Rev   int64  `json:"rev"`
	Nodes []Node `json:"nodes"` // sorted by name
	Edges []Edge `json:"edges"` // sorted by From, then To
	// Cycles are the dependency cycles, each as the services along it
	// starting with the smallest name (the first is not repeated at the
	// end), sorted.
	Cycles [][]string `json:"cycles"`

	index map[string]int // name → position in Nodes
	deps  [][]int        // node → the nodes it depends on
	users [][]int        // node → the nodes that depend on it
}

// maxCheckInstances bounds how many instances' failing checks a node
// keeps: enough to show the cause, bounded for a service of 1,000.
const maxCheckInstances = 3

// Build returns the graph of snap.
func Build(snap *schema.Snapshot) *Graph {
	g := &Graph{Rev: snap.Rev, index: map[string]int{}}
	depsOf := map[string][]string{}
	for _, name := range snap.ServiceNames() {
		sv := snap.Service(name)
		depsOf[name] = DependsOn(sv)
		g.index[name] = len(g.Nodes)
		g.Nodes = append(g.Nodes, nodeOf(sv))
	}
	// Dependencies nobody registered.
	for _, deps := range depsOf {
		for _, d := range deps {
			if _, ok := g.index[d]; !ok {
				g.index[d] = len(g.Nodes)
				g.Nodes = append(g.Nodes, Node{Name: d, Missing: true, Status: health.Critical, Reason: "not registered"})
			}
		}
	}
	g.sortNodes()
	g.deps, g.users = make([][]int, len(g.Nodes)), make([][]int, len(g.Nodes))
	for i := range g.Nodes {
		n := &g.Nodes[i]
		n.DependsOn = depsOf[n.Name]
		if n.DependsOn == nil {
			n.DependsOn = []string{}
		}
		for _, d := range n.DependsOn {
			j := g.index[d]
			g.deps[i] = append(g.deps[i], j)
			g.users[j] = append(g.users[j], i)
			g.Edges = append(g.Edges, Edge{From: n.Name, To: d})
		}
	}
	for j := range g.Nodes {
		n := &g.Nodes[j]
		n.Dependents = make([]string, len(g.users[j]))
		for k, i := range g.users[j] {
			n.Dependents[k] = g.Nodes[i].Name
		}
	}
	g.Cycles = g.findCycles()
	g.markRoots()
	for i := range g.Nodes {
		n := &g.Nodes[i]
		n.State = n.state()
		if bad := g.badDeps(i); n.State == "waiting" && len(bad) > 0 {
			n.Reason = "waits on " + strings.Join(bad, ", ") + "; " + n.Reason
		}
	}
	return g
}

func (n *Node) state() string {
	switch {
	case n.Missing:
		return "missing"
	case n.Root:
		return "root"
	case !n.Healthy:
		return "waiting"
	case n.Status != health.Passing || n.Routable < n.Instances || n.Instances < n.Expect:
		return "degraded"
	}
	return "healthy"
}

// sortNodes sorts Nodes by name and rebuilds the index.
func (g *Graph) sortNodes() {
	sort.Slice(g.Nodes, func(i, j int) bool { return g.Nodes[i].Name < g.Nodes[j].Name })
	for i := range g.Nodes {
		g.index[g.Nodes[i].Name] = i
	}
}

// nodeOf summarises one service's instances.
func nodeOf(sv *schema.Service) Node {
	n := Node{Name: sv.Name, Instances: len(sv.Instances), Expect: sv.Expect}
	if sv.Maintenance != nil {
		n.InMaintenance, n.MaintenanceReason = true, sv.Maintenance.Reason
	}
	n.Status = health.Critical
	for _, in := range sv.Instances {
		n.Shallow.add(in.Health.Shallow)
		n.Deep.add(in.Health.Deep)
		if in.Maintenance {
			n.Maintenance++
		}
		if in.Draining {
			n.Draining++
		}
		if !in.Routable() {
			continue
		}
		n.Routable++
		n.Healthy = n.Healthy || in.Health.Deep != health.Critical
		switch {
		case in.Health.Shallow == health.Passing:
			n.Status = health.Passing
		case n.Status == health.Critical:
			n.Status = health.Warning
		}
	}
	if !n.Healthy {
		n.Reason = unhealthyReason(sv, &n)
		n.Checks = failingChecks(sv)
	}
	return n
}

// unhealthyReason says in words why a service has no routable instance
// that is deep-healthy.
func unhealthyReason(sv *schema.Service, n *Node) string {
	switch {
	case n.Instances == 0 && n.InMaintenance:
		return "no instance registered; service in maintenance: " + orNone(n.MaintenanceReason)
	case n.Instances == 0:
		return "no instance registered"
	case n.InMaintenance:
		return "service in maintenance: " + orNone(n.MaintenanceReason)
	case n.Routable > 0:
		return fmt.Sprintf("deep checks critical on every routable instance (%d)", n.Routable)
	}
	var parts []string
	if n.Shallow.Critical > 0 {
		parts = append(parts, fmt.Sprintf("%d shallow critical", n.Shallow.Critical))
	}
	if n.Maintenance > 0 {
		parts = append(parts, fmt.Sprintf("%d in maintenance", n.Maintenance))
	}
	if n.Draining > 0 {
		parts = append(parts, fmt.Sprintf("%d draining", n.Draining))
	}
	return fmt.Sprintf("no routable instance of %d (%s)", len(sv.Instances), strings.Join(parts, ", "))
}

func orNone(reason string) string {
	if reason == "" {
		return "(no reason given)"
	}
	return reason
}

// failingChecks lists the non-passing checks of the first few instances
// that have any.
func failingChecks(sv *schema.Service) []FailingCheck {
	var out []FailingCheck
	seen := 0
	for _, in := range sv.Instances {
		had := false
		for _, c := range in.Health.Checks {
			if c.Status == health.Passing {
				continue
			}
			had = true
			out = append(out, FailingCheck{Instance: in.ID, Check: c.Name, Kind: c.Kind, Status: c.Status, Output: c.Output})
		}
		if had {
			if seen++; seen == maxCheckInstances {
				break
			}
		}
	}
	return out
}

// Node returns the named node, or nil.
func (g *Graph) Node(name string) *Node {
	i, ok := g.index[name]
	if !ok {
		return nil
	}
	return &g.Nodes[i]
}

// lookup returns the index of name, or an error naming it.
func (g *Graph) lookup(name string) (int, error) {
	i, ok := g.index[name]
	if !ok {
		return 0, &UnknownError{Service: name}
	}
	return i, nil
}

// UnknownError is returned for a service the graph does not hold: not
// registered, and nothing depends on it.
type UnknownError struct{ Service string }

func (e *UnknownError) Error() string {
	return fmt.Sprintf("graph: service %q is not registered and nothing depends on it", e.Service)
}

// names returns the sorted names of the node set.
func (g *Graph) names(set []bool) []string {
	out := []string{}
	for i, in := range set {
		if in {
			out = append(out, g.Nodes[i].Name) // Nodes are sorted
		}
	}
	return out
}

// Dependencies returns the services name depends on directly, sorted
// (empty when name is unknown).
func (g *Graph) Dependencies(name string) []string {
	if n := g.Node(name); n != nil {
		return slices.Clone(n.DependsOn)
	}
	return []string{}
}

// Dependents returns the services that depend on name directly, sorted
// (empty when name is unknown).
func (g *Graph) Dependents(name string) []string {
	if n := g.Node(name); n != nil {
		return slices.Clone(n.Dependents)
	}
	return []string{}
}
