// Command hitless measures what HAProxy server changes cost with and
// without the runtime API (results in docs/PERFORMANCE.md):
//
//	go build -o bin/ ./cmd/... && go run ./bench/hitless
//
// 1. Under load: for each mode (live: the template has `haproxy: {}`;
// reload: it has not, so every change reloads haproxy with SIGUSR2), an
// embedded etcd, the templater binary rendering
// examples/haproxy/haproxy.cfg.tmpl, a master-worker haproxy, real HTTP
// backends on 127.0.0.1 and -conns keep-alive clients hammering the
// frontend, while the registry goes through 100 health flips, 30 drains,
// 30 additions, 30 removals and 20 weight changes, each waited for in
// haproxy's live state (`show servers state`) before the next.
//
// 2. Propagation: at each -sizes, -changes health flips, timed from the
// etcd put to haproxy's live state showing the new admin state.
//
// Everything runs on loopback, and every loop is bounded.
package main

import (
	"context"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/rewire/rewire/bench/hitless/lab"
	"github.com/rewire/rewire/internal/embedetcd"
)

type options struct {
	templater, haproxy, template string
	conns, changes               int
	sizes                        []int
	seed                         uint64
	modes                        []bool // live, reload
	checkFirst                   bool
	noLoad                       bool
}

func main() {
	var o options
	var sizes string
	flag.StringVar(&o.templater, "templater", "bin/templater", "templater binary (go build -o bin/ ./cmd/...)")
	flag.StringVar(&o.haproxy, "haproxy", "", "haproxy binary (default: from $PATH or /usr/sbin)")
	flag.StringVar(&o.template, "template", "examples/haproxy/haproxy.cfg.tmpl", "template")
	flag.IntVar(&o.conns, "conns", 20, "keep-alive client connections")
	flag.IntVar(&o.changes, "changes", 100, "health flips per propagation size")
	flag.StringVar(&sizes, "sizes", "10,1000", "server counts for propagation")
	flag.Uint64Var(&o.seed, "seed", 5, "seed of the change order")
	flag.BoolVar(&o.noLoad, "propagation-only", false, "skip the run under load; measure propagation only")
	flag.BoolVar(&o.checkFirst, "check-first", false, "live mode with haproxy.live_first false: a server change waits for its check")
	modes := flag.String("modes", "live,reload", "modes to run: live (runtime API), reload (every change)")
	flag.Parse()
	for _, m := range strings.Split(*modes, ",") {
		switch m {
		case "live":
			o.modes = append(o.modes, true)
		case "reload":
			o.modes = append(o.modes, false)
		default:
			fatal(fmt.Errorf("-modes: unknown mode %q (want live or reload)", m))
		}
	}
	for _, s := range strings.Split(sizes, ",") {
		n, err := strconv.Atoi(s)
		if err != nil {
			fatal(err)
		}
		o.sizes = append(o.sizes, n)
	}
	if err := run(o); err != nil {
		fatal(err)
	}
}

func fatal(err error) {
	fmt.Fprintln(os.Stderr, "hitless:", err)
	os.Exit(1)
}

func run(o options) error {
	var err error
	if o.templater, err = filepath.Abs(o.templater); err != nil {
		return err
	}
	if o.template, err = filepath.Abs(o.template); err != nil {
		return err
	}
	if o.haproxy == "" {
		if o.haproxy, err = exec.LookPath("haproxy"); err != nil {
			o.haproxy = "/usr/sbin/haproxy"
		}
	}
	ctx := context.Background()
	if !o.noLoad {
		if err := loadRuns(ctx, o); err != nil {
			return err
		}
	}
	fmt.Printf("\nPropagation: etcd put of a health flip → haproxy's live admin state changed (%d flips each)\n\n", o.changes)
	fmt.Println("| servers | mode | p50 | p99 | max |")
	fmt.Println("|---:|---|---:|---:|---:|")
	for _, n := range o.sizes {
		for _, live := range o.modes {
			row, err := propagation(ctx, o, n, live)
			if err != nil {
				return err
			}
			fmt.Println(row)
		}
	}
	return nil
}

// loadRuns runs every mode under load and prints its table.
func loadRuns(ctx context.Context, o options) error {
	fmt.Printf("%d keep-alive connections; changes: %+v\n\n", o.conns, lab.HitlessMix)
	fmt.Println("| mode | changes | reloads | requests | non-2xx | socket errors | p99 latency |")
	fmt.Println("|---|---:|---:|---:|---:|---:|---:|")
	var notes []string
	for _, live := range o.modes {
		row, note, err := underLoad(ctx, o, live)
		if err != nil {
			return err
		}
		fmt.Println(row)
		notes = append(notes, note)
	}
	fmt.Println()
	for _, n := range notes {
		fmt.Println(n)
	}
	return nil
}

func mode(live bool) string {
	if live {
		return "live (runtime API)"
	}
	return "reload (haproxy.live false)"
}

