// Command templater measures the templater (run it with
// `go run ./bench/templater` after `go build -o bin/ ./cmd/templater`;
// results go in docs/PERFORMANCE.md). For each registry size it starts an
// embedded etcd (default options: fsync on), loads N instance records
// under /bench/services/ and measures, one change outstanding at a time:
//
//  1. raw: etcd put → watch event on the same etcd (the floor), interleaved
//     with the samples of 2 and 3 so both see the same machine;
//  2. in-process: registry.Watcher + render.Runner rendering
//     examples/haproxy into a temp dir, from put to the destination file
//     holding the new state (seen with fsnotify on the rename, then read);
//  3. process: the same with the real templater binary, plus its RSS;
//     at -burst-instances it also sends a burst of changes as fast as
//     possible and reports the templater's CPU time, wall time and renders.
//
// Each change flips one instance's shallow health passing ↔ critical, so
// the rendered file really changes. No check or reload command runs: this
// measures rewire itself. Everything is on loopback and bounded.
package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/rewire/rewire/bench/internal/propagation"
	"github.com/rewire/rewire/internal/freeport"
	"github.com/rewire/rewire/internal/promtext"

	"github.com/fsnotify/fsnotify"
	"github.com/rewire/rewire/health"
	"github.com/rewire/rewire/internal/embedetcd"
	"github.com/rewire/rewire/registry"
	"github.com/rewire/rewire/registry/schema"
	"github.com/rewire/rewire/render"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
)

const prefix = "/bench"

var keys = schema.Keys{Prefix: prefix}

type options struct {
	sizes          []int // instance counts, in 50 services (fewer when N < 50)
	oneService     []int // instance counts to run again with one service
	changes        int
	burst          int
	burstInstances int
	bin, tmpl      string
	env            []string // added to the templater process's environment
	keys           []string // free-form keys put before the run, as key=value
	memprofile     string   // heap profile of the in-process templater after its changes
}

