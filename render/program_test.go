package render

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/rewire/rewire/health"
	"github.com/rewire/rewire/registry/schema"
)

// TestProgramReusesBoundClones: a program keeps its bound clones between
// executions. Each execution must read its own snapshot and record its
// own dependencies, whether the clone is reused or several run at once.
func TestProgramReusesBoundClones(t *testing.T) {
	tmpl, err := Parse("t.tmpl", `{{ range instances "web" }}{{ .ID }}={{ .Health.Shallow }} {{ end }}{{ keyOrDefault "k" "-" }}`)
	if err != nil {
		t.Fatal(err)
	}
	p := newProgram(tmpl)
	x := schema.NewIndex(benchKeys)
	var snaps []*schema.Snapshot
	var wants []string
	for i := range 4 {
		st := health.Passing
		if i%2 == 1 {
			st = health.Critical
		}
		if err := x.Put(benchKeys.Instance("web", "w1"), benchRecord(t, "web", "w1", 1, st)); err != nil {
			t.Fatal(err)
		}
		if err := x.Put(benchKeys.Root()+"k", fmt.Appendf(nil, "v%d", i)); err != nil {
			t.Fatal(err)
		}
		snaps = append(snaps, x.Snapshot(int64(i+1)))
		wants = append(wants, fmt.Sprintf("w1=%s v%d", st, i))
	}
	check := func(i int) error {
		out, deps, err := p.execute(context.Background(), snaps[i], benchKeys, nil, TargetConfig{}.limits())
		if err != nil {
			return err
		}
		if string(out) != wants[i] {
			return fmt.Errorf("snapshot %d rendered %q, want %q", i, out, wants[i])
		}
		for j, s := range snaps {
			if changed := deps.Changed(s); changed != (j != i) {
				return fmt.Errorf("deps of snapshot %d: Changed(snapshot %d) = %v", i, j, changed)
			}
		}
		return nil
	}
	for round := range 3 {
		for i := range snaps {
			if err := check(i); err != nil {
				t.Fatalf("round %d: %v", round, err)
			}
		}
	}
	var wg sync.WaitGroup
	errs := make(chan error, 40)
	for k := range 40 {
		wg.Go(func() { errs <- check(k % len(snaps)) })
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
	if n := len(p.free); n == 0 || n > 2 {
		t.Errorf("program keeps %d bound clones, want 1 or 2", n)
	}
}

// TestReparseDuringRender replays a render that started with the old
// source and ends after Reparse: what it cached must not reach renders of
// the new source, and its commit must not mark the new source as applied.
func TestReparseDuringRender(t *testing.T) {
	dir := t.TempDir()
	src := filepath.Join(dir, "t.tmpl")
	const text = `{{ cachedTemplate "r" "web" }}{{ define "r" }}%s {{ . }};{{ end }}`
	if err := os.WriteFile(src, fmt.Appendf(nil, text, "OLD"), 0o644); err != nil {
		t.Fatal(err)
	}
	tg, err := NewTarget(TargetConfig{Name: "t", Source: src, Destination: filepath.Join(dir, "out")}, Options{Keys: benchKeys})
	if err != nil {
		t.Fatal(err)
	}
	snap := schema.NewIndex(benchKeys).Snapshot(1)
	old := tg.prog // the render in flight holds this one
	if err := os.WriteFile(src, fmt.Appendf(nil, text, "NEW"), 0o644); err != nil {
		t.Fatal(err)
	}
	if changed, err := tg.Reparse(); err != nil || !changed {
		t.Fatalf("Reparse() = %v, %v; want true, nil", changed, err)
	}
	out, deps, err := old.execute(context.Background(), snap, benchKeys, old.cache, TargetConfig{}.limits()) // the old render ends now
	if err != nil || string(out) != "OLD web;" {
		t.Fatalf("old render = %q, %v", out, err)
	}
	tg.tried = deps // as plan records it
	tg.commit(&planned{snap: snap, deps: deps, prog: old}, true, "file updated")
	if out, err := tg.Render(snap); err != nil || string(out) != "NEW web;" {
		t.Errorf("Render after Reparse = %q, %v; want %q: a block cached by the old source leaked", out, err, "NEW web;")
	}
	if !tg.inputsChanged(snap) {
		t.Error("inputsChanged() = false after the old source's render committed; want true: the new source has not been applied")
	}
}

// TestSortAlphaLeavesSnapshotAlone: sprig's sortAlpha sorts a []string in
// place; on a record's tags that would write into the shared snapshot.
func TestSortAlphaLeavesSnapshotAlone(t *testing.T) {
	x := schema.NewIndex(benchKeys)
	in := schema.Instance{V: schema.Version, Service: "web", ID: "w1", Address: "10.0.0.1", Port: 80,
		Weight: 1, Tags: []string{"b", "a"}, Health: schema.Health{Shallow: health.Passing}}
	rec, err := in.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	if err := x.Put(benchKeys.Instance("web", "w1"), rec); err != nil {
		t.Fatal(err)
	}
	snap := x.Snapshot(1)
	tmpl, err := Parse("t.tmpl", `{{ range instances "web" }}{{ sortAlpha .Tags | join "," }}{{ end }}`)
	if err != nil {
		t.Fatal(err)
	}
	out, err := Execute(tmpl, snap, benchKeys)
	if err != nil || string(out) != "a,b" {
		t.Fatalf("Execute = %q, %v; want a,b", out, err)
	}
	if got := snap.Service("web").Instances[0].Tags; !slices.Equal(got, []string{"b", "a"}) {
		t.Errorf("record's tags after sortAlpha = %q, want [b a] untouched", got)
	}
}

// TestCachedTemplateKeyType: a key that is neither a string nor an
// instance, or nil, is an error naming the block and what is wrong.
func TestCachedTemplateKeyType(t *testing.T) {
	for text, want := range map[string]string{
		`{{ cachedTemplate "x" 3 }}`:   `cachedTemplate "x": the key must be a string or an instance, not int`,
		`{{ cachedTemplate "x" nil }}`: `cachedTemplate "x": the key is nil`,
		`{{ cachedTemplate "x" . }}`:   `cachedTemplate "x": the key is nil`, // the top-level dot
	} {
		tmpl, err := Parse("t.tmpl", text+`{{ define "x" }}{{ end }}`)
		if err != nil {
			t.Fatal(err)
		}
		_, err = Execute(tmpl, schema.NewIndex(benchKeys).Snapshot(1), benchKeys)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: Execute error = %v, want one containing %q", text, err, want)
		}
	}
}

