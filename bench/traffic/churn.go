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
// so each wait sees its own flip; when every instance has one in flight,
// the next flip waits for one to show. Every wait has a deadline
// (o.timeout), and every goroutine ends before churn returns.
func (c *cell) churn(ctx context.Context, o options) (err error) {
	var (
		wg       sync.WaitGroup
		mu       sync.Mutex
		inFlight = map[string]bool{}
		shown    = make(chan struct{}, 1) // a flip showed: an instance is free
		firstErr error
	)
	defer wg.Wait()
	setErr := func(e error) {
		mu.Lock()
		defer mu.Unlock()
		if firstErr == nil {
			firstErr = e
		}
	}
	m0, err := c.lab.MetricSamples("templater_")
	if err != nil {
		return err
	}
	// pick returns an instance with no flip in flight, probing from a
	// spread start; "" when all have one.
	pick := func(k int) string {
		mu.Lock()
		defer mu.Unlock()
		start := (k*7919 + 13) % len(c.ids)
		for j := range len(c.ids) {
			if id := c.ids[(start+j)%len(c.ids)]; !inFlight[id] {
				inFlight[id] = true
				return id
			}
		}
		return ""
	}
	tick := time.NewTicker(o.interval)
	defer tick.Stop()
	t0 := time.Now()
	for k := 0; k < o.changes; k++ {
		if k > 0 {
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-tick.C:
			}
		}
		id := pick(k)
		for id == "" {
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-shown:
			case <-time.After(o.timeout):
				return fmt.Errorf("%s: churn: no flip of %d in flight showed within %s", c, len(c.ids), o.timeout)
			}
			id = pick(k)
		}
		mu.Lock()
		stop := firstErr
		mu.Unlock()
		if stop != nil {
			break
		}
		in := c.lab.Model[id]
		critical := !in.Critical
		put := time.Now()
		if err := c.lab.Update(ctx, id, func(in *lab.Instance) { in.Critical = critical }); err != nil {
			setErr(err)
			break
		}
		wg.Go(func() {
			d, _, err := c.waitLive(ctx, o, in.Service, c.sid[id], critical, put)
			mu.Lock()
			delete(inFlight, id)
			if err == nil {
				c.churnLive = append(c.churnLive, d)
			}
			mu.Unlock()
			select { // wake a flip waiting for an instance; a full buffer already will
			case shown <- struct{}{}:
			default:
			}
			if err != nil {
				setErr(fmt.Errorf("%s: churn, %s critical=%t: %w", c, id, critical, err))
			}
		})
	}
	c.churnSent = time.Since(t0)
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
	fmt.Println("| layout | instances | check | put→live p50 / p90 / max | flips sent over | apply rounds until the last flip was live | reloads |")
	fmt.Println("|---|---:|---|---:|---:|---:|---:|")
	for _, c := range cells {
		d := c.churnLive
		fmt.Printf("| %s | %d | %s | %s / %s / %s | %s | %g | %g |\n", plural(c.services, "service"), c.instances, yesNo(c.check),
			ms(pct(d, 50)), ms(pct(d, 90)), ms(pct(d, 100)), c.churnSent.Round(time.Millisecond),
			sumPrefix(c.churnDelta, "templater_render_duration_seconds_count"), sumPrefix(c.churnDelta, "templater_reloads_total"))
	}
}
