package graph_test

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/rewire/rewire/graph"
)

// whyString is a diagnosis in one line: "healthy", or per root "db via
// web>api>db, waited on by api,web".
func whyString(d graph.Diagnosis) string {
	if d.Healthy {
		return "healthy"
	}
	var parts []string
	for _, r := range d.Roots {
		s := fmt.Sprintf("%s via %s, waited on by %s", r.Service, strings.Join(r.Chain, ">"), strings.Join(r.Waiting, ","))
		if r.Cycle != nil {
			s += " in cycle " + graph.FormatCycle(r.Cycle)
		}
		parts = append(parts, s)
	}
	return strings.Join(parts, "; ")
}

func orderString(g *graph.Graph) string {
	stages, err := g.Order()
	if err != nil {
		return "error: " + err.Error()
	}
	var parts []string
	for _, s := range stages {
		parts = append(parts, strings.Join(s, ","))
	}
	return strings.Join(parts, " | ")
}

func TestGraph(t *testing.T) {
	tests := []struct {
		name     string
		registry []string
		shape    string
		order    string
		impact   map[string]string // service → sorted impact set
		why      map[string]string // service → whyString
		roots    []string          // Roots(), as Grouping lines
	}{
		{
			name: "chain, the bottom fails",
			registry: []string{
				"web/w1 deps=api deep=critical",
				"api/a1 deps=db deep=critical",
				"db/d1 shallow=critical",
			},
			shape:  "api:waiting db:root web:waiting | api>db web>api",
			order:  "db | api | web",
			impact: map[string]string{"db": "api,web", "api": "web", "web": ""},
			why: map[string]string{
				"web": "db via web>api>db, waited on by api,web",
				"api": "db via api>db, waited on by api,web",
				"db":  "db via db, waited on by api,web",
			},
			roots: []string{"2 services wait on db (no routable instance of 1 (1 shallow critical)): api, web"},
		},
		{
			name: "chain, all healthy",
			registry: []string{
				"web/w1 deps=api", "api/a1 deps=db", "db/d1", "db/d2",
			},
			shape:  "api:healthy db:healthy web:healthy | api>db web>api",
			order:  "db | api | web",
			impact: map[string]string{"db": "api,web"},
			why:    map[string]string{"web": "healthy", "db": "healthy"},
			roots:  nil,
		},
		{
			name: "diamond",
			registry: []string{
				"web/w1 deps=api,auth deep=critical",
				"api/a1 deps=db deep=critical",
				"auth/u1 deps=db deep=critical",
				"db/d1 shallow=critical", "db/d2 shallow=critical",
			},
			shape:  "api:waiting auth:waiting db:root web:waiting | api>db auth>db web>api web>auth",
			order:  "db | api,auth | web",
			impact: map[string]string{"db": "api,auth,web", "auth": "web"},
			why: map[string]string{
				"web":  "db via web>api>db, waited on by api,auth,web",
				"auth": "db via auth>db, waited on by api,auth,web",
			},
			roots: []string{"3 services wait on db (no routable instance of 2 (2 shallow critical)): api, auth, web"},
		},
		{
			name: "diamond, one side down on its own",
			registry: []string{
				"web/w1 deps=api,auth deep=critical",
				"api/a1 deps=db",
				"auth/u1 deps=db shallow=critical",
				"db/d1",
			},
			shape:  "api:healthy auth:root db:healthy web:waiting | api>db auth>db web>api web>auth",
			order:  "db | api,auth | web",
			impact: map[string]string{"db": "api,auth,web"},
			why: map[string]string{
				"web": "auth via web>auth, waited on by web",
				"api": "healthy",
			},
			roots: []string{"1 service waits on auth (no routable instance of 1 (1 shallow critical)): web"},
		},
		{
			name: "cycle",
			registry: []string{
				"a/a1 deps=b deep=critical",
				"b/b1 deps=c shallow=critical",
				"c/c1 deps=a deep=critical",
				"d/d1 deps=a deep=critical",
				"e/e1",
			},
			shape:  "a:waiting b:root c:waiting d:waiting e:healthy | a>b b>c c>a d>a",
			order:  "error: graph: dependency cycle: a → b → c → a",
			impact: map[string]string{"a": "b,c,d", "e": ""},
			why: map[string]string{
				"d": "b via d>a>b, waited on by a,c,d in cycle a → b → c → a",
				"e": "healthy",
			},
			roots: []string{"3 services wait on b (no routable instance of 1 (1 shallow critical)): a, c, d"},
		},
		{
			name: "self-dependency and a second cycle",
			registry: []string{
				"x/x1 deps=x", "p/p1 deps=q", "q/q1 deps=p",
			},
			shape:  "p:healthy q:healthy x:healthy | p>q q>p x>x",
			order:  "error: graph: dependency cycle: p → q → p; x → x",
			impact: map[string]string{"x": "", "p": "q"},
			why:    map[string]string{"x": "healthy"},
		},
		{
			name: "missing services",
			registry: []string{
				"web/w1 deps=api,cache deep=critical",
				"api/a1 deps=queue deep=critical",
			},
			shape:  "api:waiting cache:missing queue:missing web:waiting | api>queue web>api web>cache",
			order:  "cache,queue | api | web",
			impact: map[string]string{"cache": "web", "queue": "api,web"},
			why: map[string]string{
				"web":   "cache via web>cache, waited on by web; queue via web>api>queue, waited on by api,web",
				"queue": "queue via queue, waited on by api,web",
			},
			roots: []string{
				"2 services wait on queue (not registered): api, web",
				"1 service waits on cache (not registered): web",
			},
		},
		{
			name: "maintenance",
			registry: []string{
				"web/w1 deps=db deep=critical",
				"report/r1 deps=db,search",
				"db/d1", "db/d2", "maint db nightly backup",
				"search/s1", "search/s2", "maint search/s1 reindex",
			},
			shape:  "db:root report:healthy search:degraded web:waiting | report>db report>search web>db",
			order:  "db,search | report,web",
			impact: map[string]string{"db": "report,web", "search": "report"},
			why: map[string]string{
				"web":    "db via web>db, waited on by web",
				"search": "healthy",
				// report's own instance still passes: its record was not
				// rewritten yet, and the graph reads the records.
				"report": "healthy",
			},
			roots: []string{"1 service waits on db (service in maintenance: nightly backup): web"},
		},
		{
			name: "draining and expectations",
			registry: []string{
				"web/w1 draining", "web/w2 draining", "expect web 3",
				"api/a1", "api/a2", "expect api 2",
				"lb/l1 deps=web,api deep=critical",
			},
			shape:  "api:healthy lb:waiting web:root | lb>api lb>web",
			order:  "api,web | lb",
			impact: map[string]string{"web": "lb"},
			why:    map[string]string{"lb": "web via lb>web, waited on by lb"},
			roots:  []string{"1 service waits on web (no routable instance of 2 (2 draining)): lb"},
		},
		{
			name: "an own deep check fails while dependencies are fine",
			registry: []string{
				"web/w1 deps=api deep=critical", "api/a1",
			},
			shape:  "api:healthy web:root | web>api",
			order:  "api | web",
			why:    map[string]string{"web": "web via web, waited on by "},
			roots:  []string{"web is unhealthy (deep checks critical on every routable instance (1)); nothing waits on it"},
			impact: map[string]string{"api": "web"},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			g := graph.Build(registry(t, tc.registry...))
			if got := describe(g); got != tc.shape {
				t.Errorf("Build = %q, want %q", got, tc.shape)
			}
			if got := orderString(g); got != tc.order {
				t.Errorf("Order = %q, want %q", got, tc.order)
			}
			for svc, want := range tc.impact {
				got, err := g.Impact(svc)
				if err != nil || strings.Join(got, ",") != want {
					t.Errorf("Impact(%q) = %q, %v; want %q", svc, got, err, want)
				}
			}
			for svc, want := range tc.why {
				d, err := g.Why(svc)
				if err != nil {
					t.Fatalf("Why(%q): %v", svc, err)
				}
				if got := whyString(d); got != want {
					t.Errorf("Why(%q) = %q, want %q", svc, got, want)
				}
			}
			var roots []string
			for _, c := range g.Roots() {
				roots = append(roots, c.Grouping())
			}
			if strings.Join(roots, "\n") != strings.Join(tc.roots, "\n") {
				t.Errorf("Roots =\n%s\nwant\n%s", strings.Join(roots, "\n"), strings.Join(tc.roots, "\n"))
			}
		})
	}
}

