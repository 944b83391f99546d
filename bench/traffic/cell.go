package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/fsnotify/fsnotify"
	"github.com/rewire/rewire/bench/hitless/lab"
	"github.com/rewire/rewire/bench/internal/propagation"
	"github.com/rewire/rewire/internal/embedetcd"
)

// cellConfig is one configuration of the matrix.
type cellConfig struct {
	instances, services int
	check               bool
}

func (c cellConfig) String() string {
	check := "no check"
	if c.check {
		check = "haproxy -c"
	}
	return fmt.Sprintf("%d in %s, %s", c.instances, plural(c.services, "service"), check)
}

func plural(n int, what string) string {
	if n == 1 {
		return "1 " + what
	}
	return fmt.Sprintf("%d %ss", n, what)
}

// cell is one running configuration: its own etcd, templater and haproxy
// (bench/hitless/lab), and what was measured on it.
type cell struct {
	cellConfig
	lab   *lab.Lab
	floor *propagation.Floor
	ev    <-chan fsnotify.Event
	stop  func()
	ids   []string       // instance ids, sorted
	sid   map[string]int // haproxy's server id by instance id
	rec   []byte         // a record's size of value, for the floor's puts

	floorS, file, live, settled []time.Duration
	polls                       int
	metrics0                    map[string]float64
	churnLive                   []time.Duration    // -interval: put → live of each flip
	churnDelta                  map[string]float64 // -interval: the templater's metrics over the churn
	churnSent                   time.Duration      // -interval: from the first flip to the last
}

// startCell starts etcd, the lab and the floor watch of one configuration.
func startCell(ctx context.Context, o options, cfg cellConfig) (c *cell, err error) {
	c = &cell{cellConfig: cfg}
	dir, err := os.MkdirTemp("", "traffic-")
	if err != nil {
		return nil, err
	}
	e, err := embedetcd.Start(ctx, embedetcd.Options{Dir: filepath.Join(dir, "etcd")})
	if err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	var stops []func()
	c.stop = func() {
		for i := len(stops) - 1; i >= 0; i-- {
			stops[i]()
		}
	}
	stops = append(stops, func() { os.RemoveAll(dir) }, e.Close)
	defer func() {
		if err != nil {
			c.stop()
		}
	}()
	c.lab, err = lab.Start(ctx, lab.Options{Endpoints: e.Endpoints(), Templater: o.templater, HAProxy: o.haproxy,
		Template: o.template, Dir: dir, Live: true, CheckFirst: !o.liveFirst, NoCheck: !cfg.check,
		Instances: cfg.instances, Services: cfg.services,
		Keys: map[string]string{"haproxy/cache_servers": strconv.FormatBool(o.cacheServers)}})
	if err != nil {
		return nil, err
	}
	stops = append(stops, c.lab.Close)
	if c.floor, err = propagation.NewFloor(ctx, e.Endpoints()); err != nil {
		return nil, err
	}
	stops = append(stops, c.floor.Close)
	var stopEv func()
	if c.ev, stopEv, err = propagation.WatchDir(dir); err != nil {
		return nil, err
	}
	stops = append(stops, stopEv)
	if c.sid, err = c.lab.ServerIDs(ctx); err != nil {
		return nil, err
	}
	for id := range c.lab.Model {
		if _, ok := c.sid[id]; !ok {
			return nil, fmt.Errorf("%s: not live in haproxy", id)
		}
		c.ids = append(c.ids, id)
	}
	slices.Sort(c.ids)
	c.rec = bytes.Repeat([]byte("x"), 150) // about the size of a lab record
	return c, nil
}

// change times one health flip; k picks the instance. The flip is
// measured only after one floor sample, and the next change starts only
// once the templater has finished this one (its server-state file saved,
// the last step of a live change), so changes never overlap.
func (c *cell) change(ctx context.Context, o options, k int, record bool) error {
	fl, err := c.floor.Sample(ctx, c.lab.Etcd, c.rec)
	if err != nil {
		return err
	}
	id := c.ids[(k*7919+13)%len(c.ids)] // spread over services and positions
	in := c.lab.Model[id]
	critical := !in.Critical
	saves0, err := c.lab.Metric(savesOK)
	if err != nil {
		return err
	}
	propagation.Drain(c.ev)
	t0 := time.Now()
	if err := c.lab.Update(ctx, id, func(in *lab.Instance) { in.Critical = critical }); err != nil {
		return err
	}
	type seen struct {
		d   time.Duration
		err error
	}
	fileCh := make(chan seen, 1) // buffered: the goroutine never blocks
	go func() {
		err := propagation.WaitFile(c.ev, c.lab.Dest, o.timeout, func(b []byte) bool { return fileShows(b, id, critical) })
		fileCh <- seen{time.Since(t0), err}
	}()
	live, polls, lerr := c.waitLive(ctx, o, in.Service, c.sid[id], critical, t0)
	file := <-fileCh
	what := fmt.Sprintf("%s: %s critical=%t", c, id, critical)
	if lerr != nil {
		return fmt.Errorf("%s: live state: %w", what, lerr)
	}
	if file.err != nil {
		return fmt.Errorf("%s: file: %w", what, file.err)
	}
	err = lab.Poll(ctx, o.timeout, "the templater to save haproxy's server state", func() error {
		n, err := c.lab.Metric(savesOK)
		if err == nil && n <= saves0 {
			err = fmt.Errorf("%s %g, want > %g", savesOK, n, saves0)
		}
		return err
	})
	if err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	if record {
		c.floorS, c.file, c.live = append(c.floorS, fl), append(c.file, file.d), append(c.live, live)
		c.settled, c.polls = append(c.settled, time.Since(t0)), c.polls+polls
	}
	return nil
}

// savesOK counts the server-state files the templater wrote: the last
// step of applying a change live.
const savesOK = `templater_haproxy_state_saves_total{result="ok"`

// waitLive polls one server's status until its maintenance state is
// critical, and returns the time since t0 at the answer that showed it.
func (c *cell) waitLive(ctx context.Context, o options, backend string, sid int, critical bool, t0 time.Time) (time.Duration, int, error) {
	deadline := t0.Add(o.timeout)
	for polls := 1; ; polls++ {
		st, err := c.lab.LiveStatus(ctx, backend, sid)
		at := time.Since(t0)
		if err != nil {
			return 0, polls, err
		}
		if strings.HasPrefix(st, "MAINT") == critical {
			return at, polls, nil
		}
		if time.Now().After(deadline) {
			return 0, polls, fmt.Errorf("server %d of %s still %q after %s", sid, backend, st, o.timeout)
		}
		select {
		case <-ctx.Done():
			return 0, polls, ctx.Err()
		case <-time.After(o.poll):
		}
	}
}

// fileShows reports whether the rendered config has instance id's server
// line disabled (critical) or not.
func fileShows(b []byte, id string, critical bool) bool {
	_, rest, ok := bytes.Cut(b, []byte("    server "+id+" "))
	if !ok {
		return false
	}
	line, _, _ := bytes.Cut(rest, []byte("\n"))
	return bytes.Contains(line, []byte(" disabled")) == critical
}
