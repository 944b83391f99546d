package graph

import (
	"bufio"
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"
)

// Label is a node's short description: "2/3 routable", plus "2 of 3
// reporting", "maintenance" or "missing" when they apply.
func (n *Node) Label() string {
	if n.Missing {
		return "missing"
	}
	parts := []string{fmt.Sprintf("%d/%d routable", n.Routable, n.Instances)}
	if r := n.Reporting(); r != "" {
		parts = append(parts, r)
	}
	if n.InMaintenance {
		parts = append(parts, "maintenance")
	} else if n.Maintenance > 0 {
		parts = append(parts, fmt.Sprintf("%d in maintenance", n.Maintenance))
	}
	if n.Draining > 0 {
		parts = append(parts, fmt.Sprintf("%d draining", n.Draining))
	}
	return strings.Join(parts, ", ")
}

func (c Counts) String() string {
	var parts []string
	for _, p := range []struct {
		n    int
		word string
	}{{c.Passing, "passing"}, {c.Warning, "warning"}, {c.Critical, "critical"}} {
		if p.n > 0 {
			parts = append(parts, fmt.Sprintf("%d %s", p.n, p.word))
		}
	}
	if len(parts) == 0 {
		return "-"
	}
	return strings.Join(parts, ", ")
}

// WriteText writes the graph as a table, one service a line, then its
// cycles.
func (g *Graph) WriteText(w io.Writer) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "SERVICE\tSTATE\tINSTANCES\tSHALLOW\tDEEP\tDEPENDS ON")
	for i := range g.Nodes {
		n := &g.Nodes[i]
		deps := strings.Join(n.DependsOn, ", ")
		if deps == "" {
			deps = "-"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", n.Name, n.State, n.Label(), n.Shallow, n.Deep, deps)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	for _, c := range g.Cycles {
		if _, err := fmt.Fprintf(w, "cycle: %s\n", FormatCycle(c)); err != nil {
			return err
		}
	}
	return nil
}

// Colours per state, shared by DOT and mermaid: fill, border.
var stateColours = map[string][2]string{
	"healthy":  {"#dff3e0", "#2e7d32"},
	"degraded": {"#fff4cc", "#b58900"},
	"waiting":  {"#fde2c8", "#d9730d"},
	"root":     {"#f8d0d0", "#c62828"},
	"missing":  {"#eeeeee", "#c62828"},
}

// dotID quotes s as a DOT string. Service names cannot hold quotes or
// backslashes, but labels built from operator text (a maintenance
// reason) might: escape both.
func dotID(s string) string { return `"` + dotEscaper.Replace(s) + `"` }

