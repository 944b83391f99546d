package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"time"

	"github.com/rewire/rewire/haproxy"
)

// breakdown times, in this process and on a lab's files and haproxy,
// the check and the library calls the templater makes for one live
// change after applying it: where put → file and put → done spend their
// time beyond put → live. Each step runs 3 times; the median is printed. It runs
// after the timed changes, so it does not disturb them, and writes the
// server-state file to a path of its own.
func breakdown(ctx context.Context, o options, cells []*cell) error {
	fmt.Println("\nWhere a live change's time goes after it is live (the templater's own steps, timed here on each lab's file and haproxy, median of 3):")
	fmt.Println()
	fmt.Println("| layout | instances | `haproxy -c` | `show servers state` + parse | verify live = file | save server state |")
	fmt.Println("|---|---:|---:|---:|---:|---:|")
	for _, c := range cells {
		if !c.check {
			continue // the same files as the cell with a check
		}
		steps, err := c.steps(ctx, o)
		if err != nil {
			return fmt.Errorf("%s: breakdown: %w", c.cellConfig, err)
		}
		fmt.Printf("| %s | %d |", plural(c.services, "service"), c.instances)
		for _, s := range steps {
			fmt.Printf(" %s |", ms(s))
		}
		fmt.Println()
	}
	return nil
}

func (c *cell) steps(ctx context.Context, o options) ([]time.Duration, error) {
	old, err := os.ReadFile(c.lab.Dest)
	if err != nil {
		return nil, err
	}
	dir := filepath.Dir(c.lab.Dest)
	// The next file: one server's maintenance flipped.
	id := c.ids[len(c.ids)/2]
	line := []byte("    server " + id + " ")
	i := bytes.Index(old, line)
	if i < 0 {
		return nil, fmt.Errorf("%s: no server line in %s", id, c.lab.Dest)
	}
	j := bytes.IndexByte(old[i:], '\n')
	if j < 0 {
		j = len(old)
	} else {
		j += i
	}
	from, to := []byte("  #"), []byte(" disabled  #")
	if bytes.Contains(old[i:j], to) {
		from, to = to, from
	}
	next := slices.Concat(old[:i], bytes.Replace(old[i:j], from, to, 1), old[j:])
	state := filepath.Join(dir, "server-state")
	saveCfg, err := haproxy.Parse(bytes.Replace(next, []byte(state+"\n"), []byte(state+"-breakdown\n"), 1))
	if err != nil {
		return nil, err
	}
	staged := filepath.Join(dir, "breakdown.cfg")
	if err := os.WriteFile(staged, next, 0o644); err != nil {
		return nil, err
	}
	defer os.Remove(staged)
	defer os.Remove(state + "-breakdown")
	// Parsed untimed: the templater splices a server-only change onto its
	// last parse instead (haproxy BenchmarkRuntimeChange).
	oldCfg, err := haproxy.Parse(old)
	if err != nil {
		return nil, err
	}
	var live *haproxy.LiveState
	steps := []func() error{
		func() error {
			out, err := exec.CommandContext(ctx, o.haproxy, "-c", "-q", "-f", staged).CombinedOutput()
			if err != nil {
				return fmt.Errorf("haproxy -c: %w: %s", err, out)
			}
			return nil
		},
		func() (err error) { live, err = c.lab.Client.LiveState(ctx); return err },
		func() error { return live.Verify(oldCfg) }, // haproxy runs the old file
		func() error {
			files, err := live.SaveState(saveCfg)
			if err == nil && len(files) == 0 {
				err = fmt.Errorf("no server-state file written")
			}
			return err
		},
	}
	out := make([]time.Duration, len(steps))
	for i, step := range steps {
		var d []time.Duration
		for range 3 {
			t0 := time.Now()
			if err := step(); err != nil {
				return nil, err
			}
			d = append(d, time.Since(t0))
		}
		out[i] = pct(d, 50)
	}
	return out, nil
}
