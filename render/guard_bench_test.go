package render

import (
	"fmt"
	"testing"
	"time"

	"github.com/rewire/rewire/health"
)

// BenchmarkGuards is what the guards cost a render that changed one
// instance's health, at 10,000 instances in 50 services and in one: the
// case on the path of every change, since a render whose bytes differ is
// always judged.
func BenchmarkGuards(b *testing.B) {
	for _, services := range []int{50, 1} {
		b.Run(fmt.Sprintf("10000-in-%d", services), func(b *testing.B) {
			x, applied := benchIndexIn(b, 10000, services)
			svc, id := benchName(7, services)
			if err := x.Put(benchKeys.Instance(svc, id), benchRecord(b, svc, id, 7, health.Critical)); err != nil {
				b.Fatal(err)
			}
			snap := x.Snapshot(2)
			deps := newDeps()
			deps.all(applied)
			names := deps.Services()
			g := DefaultGuards()
			in := guardInput{applied: applied, baseline: newBaseline(applied), snap: snap, names: names, now: time.Now()}
			b.ReportAllocs()
			for b.Loop() {
				if h, _ := g.evaluate(in); h != nil {
					b.Fatalf("held: %s", h.reason)
				}
			}
		})
	}
}
