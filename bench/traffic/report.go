package main

import (
	"context"
	"flag"
	"fmt"
	"os/exec"
	"runtime"
	"strings"
	"time"

	"github.com/rewire/rewire/bench/hitless/lab"
	"github.com/rewire/rewire/bench/internal/propagation"
)

var pct, ms = propagation.Pct, propagation.MS

func loadAvg() string { return propagation.LoadAvg() }

func printHeader(o options) {
	v, _ := exec.Command(o.haproxy, "-v").Output()
	first, _, _ := strings.Cut(string(v), "\n")
	check := "live-first (a server change goes to the runtime API before its check)"
	if !o.liveFirst {
		check = "live_first false (a server change waits for its check)"
	}
	fmt.Printf("# put → traffic: %d timed health flips per configuration (after %d untimed), polled every %s; %s; haproxy/cache_servers %t\n\n",
		o.changes, o.warmup, o.poll, check, o.cacheServers)
	fmt.Printf("- %s; %d CPUs; load average %s; %s\n", time.Now().UTC().Format(time.RFC3339), runtime.NumCPU(), loadAvg(), first)
	cmd := []string{"go run ./bench/traffic"}
	flag.VisitAll(func(f *flag.Flag) { cmd = append(cmd, fmt.Sprintf("-%s=%s", f.Name, f.Value)) })
	fmt.Printf("- command (every flag, as set): `%s`\n\n", strings.Join(cmd, " "))
}

// pollCosts times, on the haproxy of each single-service configuration and
// the largest one, what polling the changed server costs: one server
// (`show stat <backend> 4 <sid>`, what the bench polls) against the whole
// backend (`show servers state <backend>`), in wall time and in haproxy's
// CPU time.
func pollCosts(ctx context.Context, cells []*cell) error {
	fmt.Println("| polling one server's state | servers in its backend | wall per query | haproxy CPU per query |")
	fmt.Println("|---|---:|---:|---:|")
	done := map[[2]int]bool{}
	for _, c := range cells {
		if done[[2]int{c.instances, c.services}] {
			continue
		}
		done[[2]int{c.instances, c.services}] = true
		pid, err := c.lab.Client.WorkerPID(ctx)
		if err != nil {
			return err
		}
		id := c.ids[len(c.ids)/2]
		be, sid := c.lab.Model[id].Service, c.sid[id]
		per := c.instances / c.services
		for _, q := range []struct {
			cmd string
			n   int
		}{{fmt.Sprintf("show stat %s 4 %d", be, sid), 300}, {"show servers state " + be, 30}} {
			cpu0, t0 := propagation.CPUSeconds(pid), time.Now()
			for range q.n {
				if _, err := c.lab.Client.Command(ctx, q.cmd); err != nil {
					return fmt.Errorf("%s: %w", q.cmd, err)
				}
			}
			wall, cpu := time.Since(t0)/time.Duration(q.n), (propagation.CPUSeconds(pid)-cpu0)/float64(q.n)
			fmt.Printf("| `%s` | %d | %s | %.2f ms |\n", q.cmd, per, ms(wall), cpu*1000)
		}
	}
	fmt.Println("\n(haproxy's CPU time is read from /proc in 10 ms ticks: a mean over the queries)")
	fmt.Println()
	return nil
}

// report prints the table, what the templater did, and the targets.
func report(o options, cells []*cell) error {
	fmt.Println("| layout | instances | check | floor p50 / p99 | put→file p50 / p99 | put→live p50 / p99 | live / floor p50 | file / floor p50 | put→done p50 | polls per change |")
	fmt.Println("|---|---:|---|---:|---:|---:|---:|---:|---:|---:|")
	for _, c := range cells {
		fl := pct(c.floorS, 50)
		fmt.Printf("| %s | %d | %s | %s / %s | %s / %s | %s / %s | %.1f× | %.1f× | %s | %.1f |\n",
			plural(c.services, "service"), c.instances, yesNo(c.check), ms(fl), ms(pct(c.floorS, 99)),
			ms(pct(c.file, 50)), ms(pct(c.file, 99)), ms(pct(c.live, 50)), ms(pct(c.live, 99)),
			ratio(pct(c.live, 50), fl), ratio(pct(c.file, 50), fl), ms(pct(c.settled, 50)),
			float64(c.polls)/float64(len(c.live)))
	}
	fmt.Println("\nfloor: put → its watch event on the same etcd (one sample before each change); put→file: until the rendered" +
		" file shows the change (fsnotify on the rename, then a read, as bench/templater); put→live: until haproxy's" +
		" `show stat` of the changed server shows it in (or out of) maintenance; put→done: until the templater saved" +
		" haproxy's server state, the last step of a live change, after which the next change starts.")
	fmt.Println("\nWhat each templater did over the timed and untimed changes (from its /metrics):")
	fmt.Println()
	for _, c := range cells {
		after, err := c.lab.MetricSamples("templater_")
		if err != nil {
			return err
		}
		d := lab.Delta(c.metrics0, after)
		sum := func(prefix string) float64 { return sumPrefix(d, prefix) }
		rounds := sum("templater_render_duration_seconds_count")
		mean := 0.0
		if rounds > 0 {
			mean = sum("templater_render_duration_seconds_sum") / rounds * 1000
		}
		fmt.Printf("- %s: %g server changes live, %g reloads, %g apply rounds of %.1f ms on average (a round: render, check if any, swap, runtime API, verify, state save)\n",
			c.cellConfig, sum("templater_haproxy_live_changes_total"), sum("templater_reloads_total"),
			rounds, mean)
	}
	fmt.Println("\nTargets (benchmarks, not tests):")
	fmt.Println()
	for _, c := range cells {
		fl := pct(c.floorS, 50)
		if c.services == 1 && c.instances == 10000 && c.check {
			fmt.Printf("- put→live, %s: p50 %.1f× the floor (target ≤ 10×)\n", c.cellConfig, ratio(pct(c.live, 50), fl))
		}
		if c.services == 1 && (c.instances == 1000 || c.instances == 10000) && !c.check {
			fmt.Printf("- put→file, %s: p50 %.1f× the floor (target ≤ 3×)\n", c.cellConfig, ratio(pct(c.file, 50), fl))
		}
	}
	return nil
}

// sumPrefix adds up the samples whose name (with labels) starts with prefix.
func sumPrefix(samples map[string]float64, prefix string) float64 {
	t := 0.0
	for k, v := range samples {
		if strings.HasPrefix(k, prefix) {
			t += v
		}
	}
	return t
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

func ratio(a, b time.Duration) float64 {
	if b <= 0 {
		return 0
	}
	return float64(a) / float64(b)
}
