package render

import (
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"testing"
	"time"
)

var sink [][]byte

// garbage allocates about n bytes that are dropped at once.
func garbage(n int) {
	for ; n > 0; n -= 4096 {
		sink = append(sink, make([]byte, 4096))
	}
	sink = nil
}

// TestCollectorCollectsAhead: after an apply that allocated more than the
// heap has left before its goal, the collector starts a collection (and
// it runs); after one that allocated nothing, it does not.
func TestCollectorCollectsAhead(t *testing.T) {
	defer debug.SetGCPercent(debug.SetGCPercent(100)) // GOGC=off would leave no goal to reach
	room := func() int {
		s := []metrics.Sample{{Name: "/gc/heap/goal:bytes"}, {Name: "/memory/classes/heap/objects:bytes"}}
		metrics.Read(s)
		return int(s[0].Value.Uint64()) - int(s[1].Value.Uint64())
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
	c.start()
	// Garbage worth 60% of the room left: the heap stays under its goal,
	// and the same again would cross it.
	garbage(room() * 6 / 10)
	c.done()
	if n := c.started.Load(); n != 1 {
		t.Fatalf("after an apply that allocated 60%% of the room: %d collections started, want 1 (room left %d)", n, room())
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

// TestCollectNow: the collector's decision, on the sizes that matter.
func TestCollectNow(t *testing.T) {
	const mb = 1 << 20
	tests := []struct {
		name                         string
		allocated, goal, inUse, live uint64
		want                         bool
	}{
		{"a large apply that the next one like it would take past the goal", 6 * mb, 24 * mb, 20 * mb, 12 * mb, true},
		{"a large apply with room for another", 6 * mb, 24 * mb, 14 * mb, 12 * mb, false},
		{"a small apply near the goal: the runtime's own collection is due", 1 * mb, 24 * mb, 23 * mb, 12 * mb, false},
		{"exactly a quarter of the room", 3 * mb, 24 * mb, 21 * mb, 12 * mb, true},
		{"no room at all (GOGC off reads as a huge goal)", 6 * mb, 12 * mb, 20 * mb, 12 * mb, false},
	}
	for _, tc := range tests {
		if got := collectNow(tc.allocated, tc.goal, tc.inUse, tc.live); got != tc.want {
			t.Errorf("%s: collectNow(%d, %d, %d, %d) = %t, want %t", tc.name, tc.allocated, tc.goal, tc.inUse, tc.live, got, tc.want)
		}
	}
}
