package render

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"runtime"
	"testing"
	"time"

	"github.com/rewire/rewire/health"
	"github.com/rewire/rewire/registry/schema"
)

var benchKeys = schema.Keys{Prefix: "/rewire"}

// benchRecord is a realistic record (one check, a tag, a meta entry), as
// the registrar writes it.
func benchRecord(tb testing.TB, svc, id string, i int, st health.Status) []byte {
	tb.Helper()
	since := time.Date(2026, 11, 21, 19, 0, 0, 0, time.UTC)
	in := schema.Instance{
		V: schema.Version, Service: svc, ID: id, Node: fmt.Sprintf("node%d", i%100),
		Address: fmt.Sprintf("10.%d.%d.%d", i>>16&255, i>>8&255, i&255), Port: 8080,
		Tags: []string{"v2"}, Meta: map[string]string{"version": "1.4.2"}, Weight: schema.DefaultWeight,
		Health: schema.Health{Shallow: st, Since: since,
			Checks: []schema.Check{{Name: "alive", Kind: health.Shallow, Status: st, Output: "HTTP 200", Since: since}}},
		RegisteredAt: since.Add(-time.Hour),
	}
	b, err := in.Marshal()
	if err != nil {
		tb.Fatalf("Marshal(%+v) error = %v", in, err)
	}
	return b
}

// benchIndex returns an index of n passing instances spread over
// min(n, 50) services, with its first snapshot.
func benchIndex(tb testing.TB, n int) (*schema.Index, *schema.Snapshot) {
	tb.Helper()
	return benchIndexIn(tb, n, min(n, 50))
}

// benchIndexIn is benchIndex with n instances in the given number of
// services.
func benchIndexIn(tb testing.TB, n, services int) (*schema.Index, *schema.Snapshot) {
	tb.Helper()
	x := schema.NewIndex(benchKeys)
	for i := range n {
		svc, id := benchName(i, services)
		if err := x.Put(benchKeys.Instance(svc, id), benchRecord(tb, svc, id, i, health.Passing)); err != nil {
			tb.Fatal(err)
		}
	}
	return x, x.Snapshot(1)
}

func benchName(i, services int) (svc, id string) {
	return fmt.Sprintf("svc%02d", i%services), fmt.Sprintf("i%05d", i)
}

func benchTemplate(tb testing.TB) string {
	tb.Helper()
	text, err := os.ReadFile("../examples/haproxy/haproxy.cfg.tmpl")
	if err != nil {
		tb.Fatal(err)
	}
	return string(text)
}

// benchProgram is the examples/haproxy template, parsed.
func benchProgram(tb testing.TB) *program {
	tb.Helper()
	tmpl, err := Parse("haproxy.cfg.tmpl", benchTemplate(tb))
	if err != nil {
		tb.Fatal(err)
	}
	return newProgram(tmpl)
}

var benchSizes = []int{10, 1000, 10000}