var dotEscaper = strings.NewReplacer(`\`, `\\`, `"`, `\"`, "\n", `\n`)

// WriteDOT writes the graph in Graphviz's DOT language. Each node's SVG
// element gets the id "svc-NAME" and the classes "svc STATE", each edge
// the id "dep-FROM-TO", so a page can style and find them. An edge points
// from a service to what it depends on. Attrs are extra graph attributes
// ("splines=line"), for example those of Layout.
func (g *Graph) WriteDOT(w io.Writer, attrs ...string) error {
	bw := bufio.NewWriter(w)
	fmt.Fprintln(bw, "digraph rewire {")
	fmt.Fprintln(bw, `  graph [`+strings.Join(append([]string{`rankdir=LR, nodesep=0.3, ranksep=0.6, fontname="Helvetica"`}, attrs...), ", ")+"];")
	fmt.Fprintln(bw, `  node [shape=box, style="rounded,filled", fontname="Helvetica", fontsize=11, penwidth=1.5];`)
	fmt.Fprintln(bw, `  edge [color="#777777", arrowsize=0.7];`)
	for i := range g.Nodes {
		n := &g.Nodes[i]
		col := stateColours[n.State]
		attrs := []string{
			"id=" + dotID("svc-"+n.Name),
			"class=" + dotID("svc "+n.State),
			"label=" + dotID(n.Name+"\n"+n.Label()),
			"fillcolor=" + dotID(col[0]),
			"color=" + dotID(col[1]),
		}
		if n.Root {
			attrs = append(attrs, "penwidth=3")
		}
		if n.Missing {
			attrs = append(attrs, `style="rounded,filled,dashed"`)
		}
		fmt.Fprintf(bw, "  %s [%s];\n", dotID(n.Name), strings.Join(attrs, ", "))
	}
	for _, e := range g.Edges {
		attrs := "id=" + dotID("dep-"+e.From+"-"+e.To)
		if to := g.Node(e.To); to != nil && !to.Healthy {
			attrs += `, color="#c62828"`
		}
		fmt.Fprintf(bw, "  %s -> %s [%s];\n", dotID(e.From), dotID(e.To), attrs)
	}
	fmt.Fprintln(bw, "}")
	return bw.Flush()
}

// WriteMermaid writes the graph as a mermaid flowchart. Nodes get ids
// n0, n1, ... (service names may hold dots and dashes, which mermaid reads
// as edge syntax) and quoted labels; states become classes.
func (g *Graph) WriteMermaid(w io.Writer) error {
	bw := bufio.NewWriter(w)
	fmt.Fprintln(bw, "flowchart LR")
	id := func(name string) string { return "n" + strconv.Itoa(g.index[name]) }
	byState := map[string][]string{}
	for i := range g.Nodes {
		n := &g.Nodes[i]
		fmt.Fprintf(bw, "    %s[\"%s<br/>%s\"]\n", id(n.Name), mermaidText(n.Name), mermaidText(n.Label()))
		byState[n.State] = append(byState[n.State], id(n.Name))
	}
	for _, e := range g.Edges {
		fmt.Fprintf(bw, "    %s --> %s\n", id(e.From), id(e.To))
	}
	for _, st := range []string{"healthy", "degraded", "waiting", "root", "missing"} {
		if len(byState[st]) == 0 {
			continue
		}
		col := stateColours[st]
		width := "1px"
		if st == "root" || st == "missing" {
			width = "3px"
		}
		fmt.Fprintf(bw, "    classDef %s fill:%s,stroke:%s,stroke-width:%s\n", st, col[0], col[1], width)
		fmt.Fprintf(bw, "    class %s %s\n", strings.Join(byState[st], ","), st)
	}
	return bw.Flush()
}

// mermaidText makes s safe inside a quoted mermaid label: quotes and the
// characters mermaid treats as markup become entity codes.
func mermaidText(s string) string { return mermaidEscaper.Replace(s) }

var mermaidEscaper = strings.NewReplacer(`"`, "#quot;", "<", "#lt;", ">", "#gt;", "#", "#35;")

// Layout is how to lay a graph out with Graphviz in reasonable time: the
// engine and extra graph attributes for WriteDOT.
type Layout struct {
	Engine string
	Attrs  []string
}

// Size tiers of LayoutFor, in services. dot's layered layout reads best,
// but its crossing minimisation grows fast with the number of edges: on
// a dense registry (five dependencies a service) it takes seconds at 100
// services and minutes at 400 (measured in docs/PERFORMANCE.md).
const (
	layeredMax = 50  // dot with spline edges
	tunedMax   = 150 // dot with straight edges and fewer crossing-minimisation passes
)

// LayoutFor returns the layout for the graph's size: dot up to about a
// hundred services, then sfdp (force-directed, near-linear), which gives
// up the left-to-right layering to stay interactive. sfdp's overlap
// removal is "scale": the browser build of Graphviz has no triangulation
// library, and "prism" there falls back to a method a hundred times
// slower.
func (g *Graph) LayoutFor() Layout {
	switch n := len(g.Nodes); {
	case n <= layeredMax:
		return Layout{Engine: "dot"}
	case n <= tunedMax:
		return Layout{Engine: "dot", Attrs: []string{"splines=line", "mclimit=0.2", "nslimit=1"}}
	}
	return Layout{Engine: "sfdp", Attrs: []string{"overlap=scale", "splines=false"}}
}
