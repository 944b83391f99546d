package render

import (
	"context"
	"testing"

	"github.com/rewire/rewire/health"
	"github.com/rewire/rewire/registry/schema"
)

// TestCachedRangeKeepsNestedBlocks: a cached block nested in an element of
// a cachedRange stays cached while the element is reused, although the
// element does not run: a change to another instance of the service runs
// the service's block and its cachedRange again, and the nested block of
// every unchanged instance must survive the render.
func TestCachedRangeKeepsNestedBlocks(t *testing.T) {
	tmpl, err := Parse("t.tmpl", `{{ range services }}{{ cachedTemplate "svc" .Name }}{{ end }}
{{- define "svc" }}{{ cachedRange "nest" (instances .) }}{{ end }}
{{- define "nest" }}<{{ cachedTemplate "word" .ID }}:{{ .Health.Shallow }}>{{ end }}
{{- define "word" }}{{ . }}{{ end }}`)
	if err != nil {
		t.Fatal(err)
	}
	prog, cache := newProgram(tmpl), newBlockCache()
	x, _ := benchIndexIn(t, 3, 1)
	render := func(snap *schema.Snapshot, want string) {
		t.Helper()
		out, _, err := prog.execute(context.Background(), snap, benchKeys, cache, TargetConfig{}.limits())
		if err != nil || string(out) != want {
			t.Fatalf("render = %q, %v; want %q", out, err, want)
		}
	}
	flip := func(i int, st health.Status) *schema.Snapshot {
		svc, id := benchName(i, 1)
		if err := x.Put(benchKeys.Instance(svc, id), benchRecord(t, svc, id, i, st)); err != nil {
			t.Fatal(err)
		}
		return x.Snapshot(int64(i) + 10)
	}
	render(flip(2, health.Passing), "<i00000:passing><i00001:passing><i00002:passing>")
	k := blockKey{name: "word", key: "i00000"}
	first := cache.entries[k]
	if first == nil {
		t.Fatalf("no cached block %+v after the first render", k)
	}
	render(flip(1, health.Critical), "<i00000:passing><i00001:critical><i00002:passing>")
	render(flip(1, health.Passing), "<i00000:passing><i00001:passing><i00002:passing>")
	if got := cache.entries[k]; got != first {
		t.Errorf("cached block %+v = %p after two changes to another instance, want the first render's %p", k, got, first)
	}
}