func TestNodeCounts(t *testing.T) {
	g := graph.Build(registry(t,
		"web/w1", "web/w2 shallow=warning", "web/w3 shallow=critical", "web/w4 draining",
		"maint web/w1", "expect web 5",
	))
	n := g.Node("web")
	want := graph.Node{Name: "web", Instances: 4, Expect: 5, Routable: 1,
		Shallow: graph.Counts{Passing: 2, Warning: 1, Critical: 1}, Deep: graph.Counts{Passing: 2, Warning: 1, Critical: 1},
		Maintenance: 1, Draining: 1, Status: "warning", Healthy: true, State: "degraded"}
	got := *n
	got.DependsOn, got.Dependents = nil, nil
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("Node(web) = %+v\nwant %+v", got, want)
	}
	if r := n.Reporting(); r != "4 of 5 reporting" {
		t.Errorf("Reporting() = %q, want %q", r, "4 of 5 reporting")
	}
	if l := n.Label(); l != "1/4 routable, 4 of 5 reporting, 1 in maintenance, 1 draining" {
		t.Errorf("Label() = %q", l)
	}
}

func TestWhyFailingChecks(t *testing.T) {
	g := graph.Build(registry(t, "web/w1 deps=db deep=critical", "db/d1 shallow=critical", "db/d2 shallow=critical"))
	d, err := g.Why("web")
	if err != nil {
		t.Fatal(err)
	}
	if len(d.Roots) != 1 {
		t.Fatalf("Why(web).Roots = %+v, want one", d.Roots)
	}
	var got []string
	for _, c := range d.Roots[0].Checks {
		got = append(got, c.Instance+" "+c.Check+" "+string(c.Status)+": "+c.Output)
	}
	want := "d1 http critical: connection refused\nd2 http critical: connection refused"
	if strings.Join(got, "\n") != want {
		t.Errorf("Why(web) root checks =\n%s\nwant\n%s", strings.Join(got, "\n"), want)
	}
	if want := "web is unhealthy: it waits on db; root cause: db"; d.Summary != want {
		t.Errorf("Why(web).Summary = %q, want %q", d.Summary, want)
	}
}

