// Command traffic measures how long a registry change takes to reach
// HAProxy's traffic: from the etcd put of one instance's health flip to
// haproxy's live state showing the server in (or out of) maintenance,
// beside the raw etcd watch floor and the put → file time (results in
// docs/PERFORMANCE.md):
//
//	make bench-traffic   # go build -o bin/ ./cmd/... && go run ./bench/traffic
//
// Every configuration of the matrix (-instances × -layouts × -check) is a
// lab of its own (bench/hitless/lab: an embedded etcd, the templater
// binary rendering examples/haproxy with `haproxy: {}`, a master-worker
// haproxy). All labs start first; then the changes go round-robin, one
// change of each lab per round, so whatever else loads the machine hits
// every configuration alike. Each change, one at a time:
//
//  1. one floor sample: a put → its watch event on the same etcd;
//  2. the put of the flip, then at once: the rendered file watched
//     (fsnotify on the rename, then a read: as bench/templater does) and
//     the one changed server polled every -poll with `show stat <backend>
//     4 <server id>` (one line from haproxy, cheap even at 10,000 servers;
//     the output reports what it costs against `show servers state`);
//  3. the next change waits until the templater has finished this one
//     (its server-state file saved: the last step of a live change).
//
// With -interval, each configuration then gets -changes more flips, one
// every -interval without waiting for the previous ones (open loop), and
// the table shows their put → live: what a change waits for while the
// templater is still busy with an earlier one (its check, its
// verification).
//
// Every wait has a deadline (-timeout), every loop a bound (-changes);
// everything runs on loopback.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

type options struct {
	templater, haproxy, template string
	instances, layouts           []int
	checks                       []bool
	changes, warmup              int
	poll, timeout, interval      time.Duration
	liveFirst, cacheServers      bool
}

func main() {
	var o options
	flag.StringVar(&o.templater, "templater", "bin/templater", "templater binary (go build -o bin/ ./cmd/...)")
	flag.StringVar(&o.haproxy, "haproxy", "", "haproxy binary (default: from $PATH or /usr/sbin)")
	flag.StringVar(&o.template, "template", "examples/haproxy/haproxy.cfg.tmpl", "template")
	instances := flag.String("instances", "10,1000,10000", "instance counts")
	layouts := flag.String("layouts", "50,1", "service counts to spread the instances over (at most one service per instance)")
	checks := flag.String("check", "yes,no", "with a check (`haproxy -c`), without, or both")
	flag.IntVar(&o.changes, "changes", 40, "timed health flips per configuration")
	flag.IntVar(&o.warmup, "warmup", 3, "untimed flips per configuration before them")
	flag.DurationVar(&o.poll, "poll", time.Millisecond, "interval between two polls of the changed server's live state")
	flag.DurationVar(&o.timeout, "timeout", 30*time.Second, "deadline of each wait (a change to show, the templater to finish it)")
	flag.DurationVar(&o.interval, "interval", 0, "after the rounds, send -changes flips to each configuration in turn, one every `D`, without waiting for the previous ones, and time each one's put → live (0: off)")
	flag.BoolVar(&o.liveFirst, "live-first", true, "live-first on (the default); false: a server change waits for its check (haproxy: {live_first: false})")
	flag.BoolVar(&o.cacheServers, "cache-servers", true, "set haproxy/cache_servers true (the example's advice for services of thousands of instances: each server line cached on its own)")
	flag.Parse()
	var err error
	if o.instances, err = ints("-instances", *instances); err == nil {
		o.layouts, err = ints("-layouts", *layouts)
	}
	for f := range strings.SplitSeq(*checks, ",") {
		switch strings.TrimSpace(f) {
		case "yes":
			o.checks = append(o.checks, true)
		case "no":
			o.checks = append(o.checks, false)
		default:
			err = fmt.Errorf("-check: %q: want yes, no or yes,no", f)
		}
	}
	if err == nil && (o.changes < 1 || o.warmup < 0) {
		err = fmt.Errorf("-changes %d -warmup %d: want at least 1 and 0", o.changes, o.warmup)
	}
	if err == nil {
		err = run(context.Background(), o)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "traffic:", err)
		os.Exit(1)
	}
}

func ints(flag, s string) ([]int, error) {
	var out []int
	for f := range strings.SplitSeq(s, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 1 || n > 100000 {
			return nil, fmt.Errorf("%s: %q: want 1-100000", flag, f)
		}
		out = append(out, n)
	}
	return out, nil
}

func run(ctx context.Context, o options) error {
	var err error
	if o.templater, err = filepath.Abs(o.templater); err != nil {
		return err
	}
	if _, err := os.Stat(o.templater); err != nil {
		return fmt.Errorf("%w (build it: go build -o bin/ ./cmd/...)", err)
	}
	if o.template, err = filepath.Abs(o.template); err != nil {
		return err
	}
	if o.haproxy == "" {
		if o.haproxy, err = exec.LookPath("haproxy"); err != nil {
			o.haproxy = "/usr/sbin/haproxy"
		}
	}
	printHeader(o)
	var cells []*cell
	defer func() {
		for _, c := range cells {
			c.stop()
		}
	}()
	for _, n := range o.instances {
		for _, svcs := range o.layouts {
			for _, check := range o.checks {
				cfg := cellConfig{instances: n, services: min(svcs, n), check: check}
				t0 := time.Now()
				c, err := startCell(ctx, o, cfg)
				if err != nil {
					return fmt.Errorf("%s: %w", cfg, err)
				}
				cells = append(cells, c)
				fmt.Printf("- started %s in %s\n", cfg, time.Since(t0).Round(time.Millisecond))
			}
		}
	}
	fmt.Println()
	if err := pollCosts(ctx, cells); err != nil {
		return err
	}
	load0, t0 := loadAvg(), time.Now()
	for _, c := range cells {
		if c.metrics0, err = c.lab.MetricSamples("templater_"); err != nil {
			return err
		}
	}
	rounds := o.warmup + o.changes
	for k := range rounds {
		for j := range cells {
			c := cells[(j+k)%len(cells)] // rotate, so no cell always follows the same one
			if err := c.change(ctx, o, k, k >= o.warmup); err != nil {
				return err
			}
		}
	}
	fmt.Printf("%d rounds of %d changes in %s; load average (/proc/loadavg 1, 5, 15 min) before %s, after %s\n\n",
		rounds, len(cells), time.Since(t0).Round(time.Second), load0, loadAvg())
	if err := report(o, cells); err != nil {
		return err
	}
	if err := breakdown(ctx, o, cells); err != nil {
		return err
	}
	if o.interval <= 0 {
		return nil
	}
	for _, c := range cells {
		if err := c.churn(ctx, o); err != nil {
			return err
		}
	}
	reportChurn(o, cells)
	return nil
}
