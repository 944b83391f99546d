package render_test

import (
	"maps"
	"path/filepath"
	"testing"
	"testing/synctest"
	"time"

	"github.com/rewire/rewire/render"
)

// TestDepsSkipChangesNotRead runs a template, makes one registry change,
// and checks whether the Runner rendered again or skipped it (counted in
// templater_renders_skipped_total, with the destination untouched).
func TestDepsSkipChangesNotRead(t *testing.T) {
	base := fleet(2, "web", "api")
	maps.Copy(base, map[string]string{
		"/rewire/app/msg":         "hi",
		"/rewire/app/other":       "x",
		"/rewire/app/list/a":      "1",
		"/rewire/app/list/sub/b":  "2",
		"/rewire/app/listing":     "sibling of the list prefix",
		"/rewire/app/unrelated/z": "z",
	})
	webCritical := func() map[string]string { k, v := rec("web", "web-1", "critical"); return map[string]string{k: v} }
	apiCritical := func() map[string]string { k, v := rec("api", "api-1", "critical"); return map[string]string{k: v} }
	const (
		webTmpl      = `{{ range service "web" }}{{ .ID }} {{ end }}`
		instTmpl     = `{{ range instances "web" }}{{ .ID }} {{ end }}`
		keyTmpl      = `{{ key "app/msg" }}`
		optTmpl      = `{{ keyOrDefault "app/flag" "off" }}`
		lsTmpl       = `{{ range ls "app/list" }}{{ .Key }}={{ .Value }} {{ end }}`
		treeTmpl     = `{{ range tree "app/list" }}{{ .Key }}={{ .Value }} {{ end }}`
		servicesTmpl = `{{ range services }}{{ .Name }} {{ end }}`
	)
	tests := []struct {
		name   string
		tmpl   string
		put    map[string]string
		del    []string
		render bool
	}{
		{name: "service: another service changes", tmpl: webTmpl, put: apiCritical(), render: false},
		{name: "service: another service appears", tmpl: webTmpl, put: fleet(1, "db"), render: false},
		{name: "service: a key changes", tmpl: webTmpl, put: map[string]string{"/rewire/app/msg": "new"}, render: false},
		{name: "service: its health changes", tmpl: webTmpl, put: webCritical(), render: true},
		{name: "service: an instance is added", tmpl: webTmpl, put: fleet(3, "web"), render: true},
		{name: "service: an instance is removed", tmpl: webTmpl, del: instKeys("web", 2), render: true},
		{name: "service: it goes into maintenance", tmpl: webTmpl, put: map[string]string{keys.Maintenance("web", ""): `{"reason":"x"}`}, render: true},
		{name: "service: its expected count changes", tmpl: webTmpl, put: map[string]string{keys.Expect("web"): `{"instances":3}`}, render: true},
		{name: "service: read while absent, then appears", tmpl: `{{ len (service "db") }}`, put: fleet(1, "db"), render: true},
		{name: "instances: another service changes", tmpl: instTmpl, put: apiCritical(), render: false},
		{name: "instances: its health changes", tmpl: instTmpl, put: webCritical(), render: true},
		{name: "key: another key changes", tmpl: keyTmpl, put: map[string]string{"/rewire/app/other": "y"}, render: false},
		{name: "key: a service changes", tmpl: keyTmpl, put: webCritical(), render: false},
		{name: "key: it changes", tmpl: keyTmpl, put: map[string]string{"/rewire/app/msg": "new"}, render: true},
		{name: "key: it is rewritten with the same value", tmpl: keyTmpl, put: map[string]string{"/rewire/app/msg": "hi"}, render: false},
		{name: "keyOrDefault: missing key appears", tmpl: optTmpl, put: map[string]string{"/rewire/app/flag": "on"}, render: true},
		{name: "keyOrDefault: missing key stays missing", tmpl: optTmpl, put: map[string]string{"/rewire/app/flags": "on"}, render: false},
		{name: "keyOrDefault: key deleted", tmpl: `{{ keyOrDefault "app/msg" "none" }}`, del: []string{"/rewire/app/msg"}, render: true},
		{name: "ls: key added under the prefix", tmpl: lsTmpl, put: map[string]string{"/rewire/app/list/c": "3"}, render: true},
		{name: "ls: nested key changed (listed, though not shown)", tmpl: lsTmpl, put: map[string]string{"/rewire/app/list/sub/b": "3"}, render: true},
		{name: "ls: key deleted under the prefix", tmpl: lsTmpl, del: []string{"/rewire/app/list/a"}, render: true},
		{name: "ls: sibling key with the same leading text", tmpl: lsTmpl, put: map[string]string{"/rewire/app/listing": "y"}, render: false},
		{name: "ls: key elsewhere", tmpl: lsTmpl, put: map[string]string{"/rewire/app/unrelated/z": "y"}, render: false},
		{name: "tree: nested key changed", tmpl: treeTmpl, put: map[string]string{"/rewire/app/list/sub/b": "3"}, render: true},
		{name: "ls: prefix read while empty, then a key appears", tmpl: `{{ range ls "app/new" }}{{ .Key }}{{ end }}`, put: map[string]string{"/rewire/app/new/k": "v"}, render: true},
		{name: "services: any service's health changes", tmpl: servicesTmpl, put: apiCritical(), render: true},
		{name: "services: a service appears", tmpl: servicesTmpl, put: fleet(1, "db"), render: true},
		{name: "services: a service disappears", tmpl: servicesTmpl, del: instKeys("api", 1, 2), render: true},
		{name: "services: a key changes", tmpl: servicesTmpl, put: map[string]string{"/rewire/app/msg": "new"}, render: false},
		{name: "nothing read from the registry", tmpl: "static\n", put: webCritical(), render: false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				m, reg := newMetrics()
				src := newMemSource(t, base)
				tg := mkTarget(t, "site", tc.tmpl, render.TargetConfig{}, render.Options{Metrics: m})
				startRunner(t, render.RunnerOptions{Source: src, Targets: []*render.Target{tg}})
				synctest.Wait()
				if st := tg.Status(); st.Error != "" {
					t.Fatalf("first render: %s", st.Error)
				}
				before := stat(t, tg.Destination())
				applied, skipped := applies(t, reg, "site"), skips(t, reg, "site")

				snap := src.change(t, tc.put, tc.del...)
				synctest.Wait()
				gotApplied, gotSkipped := applies(t, reg, "site")-applied, skips(t, reg, "site")-skipped
				if tc.render && (gotApplied != 1 || gotSkipped != 0) {
					t.Errorf("after the change: %d renders, %d skips; want the template rendered (1, 0)", gotApplied, gotSkipped)
				}
				if !tc.render {
					if gotApplied != 0 || gotSkipped != 1 {
						t.Errorf("after the change: %d renders, %d skips; want it skipped (0, 1)", gotApplied, gotSkipped)
					}
					if !before.same(t, tg.Destination()) {
						t.Errorf("a skipped change rewrote the destination")
					}
				}
				if st := tg.Status(); st.Revision != snap.Rev {
					t.Errorf("Status().Revision = %d, want %d (the file reflects the new snapshot either way)", st.Revision, snap.Rev)
				}
			})
		})
	}
}

