package graph_test

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"html"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/rewire/rewire/graph"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata")

// everyState is a registry whose graph has a node in every state, a
// missing service, a cycle and a maintenance entry.
func everyState(t testing.TB) *graph.Graph {
	return graph.Build(registry(t,
		"web/w1 deps=api,cache deep=critical", "web/w2 deps=api,cache deep=critical",
		"api/a1 deps=db deep=critical",
		"db/d1 shallow=critical",
		"search/s1", "search/s2 shallow=warning", "maint search/s2 reindex \"full\"",
		"p/p1 deps=q", "q/q1 deps=p",
		"expect api 2",
	))
}

// dotBinary returns the path of Graphviz's dot: skipped loudly when it is
// missing, failed under CI (which installs it).
func dotBinary(t *testing.T) string {
	t.Helper()
	p, err := exec.LookPath("dot")
	if err == nil {
		return p
	}
	if os.Getenv("CI") != "" {
		t.Fatal("graphviz is not installed, and $CI is set: install it (Debian: apt-get install graphviz)")
	}
	t.Skip("*** SKIPPING: graphviz (dot) is not installed ***")
	return ""
}

func TestDOTAcceptedByGraphviz(t *testing.T) {
	dot := dotBinary(t)
	g := everyState(t)
	var src bytes.Buffer
	if err := g.WriteDOT(&src); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(dot, "-Tsvg")
	cmd.Stdin = bytes.NewReader(src.Bytes())
	var svg, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &svg, &stderr
	if err := cmd.Run(); err != nil || stderr.Len() > 0 {
		t.Fatalf("dot -Tsvg: %v, stderr:\n%s\ninput:\n%s", err, stderr.String(), src.String())
	}
	// Graphviz writes '-' in ids as &#45;: compare what a browser sees.
	out := html.UnescapeString(svg.String())
	for _, n := range g.Nodes {
		if !strings.Contains(out, fmt.Sprintf(`id="svc-%s" class="node svc %s"`, n.Name, n.State)) {
			t.Errorf("SVG has no element with id svc-%s and class %q:\n%s", n.Name, "svc "+n.State, out)
		}
	}
	for _, e := range g.Edges {
		if !strings.Contains(out, fmt.Sprintf(`id="dep-%s-%s"`, e.From, e.To)) {
			t.Errorf("SVG has no edge dep-%s-%s", e.From, e.To)
		}
	}
}

// The mermaid output is checked against the grammar of the subset of
// mermaid's flowchart language that WriteMermaid emits, written out below.
// Mermaid's own flowchart parser ships only inside the full `mermaid` npm
// package, which needs a browser DOM (DOMPurify, d3) to load and brings
// hundreds of npm packages into CI; its standalone `@mermaid-js/parser`
// does not cover flowcharts. A grammar of our subset keeps the test
// offline and exact about what we promise.
var (
	mmNode     = regexp.MustCompile(`^    (n[0-9]+)\["([^"\n]*)"\]$`)
	mmEdge     = regexp.MustCompile(`^    (n[0-9]+) --> (n[0-9]+)$`)
	mmClassDef = regexp.MustCompile(`^    classDef ([a-z]+) ([a-z-]+:[#0-9a-zA-Z.]+(?:,[a-z-]+:[#0-9a-zA-Z.]+)*)$`)
	mmClass    = regexp.MustCompile(`^    class (n[0-9]+(?:,n[0-9]+)*) ([a-z]+)$`)
	// Inside a label: text, entity codes (#quot; #35;) and <br/>.
	mmLabel = regexp.MustCompile(`^(?:[^"<>#]|#[a-z0-9]+;|<br/>)*$`)
)