// newLab starts etcd and the lab in a fresh short directory.
func newLab(ctx context.Context, o options, live bool, instances int, backends bool) (*lab.Lab, func(), error) {
	dir, err := os.MkdirTemp("", "hitless-")
	if err != nil {
		return nil, nil, err
	}
	e, err := embedetcd.Start(ctx, embedetcd.Options{Dir: filepath.Join(dir, "etcd")})
	if err != nil {
		os.RemoveAll(dir)
		return nil, nil, err
	}
	l, err := lab.Start(ctx, lab.Options{Endpoints: e.Endpoints(), Templater: o.templater, HAProxy: o.haproxy,
		Template: o.template, Dir: dir, Live: live, CheckFirst: o.checkFirst, Instances: instances, Backends: backends})
	if err != nil {
		e.Close()
		os.RemoveAll(dir)
		return nil, nil, err
	}
	return l, func() { l.Close(); e.Close(); os.RemoveAll(dir) }, nil
}

func underLoad(ctx context.Context, o options, live bool) (row, note string, err error) {
	l, stop, err := newLab(ctx, o, live, 6, true)
	if err != nil {
		return "", "", err
	}
	defer stop()
	before, err := l.MetricSamples("templater_")
	if err != nil {
		return "", "", err
	}
	load := lab.StartLoad(ctx, "http://"+l.Bind+"/web/", o.conns, 15*time.Minute)
	t0 := time.Now()
	writes, err := l.Run(ctx, lab.HitlessMix, o.seed, 2, 60*time.Second)
	elapsed := time.Since(t0)
	res := load.Stop()
	if err != nil {
		return "", "", fmt.Errorf("%s: after %d writes: %w\ntemplater log:\n%s\nhaproxy log:\n%s", mode(live), writes, err, l.Log("templater"), l.Log("haproxy"))
	}
	after, err := l.MetricSamples("templater_")
	if err != nil {
		return "", "", err
	}
	d := lab.Delta(before, after)
	reloads := 0.0
	var byReason []string
	for k, v := range d {
		if strings.HasPrefix(k, "templater_reloads_total{") {
			reloads += v
		}
		if strings.HasPrefix(k, "templater_haproxy_reloads_total{") || strings.HasPrefix(k, "templater_reloads_total{") ||
			strings.HasPrefix(k, "templater_haproxy_live_changes_total{") {
			byReason = append(byReason, fmt.Sprintf("%s %g", k, v))
		}
	}
	slices.Sort(byReason)
	// Live-first: haproxy may show the last change one check before the
	// file does, so the file gets a few seconds to catch up.
	verify := "live state = file"
	if err := lab.Poll(ctx, 10*time.Second, "the file to equal haproxy's live state", l.VerifyFile); err != nil {
		verify = err.Error()
	}
	row = fmt.Sprintf("| %s | %d (%d writes) | %g | %d | %d | %d | %s |", mode(live), lab.HitlessMix.Total(), writes,
		reloads, res.Requests, res.Non2xx, res.Errors, res.P99.Round(10*time.Microsecond))
	note = fmt.Sprintf("%s: %s, p50 %s, max %s, at the end %s; metrics: %s; first errors: %q", mode(live),
		elapsed.Round(time.Millisecond), res.P50.Round(10*time.Microsecond), res.Max.Round(10*time.Microsecond), verify,
		strings.Join(byReason, ", "), res.Samples)
	return row, note, nil
}

func propagation(ctx context.Context, o options, n int, live bool) (string, error) {
	l, stop, err := newLab(ctx, o, live, n, false)
	if err != nil {
		return "", err
	}
	defer stop()
	rng := rand.New(rand.NewPCG(o.seed, uint64(n)))
	ids := make([]string, 0, len(l.Model))
	for id := range l.Model {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	var lat []time.Duration
	for range o.changes {
		id := ids[rng.IntN(len(ids))]
		t0 := time.Now()
		if err := l.Update(ctx, id, func(in *lab.Instance) { in.Critical = !in.Critical }); err != nil {
			return "", err
		}
		want := l.Model[id].Critical
		err := lab.Poll(ctx, 60*time.Second, id+" admin state", func() error {
			st, err := l.Client.ShowServersState(ctx, lab.Service)
			if err != nil {
				return err
			}
			for _, s := range st {
				if s.Name == id && s.AdminMaint() == want {
					return nil
				}
			}
			return fmt.Errorf("%s not yet maint=%t", id, want)
		})
		if err != nil {
			return "", err
		}
		lat = append(lat, time.Since(t0))
	}
	slices.Sort(lat)
	k := len(lat)
	r := func(d time.Duration) time.Duration { return d.Round(10 * time.Microsecond) }
	return fmt.Sprintf("| %d | %s | %s | %s | %s |", n, mode(live), r(lat[k/2]), r(lat[max(0, (k*99+99)/100-1)]), r(lat[k-1])), nil
}