func main() {
	var o options
	sizes := flag.String("instances", "10,1000,10000", "instance counts (spread over 50 services)")
	one := flag.String("one-service", "10000", "instance counts to run again with every instance in one service (\"\" for none)")
	flag.IntVar(&o.changes, "changes", 200, "timed changes per size and mode")
	flag.IntVar(&o.burst, "burst", 1000, "changes in the burst")
	flag.IntVar(&o.burstInstances, "burst-instances", 1000, "registry size of the burst (must be one of -instances)")
	kv := flag.String("keys", "", "comma-separated `key=value` free-form keys (relative to the prefix) put before each run, e.g. haproxy/cache_servers=false")
	flag.StringVar(&o.bin, "templater", "bin/templater", "templater binary (go build -o bin/ ./cmd/templater)")
	flag.StringVar(&o.tmpl, "template", "examples/haproxy/haproxy.cfg.tmpl", "template to render")
	env := flag.String("templater-env", "", "comma-separated `NAME=value` pairs for the templater process (e.g. GOMEMLIMIT=24MiB)")
	flag.StringVar(&o.memprofile, "memprofile", "", "write a heap profile of this process after the in-process templater's changes (the last size run) to `file`")
	cpuprofile := flag.String("cpuprofile", "", "write a CPU profile of this process (etcd and the in-process templater) to `file`")
	flag.Parse()
	if *cpuprofile != "" {
		f, err := os.Create(*cpuprofile)
		if err == nil {
			err = pprof.StartCPUProfile(f)
		}
		if err != nil {
			fmt.Fprintln(os.Stderr, "bench:", err)
			os.Exit(1)
		}
		defer f.Close()
		defer pprof.StopCPUProfile()
	}
	if *env != "" {
		o.env = strings.Split(*env, ",")
	}
	if *kv != "" {
		o.keys = strings.Split(*kv, ",")
	}
	var err error
	if o.sizes, err = ints(*sizes); err == nil {
		o.oneService, err = ints(*one)
	}
	if err == nil {
		err = run(o)
	}
	if err != nil {
		pprof.StopCPUProfile()
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

func ints(s string) ([]int, error) {
	var out []int
	for f := range strings.SplitSeq(s, ",") {
		if f = strings.TrimSpace(f); f == "" {
			continue
		}
		n, err := strconv.Atoi(f)
		if err != nil || n < 1 || n > 99999 {
			return nil, fmt.Errorf("instance count %q: want 1-99999", f)
		}
		out = append(out, n)
	}
	return out, nil
}

// row is one line of the result table.
type row struct {
	n, services              int
	raw, rawProc, inproc, pr []time.Duration
	mem                      procMem
}

func run(o options) error {
	if _, err := os.Stat(o.bin); err != nil {
		return fmt.Errorf("%w (build it: go build -o bin/ ./cmd/templater)", err)
	}
	var err error
	if o.tmpl, err = filepath.Abs(o.tmpl); err != nil {
		return err
	}
	if o.bin, err = filepath.Abs(o.bin); err != nil {
		return err
	}
	type size struct{ n, services int }
	var sizes []size
	for _, n := range o.sizes {
		sizes = append(sizes, size{n, min(n, 50)})
	}
	for _, n := range o.oneService {
		sizes = append(sizes, size{n, 1})
	}
	fmt.Printf("# templater propagation: %d sequential changes per size and mode, etcd fsync on\n\n", o.changes)
	var rows []row
	start := time.Now()
	for _, s := range sizes {
		r, err := measure(o, s.n, s.services, s.services > 1 && s.n == o.burstInstances)
		if err != nil {
			return fmt.Errorf("%s: %w", layout(s.n, s.services), err)
		}
		rows = append(rows, r)
	}
	fmt.Printf("\n| instances | raw watch p50 / p99 | in-process propagation p50 / p99 | ratio p50 | process propagation p50 / p99 | process RSS max (peak) |\n|---|---|---|---|---|---|\n")
	for _, r := range rows {
		fmt.Printf("| %s | %s / %s | %s / %s | %.1f× | %s / %s | %.1f MiB (%.1f) |\n", layout(r.n, r.services),
			ms(pct(r.raw, 50)), ms(pct(r.raw, 99)), ms(pct(r.inproc, 50)), ms(pct(r.inproc, 99)),
			float64(pct(r.inproc, 50))/float64(pct(r.raw, 50)),
			ms(pct(r.pr, 50)), ms(pct(r.pr, 99)), float64(r.mem.RSS)/1024, float64(r.mem.HWM)/1024)
	}
	fmt.Printf("\ntotal run time %s\n", time.Since(start).Round(time.Second))
	return nil
}

func layout(n, services int) string {
	if services == 1 {
		return fmt.Sprintf("%d instances in 1 service", n)
	}
	return fmt.Sprintf("%d instances in %d services", n, services)
}

// cluster is one embedded etcd with the registry loaded.
type cluster struct {
	srv      *embedetcd.Server
	cli      *clientv3.Client // writes
	n, svcs  int
	critical []bool // the state each instance's record is in
	rec      []byte // a record, for raw puts of the same size
}

func measure(o options, n, services int, burst bool) (row, error) {
	ctx := context.Background()
	r := row{n: n, services: services}
	dir, err := os.MkdirTemp("", "rewire-bench-templater")
	if err != nil {
		return r, err
	}
	defer os.RemoveAll(dir)
	srv, err := embedetcd.Start(ctx, embedetcd.Options{Dir: filepath.Join(dir, "etcd")})
	if err != nil {
		return r, err
	}
	defer srv.Close()
	c := &cluster{srv: srv, n: n, svcs: services, critical: make([]bool, n)}
	if c.cli, err = newClient(srv); err != nil {
		return r, err
	}
	defer c.cli.Close()
	t0 := time.Now()
	if err := c.load(ctx); err != nil {
		return r, err
	}
	for _, kv := range o.keys {
		k, v, _ := strings.Cut(kv, "=")
		if _, err := c.cli.Put(ctx, keys.Root()+k, v); err != nil {
			return r, fmt.Errorf("put %s: %w", k, err)
		}
	}
	fmt.Printf("## %s\n\n- loaded in %s\n", layout(n, services), time.Since(t0).Round(time.Millisecond))

	raw, err := propagation.NewFloor(ctx, srv.Endpoints())
	if err != nil {
		return r, err
	}
	defer raw.Close()

	// In process: the same wiring as `templater run`, minus HTTP.
	inDir := filepath.Join(dir, "inproc")
	os.Mkdir(inDir, 0o755)
	r.raw, r.inproc, err = c.inProcess(ctx, o, raw, inDir)
	if err != nil {
		return r, fmt.Errorf("in-process: %w", err)
	}
	fmt.Printf("- raw put→event: %s\n- in-process put→file: %s\n", summary(r.raw), summary(r.inproc))

	// The real binary.
	prDir := filepath.Join(dir, "process")
	os.Mkdir(prDir, 0o755)
	p, err := c.startProcess(o, prDir)
	if err != nil {
		return r, fmt.Errorf("process: %w", err)
	}
	defer p.stop()
	r.rawProc, r.pr, err = c.sequential(ctx, o.changes, raw, p.dest, p.events)
	if err != nil {
		return r, fmt.Errorf("process: %w", err)
	}
	fmt.Printf("- raw put→event (process phase): %s\n- process put→file: %s\n", summary(r.rawProc), summary(r.pr))
	if burst {
		if err := c.burst(ctx, o.burst, p); err != nil {
			return r, fmt.Errorf("burst: %w", err)
		}
	}
	r.mem = p.rss()
	mem, err := scrape(p.listen)
	if err != nil {
		return r, err
	}
	mib := func(name string) float64 { return mem[name] / (1 << 20) }
	fmt.Printf("- process RSS: max sampled %.1f MiB (%.1f anonymous, %.1f file-backed), peak (VmHWM) %.1f MiB; Go heap at the end: %.1f MiB allocated, next GC at %.1f MiB, %.1f MiB in use, %.1f MiB obtained from the OS\n",
		float64(r.mem.RSS)/1024, float64(r.mem.Anon)/1024, float64(r.mem.File)/1024, float64(r.mem.HWM)/1024, mib("go_memstats_heap_alloc_bytes"), mib("go_memstats_next_gc_bytes"),
		mib("go_memstats_heap_inuse_bytes"), mib("go_memstats_sys_bytes"))
	fmt.Printf("  of which heap idle %.1f MiB (%.1f released to the OS), stacks %.1f MiB, GC metadata %.1f MiB, other %.1f MiB\n\n",
		mib("go_memstats_heap_idle_bytes"), mib("go_memstats_heap_released_bytes"), mib("go_memstats_stack_sys_bytes"),
		mib("go_memstats_gc_sys_bytes"), mib("go_memstats_other_sys_bytes"))
	return r, nil
}

func newClient(srv *embedetcd.Server) (*clientv3.Client, error) {
	return clientv3.New(clientv3.Config{Endpoints: srv.Endpoints(), DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
}

func (c *cluster) name(i int) (svc, id string) {
	return fmt.Sprintf("svc%02d", i%c.svcs), fmt.Sprintf("i%05d", i)
}

func (c *cluster) address(i int) string {
	return fmt.Sprintf("10.%d.%d.%d", i>>16&255, i>>8&255, i&255)
}

// record is instance i's record: realistic, with one check, a tag and a
// meta entry, as the registrar writes it.
func (c *cluster) record(i int, critical bool) []byte {
	svc, id := c.name(i)
	st, out := health.Passing, "HTTP 200"
	if critical {
		st, out = health.Critical, "connection refused"
	}
	since := time.Date(2026, 11, 21, 19, 0, 0, 0, time.UTC)
	in := schema.Instance{
		V: schema.Version, Service: svc, ID: id, Node: fmt.Sprintf("node%d", i%100),
		Address: c.address(i), Port: 8080, Tags: []string{"v2"}, Meta: map[string]string{"version": "1.4.2"},
		Weight: schema.DefaultWeight, RegisteredAt: since.Add(-time.Hour),
		Health: schema.Health{Shallow: st, Since: since,
			Checks: []schema.Check{{Name: "alive", Kind: health.Shallow, Status: st, Output: out, Since: since}}},
	}
	b, err := in.Marshal()
	if err != nil {
		panic(err) // the bench builds only valid records
	}
	return b
}

// line is the server line examples/haproxy renders for instance i in its
// current state (without its line break: the file's last line has none).
func (c *cluster) line(i int) []byte {
	_, id := c.name(i)
	if c.critical[i] {
		return fmt.Appendf(nil, "    server %s %s:8080 weight 100 disabled  # critical", id, c.address(i))
	}
	return fmt.Appendf(nil, "    server %s %s:8080 weight 100  # passing", id, c.address(i))
}

// load writes every record, 100 to a transaction.
func (c *cluster) load(ctx context.Context) error {
	c.rec = c.record(0, false)
	for lo := 0; lo < c.n; lo += 100 {
		var ops []clientv3.Op
		for i := lo; i < min(lo+100, c.n); i++ {
			svc, id := c.name(i)
			ops = append(ops, clientv3.OpPut(keys.Instance(svc, id), string(c.record(i, false))))
		}
		if _, err := c.cli.Txn(ctx).Then(ops...).Commit(); err != nil {
			return fmt.Errorf("load: %w", err)
		}
	}
	return nil
}

// flip writes instance i with its health flipped.
func (c *cluster) flip(ctx context.Context, i int) error {
	c.critical[i] = !c.critical[i]
	svc, id := c.name(i)
	_, err := c.cli.Put(ctx, keys.Instance(svc, id), string(c.record(i, c.critical[i])))
	return err
}

// inProcess runs a Watcher and a Runner in this process and times changes.
func (c *cluster) inProcess(ctx context.Context, o options, raw *propagation.Floor, dir string) (rawS, prop []time.Duration, err error) {
	cli, err := newClient(c.srv)
	if err != nil {
		return nil, nil, err
	}
	defer cli.Close()
	dest := filepath.Join(dir, "haproxy.cfg")
	t, err := render.NewTarget(render.TargetConfig{Name: "haproxy", Source: o.tmpl, Destination: dest}, render.Options{Keys: keys})
	if err != nil {
		return nil, nil, err
	}
	w := registry.NewWatcher(registry.WatcherOptions{Client: cli, Keys: keys})
	runner := render.NewRunner(render.RunnerOptions{Source: w, Targets: []*render.Target{t}})
	ev, stopEv, err := propagation.WatchDir(dir)
	if err != nil {
		return nil, nil, err
	}
	defer stopEv()
	rctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Go(func() { w.Run(rctx) })
	wg.Go(func() { runner.Run(rctx) })
	defer func() { cancel(); wg.Wait() }()
	t0 := time.Now()
	if err := c.waitAll(ev, dest, time.Minute); err != nil {
		return nil, nil, err
	}
	fmt.Printf("- in-process templater: first file %s after start\n", time.Since(t0).Round(time.Millisecond))
	rawS, prop, err = c.sequential(ctx, o.changes, raw, dest, ev)
	if err == nil && o.memprofile != "" {
		err = writeHeapProfile(o.memprofile)
	}
	return rawS, prop, err
}

// sequential times changes, one outstanding, each after one raw sample.
func (c *cluster) sequential(ctx context.Context, m int, raw *propagation.Floor, dest string, ev <-chan fsnotify.Event) (rawS, prop []time.Duration, err error) {
	const warmup = 5
	for k := range warmup + m {
		d, err := raw.Sample(ctx, c.cli, c.rec)
		if err != nil {
			return nil, nil, err
		}
		i := (k*7919 + 13) % c.n // spread over services and positions
		propagation.Drain(ev)
		t0 := time.Now()
		if err := c.flip(ctx, i); err != nil {
			return nil, nil, err
		}
		want := c.line(i)
		if err := propagation.WaitFile(ev, dest, 10*time.Second, func(b []byte) bool { return bytes.Contains(b, want) }); err != nil {
			return nil, nil, fmt.Errorf("change %d (%s): %w", k, want, err)
		}
		p := time.Since(t0)
		if k >= warmup {
			rawS, prop = append(rawS, d), append(prop, p)
		}
	}
	return rawS, prop, nil
}

// matches reports whether the file holds exactly the current state of
// every instance.
func (c *cluster) matches(b []byte) bool {
	seen := 0
	for line := range bytes.Lines(b) {
		rest, ok := bytes.CutPrefix(line, []byte("    server i"))
		if !ok {
			continue
		}
		sp := bytes.IndexByte(rest, ' ')
		i, err := strconv.Atoi(string(rest[:max(sp, 0)]))
		if err != nil || i >= c.n || bytes.HasSuffix(bytes.TrimSpace(line), []byte("# critical")) != c.critical[i] {
			return false
		}
		seen++
	}
	return seen == c.n
}

// waitAll waits until the destination reflects the whole current state.
func (c *cluster) waitAll(ev <-chan fsnotify.Event, dest string, timeout time.Duration) error {
	if b, err := os.ReadFile(dest); err == nil && c.matches(b) {
		return nil
	}
	return propagation.WaitFile(ev, dest, timeout, c.matches)
}

// process is a running templater binary.
type process struct {
	cmd    *exec.Cmd
	dest   string
	listen string
	events <-chan fsnotify.Event
	stopEv func()
	done   chan struct{}

	// mu guards maxRSS.
	mu     sync.Mutex
	maxRSS procMem
}

func (c *cluster) startProcess(o options, dir string) (*process, error) {
	listen, err := freePort()
	if err != nil {
		return nil, err
	}
	p := &process{dest: filepath.Join(dir, "haproxy.cfg"), listen: listen, done: make(chan struct{})}
	cfg := filepath.Join(dir, "templater.yaml")
	if err := os.WriteFile(cfg, fmt.Appendf(nil, "etcd: {endpoints: [%q], prefix: %s}\nlisten: %s\ntemplates:\n  - {name: haproxy, source: %q, destination: %q}\n",
		c.srv.Endpoints()[0], prefix, listen, o.tmpl, p.dest), 0o644); err != nil {
		return nil, err
	}
	if p.events, p.stopEv, err = propagation.WatchDir(dir); err != nil {
		return nil, err
	}
	p.cmd = exec.Command(o.bin, "run", "-c", cfg, "--log-level", "warn")
	p.cmd.Stderr = os.Stderr
	p.cmd.Env = append(os.Environ(), o.env...)
	t0 := time.Now()
	if err := p.cmd.Start(); err != nil {
		p.stopEv()
		return nil, err
	}
	go p.sample()
	if err := c.waitAll(p.events, p.dest, time.Minute); err != nil {
		p.stop()
		return nil, err
	}
	fmt.Printf("- templater process: first file %s after start\n", time.Since(t0).Round(time.Millisecond))
	return p, nil
}

// sample records the largest RSS until the process is stopped.
func (p *process) sample() {
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-p.done:
			return
		case <-tick.C:
			m := memKB(p.cmd.Process.Pid)
			p.mu.Lock()
			if m.RSS > p.maxRSS.RSS {
				p.maxRSS = m
			}
			p.mu.Unlock()
		}
	}
}

// rss returns the sample with the largest VmRSS, with the kernel's peak
// (VmHWM) read now.
func (p *process) rss() procMem {
	hwm := memKB(p.cmd.Process.Pid).HWM
	p.mu.Lock()
	defer p.mu.Unlock()
	m := p.maxRSS
	m.HWM = hwm
	return m
}

func (p *process) stop() {
	select {
	case <-p.done:
		return
	default:
	}
	close(p.done)
	p.cmd.Process.Signal(os.Interrupt)
	p.cmd.Wait()
	p.stopEv()
}

// burst sends m changes as fast as possible and waits until the file
// reflects all of them. Change k flips instance k%n; 16 writers each own
// the instances i with i%16 == w, so changes to one instance stay in order.
func (c *cluster) burst(ctx context.Context, m int, p *process) error {
	const writers = 16
	type change struct {
		key string
		val string
	}
	plan := make([][]change, writers)
	for k := range m {
		i := k % c.n
		c.critical[i] = !c.critical[i]
		svc, id := c.name(i)
		plan[i%writers] = append(plan[i%writers], change{keys.Instance(svc, id), string(c.record(i, c.critical[i]))})
	}
	pid := p.cmd.Process.Pid
	before, err := scrape(p.listen)
	if err != nil {
		return err
	}
	propagation.Drain(p.events)
	cpu0, t0 := propagation.CPUSeconds(pid), time.Now()
	var wg sync.WaitGroup
	errs := make([]error, writers)
	for w := range writers {
		wg.Go(func() {
			for _, ch := range plan[w] {
				if _, err := c.cli.Put(ctx, ch.key, ch.val); err != nil {
					errs[w] = err
					return
				}
			}
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return err
	}
	puts := time.Since(t0)
	if err := propagation.WaitFile(p.events, p.dest, time.Minute, c.matches); err != nil {
		return err
	}
	wall, cpu := time.Since(t0), propagation.CPUSeconds(pid)-cpu0
	after, err := scrape(p.listen)
	if err != nil {
		return err
	}
	d := func(name string) float64 { return after[name] - before[name] }
	fmt.Printf("- burst: %d changes to %d instances, %d writers: all acknowledged after %s; file reflected every one after %s\n",
		m, c.n, writers, puts.Round(time.Millisecond), wall.Round(time.Millisecond))
	fmt.Printf("- burst: templater CPU %.2f s (user+system) over %s; %.0f renders written, %.0f unchanged, %.0f skipped; %.0f watch events applied; %.0f garbage collections\n",
		cpu, wall.Round(time.Millisecond), d(`templater_renders_total{template="haproxy"}`),
		d(`templater_renders_unchanged_total{template="haproxy"}`), d(`templater_renders_skipped_total{template="haproxy"}`),
		d("registry_watch_events_total"), d("go_gc_duration_seconds_count"))
	return nil
}

// scrape reads the templater's /metrics into name{labels} → value.
func scrape(listen string) (map[string]float64, error) { return promtext.Scrape(listen, "") }

func freePort() (string, error) { return freeport.Addr() }

// procMem is a process's memory from /proc/PID/status, in KiB.
type procMem struct {
	RSS, HWM, Anon, File int
}

// memKB reads pid's VmRSS, VmHWM, RssAnon and RssFile.
func memKB(pid int) procMem {
	var m procMem
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return m
	}
	fields := map[string]*int{"VmRSS": &m.RSS, "VmHWM": &m.HWM, "RssAnon": &m.Anon, "RssFile": &m.File}
	for line := range strings.SplitSeq(string(b), "\n") {
		name, rest, _ := strings.Cut(line, ":")
		if dst, ok := fields[name]; ok {
			if f := strings.Fields(rest); len(f) > 0 {
				*dst, _ = strconv.Atoi(f[0])
			}
		}
	}
	return m
}

func summary(s []time.Duration) string {
	return fmt.Sprintf("p50 %s, p90 %s, p99 %s, max %s (n=%d)", ms(pct(s, 50)), ms(pct(s, 90)), ms(pct(s, 99)), ms(pct(s, 100)), len(s))
}

// pct and ms are shared with bench/traffic, so both report alike.
var pct, ms = propagation.Pct, propagation.MS

// writeHeapProfile writes a heap profile of this process to path, after a
// collection, so that it shows what stays live.
func writeHeapProfile(path string) error {
	runtime.GC()
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	defer f.Close()
	return pprof.WriteHeapProfile(f)
}
