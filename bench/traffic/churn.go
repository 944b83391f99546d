package main

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/rewire/rewire/bench/hitless/lab"
)

// churn sends o.changes health flips to the cell, one every o.interval,
// without waiting for the earlier ones (open loop, as health changes
// reach a large service in production), and times each one's put →
// haproxy's live state. A flip that arrives while the templater is still
// busy with an earlier change (its check, its verification) waits for
// it: that wait is what this mode shows and the one-at-a-time rounds
// cannot. The flips go to distinct instances while they are in flight,
// so each wait sees its own flip. Every wait has a deadline (o.timeout).
func (c *cell) churn(ctx context.Context, o options) error {
	var (
		wg       sync.WaitGroup
		mu       sync.Mutex
		inFlight = map[string]bool{}
		firstErr error
	)
	fail := func(err error) {
		mu.Lock()
		defer mu.Unlock()
		if firstErr == nil {
			firstErr = err
		}
	}
	m0, err := c.lab.MetricSamples("templater_")
	if err != nil {
		return err
	}
	tick := time.NewTicker(o.interval)
	defer tick.Stop()
	for k := 0; k < o.changes; k++ {
		if k > 0 {
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-tick.C:
			}
		}
		mu.Lock()
		id, err := "", firstErr
		for j := range len(c.ids) {
			if cand := c.ids[((k+j)*7919+13)%len(c.ids)]; !inFlight[cand] {
				id = cand
				break
			}
		}
		if id != "" {
			inFlight[id] = true
		}
		mu.Unlock()
		if err != nil {
			break
		}
		if id == "" {
			fail(fmt.Errorf("%s: all %d instances still in flight", c, len(c.ids)))
			break
		}
		in := c.lab.Model[id]
		critical := !in.Critical
		t0 := time.Now()
		if err := c.lab.Update(ctx, id, func(in *lab.Instance) { in.Critical = critical }); err != nil {
			fail(err)
			break
		}
		wg.Go(func() {
			d, _, err := c.waitLive(ctx, o, in.Service, c.sid[id], critical, t0)
			mu.Lock()
			defer mu.Unlock()
			delete(inFlight, id)
			if err != nil {
				if firstErr == nil {
					firstErr = fmt.Errorf("%s: churn, %s critical=%t: %w", c, id, critical, err)
				}
				return
			}
			c.churnLive = append(c.churnLive, d)
		})
	}
	wg.Wait()
	if firstErr != nil {
		return firstErr
	}
	m1, err := c.lab.MetricSamples("templater_")
	c.churnDelta = lab.Delta(m0, m1)
	return err
}

// reportChurn prints the open-loop table.
func reportChurn(o options, cells []*cell) {
	fmt.Printf("\nChurn: %d flips per configuration, one every %s without waiting for the previous one; put → live:\n\n", o.changes, o.interval)
	fmt.Println("| layout | instances | check | put→live p50 / p90 / max | apply rounds | reloads |")
	fmt.Println("|---|---:|---|---:|---:|---:|")
	for _, c := range cells {
		d := c.churnLive
		fmt.Printf("| %s | %d | %s | %s / %s / %s | %g | %g |\n", plural(c.services, "service"), c.instances, yesNo(c.check),
			ms(pct(d, 50)), ms(pct(d, 90)), ms(pct(d, 100)),
			sumPrefix(c.churnDelta, "templater_render_duration_seconds_count"), sumPrefix(c.churnDelta, "templater_reloads_total"))
	}
}
