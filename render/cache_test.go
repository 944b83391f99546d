package render_test

import (
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/rewire/rewire/render"
)

// cachedTmpl renders each service through a cached block that also reads
// a key, so that both kinds of dependency invalidate the cache, and each
// instance through a block keyed by the instance, which reads a key too.
const cachedTmpl = `{{ range services }}{{ cachedTemplate "svc" .Name }}{{ end }}
{{- define "svc" }}
[{{ . }} weight={{ keyOrDefault (printf "app/%s/weight" .) "1" }}]
{{- range instances . }}{{ cachedTemplate "inst" . }}{{ end }}
{{ end }}
{{- define "inst" }} {{ .ID }}={{ .Health.Shallow }}{{ if .Maintenance }}/maint{{ end }}/{{ keyOrDefault (printf "app/%s/tag" .ID) "-" }}{{ end }}`

// TestCachedTemplateMatchesUncached applies a random sequence of changes
// and checks after each one that the Target's output (with cached blocks)
// equals an uncached render of the same snapshot.
func TestCachedTemplateMatchesUncached(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	services := []string{"a", "b", "c", "d"}
	src := newMemSource(t, map[string]string{})
	tg := mkTarget(t, "cached", cachedTmpl, render.TargetConfig{}, render.Options{})
	plain, err := render.Parse("plain.tmpl", cachedTmpl)
	if err != nil {
		t.Fatal(err)
	}
	statuses := []string{"passing", "warning", "critical"}
	for step := range 300 {
		svc := services[rng.IntN(len(services))]
		id := fmt.Sprintf("%s-%d", svc, rng.IntN(4))
		var kv map[string]string
		var dels []string
		switch rng.IntN(6) {
		case 0, 1:
			k, v := rec(svc, id, statuses[rng.IntN(3)])
			kv = map[string]string{k: v}
		case 2:
			dels = []string{"/rewire/services/" + svc + "/" + id}
		case 3:
			kv = map[string]string{"/rewire/app/" + svc + "/weight": fmt.Sprint(rng.IntN(3))}
		case 4:
			kv = map[string]string{"/rewire/app/" + id + "/tag": fmt.Sprint(rng.IntN(3))}
		case 5:
			if rng.IntN(2) == 0 {
				kv = map[string]string{keys.Maintenance(svc, id): "{}"}
			} else {
				dels = []string{keys.Maintenance(svc, id)}
			}
		}
		snap := src.change(t, kv, dels...)
		got, err := tg.Render(snap)
		if err != nil {
			t.Fatalf("step %d: Render: %v", step, err)
		}
		want, err := render.Execute(plain, snap, keys)
		if err != nil {
			t.Fatalf("step %d: Execute: %v", step, err)
		}
		if string(got) != string(want) {
			t.Fatalf("step %d (change %v, delete %v): cached render =\n%s\nwant\n%s", step, kv, dels, got, want)
		}
	}
}