// BenchmarkRender executes the examples/haproxy template against a
// snapshot of n instances in memory: the render step of every change
// (parsing is done once, at start).
func BenchmarkRender(b *testing.B) {
	prog := benchProgram(b)
	for _, n := range benchSizes {
		b.Run(fmt.Sprintf("instances=%d", n), func(b *testing.B) {
			_, snap := benchIndex(b, n)
			out, _, err := prog.execute(context.Background(), snap, benchKeys, nil, TargetConfig{}.limits())
			if err != nil {
				b.Fatal(err)
			}
			if got := bytes.Count(out, []byte("\n    server ")); got != n {
				b.Fatalf("rendered %d server lines, want %d", got, n)
			}
			b.SetBytes(int64(len(out)))
			b.ReportAllocs()
			for b.Loop() {
				if _, _, err := prog.execute(context.Background(), snap, benchKeys, nil, TargetConfig{}.limits()); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkDepsChanged is the check that decides whether a change needs a
// render at all, for the examples/haproxy template (which reads every
// service and two keys). "changed": one instance flipped health, found as
// soon as its service is compared. "unchanged": a free-form key the
// template does not read changed, so every dependency is compared.
func BenchmarkDepsChanged(b *testing.B) {
	prog := benchProgram(b)
	for _, n := range benchSizes {
		x, snap := benchIndex(b, n)
		_, deps, err := prog.execute(context.Background(), snap, benchKeys, nil, TargetConfig{}.limits())
		if err != nil {
			b.Fatal(err)
		}
		i := n / 2
		svc, id := benchName(i, min(n, 50))
		if err := x.Put(benchKeys.Instance(svc, id), benchRecord(b, svc, id, i, health.Critical)); err != nil {
			b.Fatal(err)
		}
		changed := x.Snapshot(2)
		if err := x.Put(benchKeys.Root()+"unrelated/key", []byte("x")); err != nil {
			b.Fatal(err)
		}
		unchanged := x.Snapshot(3)
		_, deps2, err := prog.execute(context.Background(), changed, benchKeys, nil, TargetConfig{}.limits())
		if err != nil {
			b.Fatal(err)
		}
		for _, tc := range []struct {
			name string
			snap *schema.Snapshot
			want bool
		}{
			{"changed", changed, true},
			{"unchanged", unchanged, false},
		} {
			b.Run(fmt.Sprintf("instances=%d/%s", n, tc.name), func(b *testing.B) {
				d := deps
				if !tc.want {
					d = deps2 // rendered from changed; unchanged differs only in an unread key
				}
				if got := d.Changed(tc.snap); got != tc.want {
					b.Fatalf("Changed() = %v, want %v", got, tc.want)
				}
				b.ReportAllocs()
				for b.Loop() {
					d.Changed(tc.snap)
				}
			})
		}
	}
}

// BenchmarkRenderChange is the render step of one change with the block
// cache a Target keeps. Two instances (in two services when there are
// several) flip health in turn, so each change re-executes the backend of
// a different service than the change before, and reuses the others.
func BenchmarkRenderChange(b *testing.B) {
	prog := benchProgram(b)
	type size struct {
		n, services  int
		cacheServers bool // the example's haproxy/cache_servers key
	}
	sizes := []size{{10, 10, false}, {1000, 50, false}, {1000, 50, true}, {10000, 50, false}, {10000, 50, true},
		{200, 1, false}, {200, 1, true}, {1000, 1, false}, {1000, 1, true}, {10000, 1, false}, {10000, 1, true}}
	for _, sz := range sizes {
		n := sz.n
		b.Run(fmt.Sprintf("instances=%d/services=%d/cache_servers=%t", n, sz.services, sz.cacheServers), func(b *testing.B) {
			x, _ := benchIndexIn(b, n, sz.services)
			if err := x.Put(benchKeys.Root()+"haproxy/cache_servers", fmt.Append(nil, sz.cacheServers)); err != nil {
				b.Fatal(err)
			}
			first := x.Snapshot(1)
			// flip i1, flip i2, flip i1 back, flip i2 back: a cycle of 4.
			var snaps []*schema.Snapshot
			for k, st := range []health.Status{health.Critical, health.Critical, health.Passing, health.Passing} {
				i := n/2 + k%2
				svc, id := benchName(i, sz.services)
				if err := x.Put(benchKeys.Instance(svc, id), benchRecord(b, svc, id, i, st)); err != nil {
					b.Fatal(err)
				}
				snaps = append(snaps, x.Snapshot(int64(k+2)))
			}
			// The heap the cache keeps, per instance: measured around the
			// first render, with the snapshot already built.
			var m0, m1 runtime.MemStats
			runtime.GC()
			runtime.ReadMemStats(&m0)
			cache := newBlockCache()
			if _, _, err := prog.execute(context.Background(), first, benchKeys, cache, TargetConfig{}.limits()); err != nil {
				b.Fatal(err)
			}
			runtime.GC()
			runtime.ReadMemStats(&m1)
			held := float64(int64(m1.HeapAlloc)-int64(m0.HeapAlloc)) / float64(n)
			b.ReportAllocs()
			k := 0
			for b.Loop() {
				if _, _, err := prog.execute(context.Background(), snaps[k%len(snaps)], benchKeys, cache, TargetConfig{}.limits()); err != nil {
					b.Fatal(err)
				}
				k++
			}
			b.ReportMetric(held, "cache-B/instance") // after the loop: its start drops reported metrics
		})
	}
}

// BenchmarkWriteAtomic is the swap of one change: the staged file written
// and fsynced beside the destination, renamed over it, and the directory
// fsynced. It is O(file size), since the whole file goes to disk again,
// and it sets a floor under put → file for large files that no render
// speed removes: the example's output is ~70 KB at 1,000 instances and
// ~700 KB at 10,000. It runs in the test's temporary directory, so it
// measures that file system.
func BenchmarkWriteAtomic(b *testing.B) {
	for _, size := range []int{70 << 10, 700 << 10} {
		b.Run(fmt.Sprintf("%dKiB", size>>10), func(b *testing.B) {
			dir := b.TempDir()
			src := dir + "/t.tmpl"
			if err := os.WriteFile(src, []byte("x"), 0o644); err != nil {
				b.Fatal(err)
			}
			t, err := NewTarget(TargetConfig{Name: "t", Source: src, Destination: dir + "/out.cfg"}, Options{})
			if err != nil {
				b.Fatal(err)
			}
			data := bytes.Repeat([]byte("    server i00000 10.0.0.1:8080 weight 100 check\n"), size/50)
			b.SetBytes(int64(len(data)))
			for i := 0; b.Loop(); i++ {
				data[i%len(data)] ^= 1 // a different file each time, as a change gives
				if err := t.writeAtomic(data); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
