package render_test

import (
	"fmt"
	"testing"
	"testing/synctest"

	"github.com/rewire/rewire/render"
)

// dep returns the key and record of a passing instance of svc that
// depends on deps.
func dep(svc, id string, deps ...string) (string, string) {
	b := fmt.Sprintf(`{"v":1,"service":%q,"id":%q,"address":"10.0.0.1","port":80,"depends_on":[%s],"health":{"shallow":"passing"}}`,
		svc, id, joinQuoted(deps))
	return keys.Instance(svc, id), b
}

func joinQuoted(ss []string) string {
	out := ""
	for i, s := range ss {
		if i > 0 {
			out += ","
		}
		out += fmt.Sprintf("%q", s)
	}
	return out
}

// graphKV is web → api, cache; api → db; admin; two web instances
// declaring different dependencies (the service depends on the union).
func graphKV() map[string]string {
	kv := map[string]string{}
	for _, r := range [][]string{
		{"web", "web-1", "api"}, {"web", "web-2", "api", "cache"},
		{"api", "api-1", "db"}, {"db", "db-1"}, {"admin", "admin-1"},
	} {
		k, v := dep(r[0], r[1], r[2:]...)
		kv[k] = v
	}
	return kv
}

func TestDependencyFuncs(t *testing.T) {
	snap, _ := snapshot(t, graphKV())
	for _, tc := range []struct{ text, want string }{
		{`{{ dependencies "web" | join "," }}`, "api,cache"},
		{`{{ dependencies "api" | join "," }}`, "db"},
		{`{{ dependencies "db" | len }}`, "0"},
		{`{{ dependencies "nope" | len }}`, "0"},
		{`{{ dependents "db" | join "," }}`, "api"},
		{`{{ dependents "api" | join "," }}`, "web"},
		{`{{ dependents "cache" | join "," }}`, "web"},
		{`{{ dependents "web" | len }}`, "0"},
		{`{{ range dependents "api" }}{{ range service . }}{{ .ID }} {{ end }}{{ end }}`, "web-1 web-2 "},
	} {
		tmpl, err := render.Parse("t.tmpl", tc.text)
		if err != nil {
			t.Fatalf("Parse(%q): %v", tc.text, err)
		}
		out, err := render.Execute(tmpl, snap, keys)
		if err != nil || string(out) != tc.want {
			t.Errorf("Render(%q) = %q, %v; want %q", tc.text, out, err, tc.want)
		}
	}
}

// TestDependencyFuncsDeps: a template using them re-renders when an edge
// it reads may have changed, and only then.
func TestDependencyFuncsDeps(t *testing.T) {
	const (
		depsTmpl  = `{{ dependencies "web" | join "," }}`
		usersTmpl = `{{ dependents "db" | join "," }}`
	)
	with := func(svc, id string, deps ...string) map[string]string {
		k, v := dep(svc, id, deps...)
		return map[string]string{k: v}
	}
	for _, tc := range []struct {
		name   string
		tmpl   string
		put    map[string]string
		render bool
	}{
		{"dependencies: another service changes its edges", depsTmpl, with("api", "api-1", "db", "queue"), false},
		{"dependencies: the service changes its edges", depsTmpl, with("web", "web-1", "api", "search"), true},
		{"dependents: a new service depends on it", usersTmpl, with("report", "report-1", "db"), true},
		{"dependents: a dependent drops the edge", usersTmpl, with("api", "api-1"), true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				m, reg := newMetrics()
				src := newMemSource(t, graphKV())
				tg := mkTarget(t, "g", tc.tmpl, render.TargetConfig{}, render.Options{Metrics: m})
				startRunner(t, render.RunnerOptions{Source: src, Targets: []*render.Target{tg}})
				synctest.Wait()
				if st := tg.Status(); st.Error != "" {
					t.Fatalf("first render: %s", st.Error)
				}
				applied := applies(t, reg, "g")
				src.change(t, tc.put)
				synctest.Wait()
				if got := applies(t, reg, "g") - applied; (got == 1) != tc.render {
					t.Errorf("after the change: %d renders, want rendered=%v", got, tc.render)
				}
			})
		})
	}
}