// parseMermaid checks src against the subset's grammar: a "flowchart LR"
// header, then node, edge, classDef and class statements, every id and
// class used being declared.
func parseMermaid(src string) error {
	lines := strings.Split(strings.TrimSuffix(src, "\n"), "\n")
	if lines[0] != "flowchart LR" {
		return fmt.Errorf("line 1: want header %q, got %q", "flowchart LR", lines[0])
	}
	nodes, classes := map[string]bool{}, map[string]bool{}
	var uses []string // "line N: id" of every reference, checked at the end
	for i, l := range lines[1:] {
		at := fmt.Sprintf("line %d", i+2)
		if m := mmNode.FindStringSubmatch(l); m != nil {
			if !mmLabel.MatchString(m[2]) {
				return fmt.Errorf("%s: bad label %q", at, m[2])
			}
			if nodes[m[1]] {
				return fmt.Errorf("%s: node %s declared twice", at, m[1])
			}
			nodes[m[1]] = true
		} else if m := mmEdge.FindStringSubmatch(l); m != nil {
			uses = append(uses, at+" "+m[1], at+" "+m[2])
		} else if m := mmClassDef.FindStringSubmatch(l); m != nil {
			classes[m[1]] = true
		} else if m := mmClass.FindStringSubmatch(l); m != nil {
			if !classes[m[2]] {
				return fmt.Errorf("%s: class %s used before its classDef", at, m[2])
			}
			for id := range strings.SplitSeq(m[1], ",") {
				uses = append(uses, at+" "+id)
			}
		} else {
			return fmt.Errorf("%s: not a statement of the subset: %q", at, l)
		}
	}
	for _, u := range uses {
		at, id, _ := strings.Cut(u, " n")
		if !nodes["n"+id] {
			return fmt.Errorf("%s: undeclared node n%s", at, id)
		}
	}
	return nil
}

func TestMermaidParses(t *testing.T) {
	g := everyState(t)
	var src bytes.Buffer
	if err := g.WriteMermaid(&src); err != nil {
		t.Fatal(err)
	}
	if err := parseMermaid(src.String()); err != nil {
		t.Fatalf("mermaid output does not parse: %v\n%s", err, src.String())
	}
	for _, n := range g.Nodes {
		if !strings.Contains(src.String(), `["`+n.Name+"<br/>") {
			t.Errorf("mermaid output has no node labelled %s:\n%s", n.Name, src.String())
		}
	}
	if got := strings.Count(src.String(), " --> "); got != len(g.Edges) {
		t.Errorf("mermaid output has %d edges, want %d", got, len(g.Edges))
	}
}

// The grammar check must be able to fail.
func TestParseMermaidRejects(t *testing.T) {
	for _, src := range []string{
		"graph TD\n    n0[\"a\"]\n",
		"flowchart LR\n    n0[\"a\"b\"]\n",
		"flowchart LR\n    n0[\"a\"]\n    n0 --> n1\n",
		"flowchart LR\n    n0[\"a\"]\n    class n0 root\n",
		"flowchart LR\n    web.api[\"a\"]\n",
		"flowchart LR\n    n0[\"a<script>\"]\n",
	} {
		if err := parseMermaid(src); err == nil {
			t.Errorf("parseMermaid(%q) = nil, want an error", src)
		}
	}
}

func TestJSONGolden(t *testing.T) {
	g := everyState(t)
	got, err := json.MarshalIndent(g, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	golden := filepath.Join("testdata", "every-state.golden.json")
	if *update {
		if err := os.WriteFile(golden, append(got, '\n'), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatalf("%v (run go test ./graph -update to create it)", err)
	}
	if string(want) != string(got)+"\n" {
		t.Errorf("JSON graph differs from %s (go test ./graph -update rewrites it):\n%s", golden, got)
	}
}

func TestText(t *testing.T) {
	var b bytes.Buffer
	if err := everyState(t).WriteText(&b); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"SERVICE  STATE     INSTANCES",
		"db       root      0/1 routable",
		"cache    missing   missing",
		"api      waiting   1/1 routable, 1 of 2 reporting",
		"search   degraded  1/2 routable, 1 in maintenance",
		"cycle: p → q → p",
	} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("WriteText: no line containing %q in\n%s", want, b.String())
		}
	}
}

// Every layout the page may pick is one Graphviz runs.
func TestLayoutTiersAcceptedByGraphviz(t *testing.T) {
	dot := dotBinary(t)
	for _, tc := range []struct {
		services int
		engine   string
	}{{10, "dot"}, {100, "dot"}, {300, "sfdp"}} {
		g := graph.Build(large(t, tc.services, 2*tc.services))
		l := g.LayoutFor()
		if l.Engine != tc.engine {
			t.Errorf("LayoutFor(%d services) engine = %s, want %s", tc.services, l.Engine, tc.engine)
		}
		var src bytes.Buffer
		if err := g.WriteDOT(&src, l.Attrs...); err != nil {
			t.Fatal(err)
		}
		cmd := exec.Command(dot, "-K"+l.Engine, "-Tsvg", "-o", os.DevNull)
		cmd.Stdin = &src
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Errorf("%d services: dot -K%s %v: %v\n%s", tc.services, l.Engine, l.Attrs, err, out)
		}
	}
}
