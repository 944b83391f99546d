package schema

import (
	"fmt"
	"runtime"
	"slices"
	"testing"
	"time"

	"github.com/rewire/rewire/health/status"
)

// benchRecord is a realistic record (one check, a tag, a meta entry), as
// the registrar writes it.
func benchRecord(tb testing.TB, svc, id string, i int, st status.Status) []byte {
	tb.Helper()
	since := time.Date(2026, 11, 21, 19, 0, 0, 0, time.UTC)
	in := Instance{
		V: Version, Service: svc, ID: id, Node: fmt.Sprintf("node%d", i%100),
		Address: fmt.Sprintf("10.%d.%d.%d", i>>16&255, i>>8&255, i&255), Port: 8080,
		Tags: []string{"v2"}, Meta: map[string]string{"version": "1.4.2"}, Weight: DefaultWeight,
		Health: Health{Shallow: st, Since: since,
			Checks: []Check{{Name: "alive", Kind: status.Shallow, Status: st, Output: "HTTP 200", Since: since}}},
		RegisteredAt: since.Add(-time.Hour),
	}
	b, err := in.Marshal()
	if err != nil {
		tb.Fatalf("Marshal(%+v) error = %v", in, err)
	}
	return b
}

// benchIndex returns an index holding n instances spread over services
// services (instance i belongs to service i%services), and their keys.
func benchIndex(tb testing.TB, n, services int) (*Index, []string) {
	tb.Helper()
	x := NewIndex(Keys{})
	keys := make([]string, n)
	for i := range n {
		svc, id := fmt.Sprintf("svc%02d", i%services), fmt.Sprintf("i%05d", i)
		keys[i] = Keys{}.Instance(svc, id)
		if err := x.Put(keys[i], benchRecord(tb, svc, id, i, status.Passing)); err != nil {
			tb.Fatalf("Put(%q) error = %v", keys[i], err)
		}
	}
	x.Snapshot(1)
	return x, keys
}

// BenchmarkIndexPutSnapshot is the watcher's per-change cost: decode one
// changed record into an index of n instances and build the next snapshot.
// services=50 spreads the instances over 50 services (the changed service
// is rebuilt: n/50 instances); services=1 puts them all in one service
// (all n are rebuilt). heap-B/instance is what the index and its first
// snapshot keep on the heap per instance.
func BenchmarkIndexPutSnapshot(b *testing.B) {
	for _, n := range []int{10, 1000, 10000} {
		for _, services := range []int{50, 1} {
			services := min(services, n)
			b.Run(fmt.Sprintf("instances=%d/services=%d", n, services), func(b *testing.B) {
				var m0, m1 runtime.MemStats
				runtime.GC()
				runtime.ReadMemStats(&m0)
				x, keys := benchIndex(b, n, services)
				runtime.GC()
				runtime.ReadMemStats(&m1)
				held := float64(int64(m1.HeapAlloc)-int64(m0.HeapAlloc)) / float64(n)
				// Flip one instance between passing and critical, so every
				// Put is a real change.
				i := n / 2
				svc, id := fmt.Sprintf("svc%02d", i%services), fmt.Sprintf("i%05d", i)
				vals := [2][]byte{benchRecord(b, svc, id, i, status.Critical), benchRecord(b, svc, id, i, status.Passing)}
				rev := int64(1)
				b.ReportAllocs()
				for b.Loop() {
					rev++
					if err := x.Put(keys[i], vals[rev&1]); err != nil {
						b.Fatal(err)
					}
					if s := x.Snapshot(rev); s.Rev != rev {
						b.Fatalf("Snapshot(%d).Rev = %d", rev, s.Rev)
					}
				}
				b.ReportMetric(held, "heap-B/instance")
				runtime.KeepAlive(x)
			})
		}
	}
}

// TestIndexOrderCache checks the sorted-id cache that keeps
// BenchmarkIndexPutSnapshot flat: after any mix of new instances,
// overwrites, invalid overwrites and deletes, every snapshot lists exactly
// the valid instances, sorted by id, with their latest records.
func TestIndexOrderCache(t *testing.T) {
	x := NewIndex(Keys{})
	want := map[string]map[string]int{} // service → id → port
	for step := range 400 {
		svc := fmt.Sprintf("s%d", step%3)
		id := fmt.Sprintf("i%d", (step*7)%11)
		key := Keys{}.Instance(svc, id)
		switch step % 5 {
		case 0, 1, 2: // new or overwrite
			in := Instance{V: Version, Service: svc, ID: id, Address: "10.0.0.1", Port: 1000 + step,
				Weight: DefaultWeight, Health: Health{Shallow: status.Passing}}
			b, err := in.Marshal()
			if err != nil {
				t.Fatal(err)
			}
			if err := x.Put(key, b); err != nil {
				t.Fatalf("Put(%q) error = %v", key, err)
			}
			if want[svc] == nil {
				want[svc] = map[string]int{}
			}
			want[svc][id] = 1000 + step
		case 3: // invalid: removes the instance
			if err := x.Put(key, []byte(`{"v":1}`)); err == nil {
				t.Fatalf("Put(%q, invalid) error = nil", key)
			}
			delete(want[svc], id)
		case 4:
			x.Delete(key)
			delete(want[svc], id)
		}
		s := x.Snapshot(int64(step + 1))
		for svc, ports := range want {
			var got []string
			if sv := s.Service(svc); sv != nil {
				for _, in := range sv.Instances {
					got = append(got, in.ID)
					if in.Port != ports[in.ID] {
						t.Fatalf("step %d: %s/%s port = %d, want %d", step, svc, in.ID, in.Port, ports[in.ID])
					}
				}
			}
			var ids []string
			for id := range ports {
				ids = append(ids, id)
			}
			slices.Sort(ids)
			if !slices.Equal(got, ids) {
				t.Fatalf("step %d: Service(%q) ids = %q, want %q", step, svc, got, ids)
			}
		}
	}
}
