package render

import (
	"runtime"
	"runtime/metrics"
	"sync/atomic"
)

// collector starts a garbage collection between two applies when the
// next apply, allocating what the last one did, would otherwise start one
// itself. A collection that starts during an apply slows it: the apply's
// own allocations then pay for marking the heap (assists). An apply of a
// large registry allocates megabytes on the path of the change (at 10,000
// instances in one service: the snapshot's copy of the service's records,
// 2.7 MB, and the rendered file), so the collector's timing shows in put →
// live.
//
// A collection started here comes earlier than the runtime's own would,
// so it can add collections: it is only started after an apply that
// allocated a quarter or more of the heap's room for growth. Smaller
// applies hardly feel the collector, and one started for them would
// mostly come while the runtime's own is already under way, and then run
// a second one.
type collector struct {
	samples [4]metrics.Sample
	before  uint64       // bytes allocated since the process started, before the apply
	running atomic.Bool  // a collection started here has not finished
	started atomic.Int64 // collections started here
}

func newCollector() *collector {
	c := &collector{}
	for i, name := range []string{"/gc/heap/allocs:bytes", "/gc/heap/goal:bytes", "/memory/classes/heap/objects:bytes", "/gc/heap/live:bytes"} {
		c.samples[i].Name = name
	}
	return c
}

// start notes the allocations before an apply.
func (c *collector) start() {
	metrics.Read(c.samples[:1])
	c.before = c.samples[0].Value.Uint64()
}

// done decides, after an apply, whether to collect now.
func (c *collector) done() {
	metrics.Read(c.samples[:])
	allocated := c.samples[0].Value.Uint64() - c.before
	goal, inUse, live := c.samples[1].Value.Uint64(), c.samples[2].Value.Uint64(), c.samples[3].Value.Uint64()
	if !collectNow(allocated, goal, inUse, live) || !c.running.CompareAndSwap(false, true) {
		return
	}
	c.started.Add(1)
	go func() {
		defer c.running.Store(false)
		runtime.GC()
	}()
}

// collectNow reports whether to collect after an apply that allocated
// allocated bytes, with the heap's goal, the bytes in use and the live
// bytes the last collection marked: the apply used a quarter or more of
// the room for growth, and the same again would reach the goal.
func collectNow(allocated, goal, inUse, live uint64) bool {
	return goal > live && allocated >= (goal-live)/4 && inUse+allocated >= goal
}
