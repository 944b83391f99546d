package render

import (
	"fmt"
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
		out, deps, err := p.execute(snaps[i], benchKeys, nil)
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
