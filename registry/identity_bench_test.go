package registry

import (
	"fmt"
	"runtime"
	"testing"

	"go.etcd.io/etcd/api/v3/mvccpb"
	etcd "go.etcd.io/etcd/client/v3"
)

// BenchmarkVersionsFit is what the store-identity check costs one watch
// event, with 10,000 keys held, and what holding their versions costs in
// memory.
func BenchmarkVersionsFit(b *testing.B) {
	const n = 10000
	keys := make([][]byte, n)
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	v := versions{}
	for i := range keys {
		keys[i] = fmt.Appendf(nil, "/rewire/services/svc%02d/i%05d", i%50, i)
		v[keyHash(keys[i])] = 1
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	ev := &etcd.Event{Type: mvccpb.PUT, Kv: &mvccpb.KeyValue{}}
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		k := keys[i%n]
		ev.Kv.Key, ev.Kv.Version = k, v[keyHash(k)]+1
		if err := v.fits(ev); err != nil {
			b.Fatal(err)
		}
		i++
	}
	// After the loop: b.Loop's first call resets reported metrics.
	b.ReportMetric(float64(after.HeapAlloc-before.HeapAlloc)/n, "heap-B/key")
}
