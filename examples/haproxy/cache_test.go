package haproxy_test

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"

	"github.com/rewire/rewire/health"
	"github.com/rewire/rewire/registry/schema"
	"github.com/rewire/rewire/render"
)

// TestCachedMatchesUncached renders the example through a Target, which
// keeps its cached blocks and each backend's server lines between renders
// and reuses the lines of unchanged instances, after each of a random
// sequence of changes (health, weight, drain, address, deletes and
// re-adds with the same ID, maintenance of an instance or a service, in
// several services), and checks that the bytes are those of an uncached
// render of the same snapshot.
func TestCachedMatchesUncached(t *testing.T) {
	text, err := os.ReadFile(templatePath)
	if err != nil {
		t.Fatal(err)
	}
	plain, err := render.Parse(templatePath, string(text))
	if err != nil {
		t.Fatal(err)
	}
	tg, err := render.NewTarget(render.TargetConfig{Name: "haproxy", Source: templatePath,
		Destination: filepath.Join(t.TempDir(), "haproxy.cfg")}, render.Options{Keys: keys})
	if err != nil {
		t.Fatal(err)
	}
	x := schema.NewIndex(keys)
	for k, v := range readInput(t, inputPath) {
		if err := x.Put(k, []byte(v)); err != nil && !errors.As(err, new(*schema.InvalidError)) {
			t.Fatal(err)
		}
	}
	rng := rand.New(rand.NewPCG(5, 6))
	services := []string{"web", "api", "db", "big"}
	statuses := []health.Status{health.Passing, health.Warning, health.Critical}
	for step := range 400 {
		svc, n := services[rng.IntN(len(services))], rng.IntN(40)
		id := fmt.Sprintf("%s-%d", svc, n)
		switch rng.IntN(8) {
		case 0, 1, 2, 3:
			in := schema.Instance{V: schema.Version, Service: svc, ID: id, Address: fmt.Sprintf("10.9.%d.%d", rng.IntN(2), n+1),
				Port: 8000 + rng.IntN(2), Weight: rng.IntN(3) * 50, Draining: rng.IntN(4) == 0,
				Health: schema.Health{Shallow: statuses[rng.IntN(3)]}}
			b, err := in.Marshal()
			if err != nil {
				t.Fatal(err)
			}
			if err := x.Put(keys.Instance(svc, id), b); err != nil {
				t.Fatal(err)
			}
		case 4:
			x.Delete(keys.Instance(svc, id))
		case 5: // a run of instances goes away
			for m := n; m < n+rng.IntN(10); m++ {
				x.Delete(keys.Instance(svc, fmt.Sprintf("%s-%d", svc, m)))
			}
		case 6, 7:
			target := id
			if rng.IntN(3) == 0 {
				target = ""
			}
			if rng.IntN(2) == 0 {
				if err := x.Put(keys.Maintenance(svc, target), []byte(`{}`)); err != nil {
					t.Fatal(err)
				}
			} else {
				x.Delete(keys.Maintenance(svc, target))
			}
		}
		snap := x.Snapshot(int64(step + 1))
		if rng.IntN(3) == 0 {
			continue // some renders see several changes
		}
		got, err := tg.Render(snap)
		if err != nil {
			t.Fatalf("step %d: Render: %v", step, err)
		}
		want, err := render.Execute(plain, snap, keys)
		if err != nil {
			t.Fatalf("step %d: Execute: %v", step, err)
		}
		if string(got) != string(want) {
			t.Fatalf("step %d: cached render =\n%s\nwant\n%s", step, got, want)
		}
	}
}