// TestNestedBlocksKept: blocks nested in a reused block stay cached. A
// change to one service re-executes its block only; the instance blocks
// of the other service, inside its reused block, must not be dropped, or
// alternating changes would re-render every line.
func TestNestedBlocksKept(t *testing.T) {
	tmpl, err := Parse("t.tmpl", `{{ range services }}{{ cachedTemplate "svc" .Name }}{{ end }}
{{- define "svc" }}{{ range instances . }}{{ cachedTemplate "inst" . }}{{ end }}{{ end }}
{{- define "inst" }}{{ .ID }}={{ .Health.Shallow }} {{ end }}`)
	if err != nil {
		t.Fatal(err)
	}
	p := newCachedProgram(tmpl)
	x := schema.NewIndex(benchKeys)
	for i := range 40 {
		svc, id := benchName(i, 2)
		if err := x.Put(benchKeys.Instance(svc, id), benchRecord(t, svc, id, i, health.Passing)); err != nil {
			t.Fatal(err)
		}
	}
	rev := int64(1)
	render := func() {
		t.Helper()
		if _, _, err := p.execute(context.Background(), x.Snapshot(rev), benchKeys, p.cache, TargetConfig{}.limits()); err != nil {
			t.Fatal(err)
		}
		rev++
	}
	render()
	const want = 2 + 40 // one block per service, one per instance
	for i := range 6 {
		svc, id := benchName(i, 2) // svc00, svc01, svc00, ...
		if err := x.Put(benchKeys.Instance(svc, id), benchRecord(t, svc, id, i, health.Critical)); err != nil {
			t.Fatal(err)
		}
		render()
		if n := len(p.cache.entries); n != want {
			t.Fatalf("after a change to %s: %d cached blocks, want %d", svc, n, want)
		}
	}
}
