package render

import (
	"runtime"
	"runtime/metrics"
	"testing"
	"time"
)

var sink [][]byte

// TestCollectorCollectsAhead: after an apply that allocated more than the
// heap has left before its goal, the collector starts a collection (and
// it runs); after one that allocated nothing, it does not.
func TestCollectorCollectsAhead(t *testing.T) {
	heap := func() (goal, inUse uint64) {
		s := []metrics.Sample{{Name: "/gc/heap/goal:bytes"}, {Name: "/memory/classes/heap/objects:bytes"}}
		metrics.Read(s)
		return s[0].Value.Uint64(), s[1].Value.Uint64()
	}
	c := newCollector()

	runtime.GC()
	c.start()
	c.done()
	if n := c.started.Load(); n != 0 {
		t.Fatalf("after an apply that allocated nothing, right after a collection: %d collections started, want 0", n)
	}

	runtime.GC()
	var before runtime.MemStats
	runtime.ReadMemStats(&before)
	goal, inUse := heap()
	c.start()
	// Garbage worth 60% of the room left: the heap stays under its goal,
	// and the same again would cross it.
	for left := int(goal-inUse) * 6 / 10; left > 0; left -= 4096 {
		sink = append(sink, make([]byte, 4096))
	}
	sink = nil
	c.done()
	if n := c.started.Load(); n != 1 {
		goal, inUse = heap()
		t.Fatalf("after an apply that allocated 60%% of the room, %d collections started, want 1 (heap %d of goal %d)", n, inUse, goal)
	}
	deadline := time.Now().Add(10 * time.Second)
	for c.running.Load() {
		if time.Now().After(deadline) {
			t.Fatal("the collection started by the collector did not finish within 10s")
		}
		time.Sleep(time.Millisecond)
	}
	var after runtime.MemStats
	runtime.ReadMemStats(&after)
	if after.NumGC <= before.NumGC {
		t.Errorf("NumGC %d → %d: no collection ran", before.NumGC, after.NumGC)
	}
}