func TestGrouping(t *testing.T) {
	lines := []string{"db/d1 shallow=critical"}
	for i := range 12 {
		lines = append(lines, fmt.Sprintf("app%02d/i deps=db deep=critical", i))
	}
	g := graph.Build(registry(t, lines...))
	roots := g.Roots()
	if len(roots) != 1 || len(roots[0].Waiting) != 12 {
		t.Fatalf("Roots() = %+v, want db with 12 waiting", roots)
	}
	want := "12 services wait on db (no routable instance of 1 (1 shallow critical)): app00, app01, app02, app03, app04, app05, app06, app07, app08, app09 and 2 more"
	if got := roots[0].Grouping(); got != want {
		t.Errorf("Grouping() = %q, want %q", got, want)
	}
}

func TestNeighbourhood(t *testing.T) {
	g := graph.Build(registry(t, "web/w1 deps=api", "api/a1 deps=db,cache", "db/d1", "cache/c1", "admin/x1 deps=api"))
	for _, tc := range []struct{ service, want string }{
		{"api", "admin:healthy api:healthy cache:healthy db:healthy web:healthy | admin>api api>cache api>db web>api"},
		{"web", "api:healthy web:healthy | web>api"},
		{"db", "api:healthy db:healthy | api>db"},
	} {
		sub, err := g.Neighbourhood(tc.service)
		if err != nil {
			t.Fatalf("Neighbourhood(%q): %v", tc.service, err)
		}
		if got := describe(sub); got != tc.want {
			t.Errorf("Neighbourhood(%q) = %q, want %q", tc.service, got, tc.want)
		}
	}
	up, _ := g.Upstream("web")
	if strings.Join(up, ",") != "api,cache,db" {
		t.Errorf("Upstream(web) = %q, want api,cache,db", up)
	}
}

func TestUnknownService(t *testing.T) {
	g := graph.Build(registry(t, "web/w1"))
	var ue *graph.UnknownError
	if _, err := g.Why("nope"); !errors.As(err, &ue) || ue.Service != "nope" {
		t.Errorf("Why(nope) error = %v, want *UnknownError naming nope", err)
	}
	if _, err := g.Impact("nope"); !errors.As(err, &ue) {
		t.Errorf("Impact(nope) error = %v, want *UnknownError", err)
	}
	if _, err := g.Neighbourhood("nope"); !errors.As(err, &ue) {
		t.Errorf("Neighbourhood(nope) error = %v, want *UnknownError", err)
	}
	if d := g.Dependencies("nope"); d == nil || len(d) != 0 {
		t.Errorf("Dependencies(nope) = %#v, want empty", d)
	}
}
