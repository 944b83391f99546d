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
// live. A collection started here costs no more CPU than the one it
// replaces; it only comes a little earlier.
type collector struct {
	samples [3]metrics.Sample
	before  uint64       // bytes allocated since the process started, before the apply
	running atomic.Bool  // a collection started here has not finished
	started atomic.Int64 // collections started here
}

func newCollector() *collector {
	c := &collector{}
	c.samples[0].Name = "/gc/heap/allocs:bytes"
	c.samples[1].Name = "/gc/heap/goal:bytes"
	c.samples[2].Name = "/memory/classes/heap/objects:bytes"
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
	goal, inUse := c.samples[1].Value.Uint64(), c.samples[2].Value.Uint64()
	if inUse+allocated < goal || !c.running.CompareAndSwap(false, true) {
		return
	}
	c.started.Add(1)
	go func() {
		defer c.running.Store(false)
		runtime.GC()
	}()
}