// TestDepsTwoTemplatesReloadOnlyTheReader: a change to api re-renders and
// reloads only the template that reads api, and the other way round.
func TestDepsTwoTemplatesReloadOnlyTheReader(t *testing.T) {
	m, reg := newMetrics()
	src := newMemSource(t, fleet(2, "web", "api"))
	logs := t.TempDir()
	target := func(svc string) *render.Target {
		return mkTarget(t, svc, `{{ range service "`+svc+`" }}{{ .ID }} {{ .Address }}
{{ end }}`, render.TargetConfig{Reload: render.Shell("echo reload >> " + shq(filepath.Join(logs, svc)))}, render.Options{Metrics: m})
	}
	web, api := target("web"), target("api")
	startRunner(t, render.RunnerOptions{Source: src, Targets: []*render.Target{web, api}})
	reloads := func(svc string) int { return countLines(t, filepath.Join(logs, svc)) }
	waitUntil(t, 5*time.Second, "first reloads", func() bool { return reloads("web") == 1 && reloads("api") == 1 })
	health := map[string]string{"web": "passing", "api": "passing"}
	for i, svc := range []string{"api", "web", "api"} {
		other := map[string]string{"api": "web", "web": "api"}[svc]
		wantSvc, wantOther := reloads(svc)+1, reloads(other)
		skipped := skips(t, reg, other)
		health[svc] = map[string]string{"passing": "critical", "critical": "passing"}[health[svc]]
		k, v := rec(svc, svc+"-1", health[svc])
		rev := float64(src.change(t, map[string]string{k: v}).Rev)
		waitUntil(t, 5*time.Second, svc+" applied and "+other+" skipped", func() bool {
			return metricValue(t, reg, "templater_template_revision", "template", svc) == rev && skips(t, reg, other) == skipped+1
		})
		if got := reloads(svc); got != wantSvc {
			t.Errorf("change %d to %s: %s reloaded %d times, want %d", i, svc, svc, got, wantSvc)
		}
		if got := reloads(other); got != wantOther {
			t.Errorf("change %d to %s: %s reloaded %d times, want %d (it does not read %s)", i, svc, other, got, wantOther, svc)
		}
	}
	if got := metricValue(t, reg, "templater_renders_total"); got != 5 {
		t.Errorf("renders = %v, want 5 (2 first, 3 changes)", got)
	}
}
