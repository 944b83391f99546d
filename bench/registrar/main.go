// Command registrar measures the registrar as a process (run it with
// `make bench-registrar`; results go in docs/PERFORMANCE.md):
//
//  1. steady state: one registrar with N instances (HTTP checks every 2s
//     against one local server), after registration: etcd writes per
//     minute (from the store revision), CPU seconds per minute and RSS.
//  2. detection: time from an app's death (its listener closed) to its
//     record turning critical in etcd, against interval × fall.
//
// Everything runs on loopback; request loops are bounded by the run time.
package main

import (
	"context"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/rewire/rewire/internal/embedetcd"
	clientv3 "go.etcd.io/etcd/client/v3"
)

func main() {
	n := flag.Int("instances", 1000, "instances in the steady-state run")
	window := flag.Duration("window", time.Minute, "steady-state observation window")
	deaths := flag.Int("deaths", 5, "app deaths to time")
	bin := flag.String("registrar", "bin/registrar", "registrar binary")
	flag.Parse()
	if err := run(*n, *window, *deaths, *bin); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

func run(n int, window time.Duration, deaths int, bin string) error {
	ctx := context.Background()
	etcd, err := embedetcd.StartScratch(ctx, "rewire-bench-registrar")
	if err != nil {
		return err
	}
	defer etcd.Close()
	cli, dir := etcd.Client, etcd.Dir

	// One HTTP server answers every check.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	hs := &http.Server{Handler: http.HandlerFunc(func(http.ResponseWriter, *http.Request) {})}
	go hs.Serve(l)
	defer hs.Close()

	fmt.Printf("## registrar steady state: %d instances, HTTP check every 2s, window %s\n\n", n, window)
	var b strings.Builder
	fmt.Fprintf(&b, "etcd: {endpoints: [%q], prefix: /bench}\nnode: bench\nlease_ttl: 10s\nlisten: 127.0.0.1:0\nservices:\n", etcd.Endpoint())
	for i := range n {
		fmt.Fprintf(&b, "  - {name: svc%d, id: i%d, address: 127.0.0.1, port: %d, checks: [{name: http, http: \"http://%s/\", interval: 2s}]}\n",
			i%50, i, 10000+i, l.Addr())
	}
	cfg := filepath.Join(dir, "registrar.yaml")
	if err := os.WriteFile(cfg, []byte(b.String()), 0o644); err != nil {
		return err
	}
	cmd := exec.Command(bin, "run", "-c", cfg, "--log-level", "warn")
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		return err
	}
	defer func() { cmd.Process.Signal(os.Interrupt); cmd.Wait() }()
	t0 := time.Now()
	for etcd.Count(ctx, "/bench/services/") < n {
		if time.Since(t0) > 2*time.Minute {
			return fmt.Errorf("only %d of %d registered after 2m", etcd.Count(ctx, "/bench/services/"), n)
		}
		time.Sleep(50 * time.Millisecond)
	}
	fmt.Printf("- all %d registered %.2fs after start\n", n, time.Since(t0).Seconds())
	time.Sleep(3 * time.Second) // let the first check round settle before measuring
	rev0, cpu0, at0 := revision(ctx, cli), cpuSeconds(cmd.Process.Pid), time.Now()
	var rssMax int
	for time.Since(at0) < window {
		time.Sleep(time.Second)
		rssMax = max(rssMax, rssKB(cmd.Process.Pid))
	}
	rev1, cpu1, el := revision(ctx, cli), cpuSeconds(cmd.Process.Pid), time.Since(at0)
	perMin := func(v float64) float64 { return v / el.Minutes() }
	fmt.Printf("- etcd writes in %s: %d (%.1f per minute)\n", el.Round(time.Second), rev1-rev0, perMin(float64(rev1-rev0)))
	fmt.Printf("- registrar CPU: %.2fs per minute (%.1f%% of one core); max RSS %.1f MiB\n",
		perMin(cpu1-cpu0), 100*(cpu1-cpu0)/el.Seconds(), float64(rssMax)/1024)
	cmd.Process.Signal(os.Interrupt)
	cmd.Wait()

	// 2. Detection time.
	const interval, fall = time.Second, 3
	fmt.Printf("\n## time from app death to critical record (interval %s, fall %d: interval × fall = %s)\n\n", interval, fall, interval*fall)
	var samples []time.Duration
	for i := range deaths {
		d, err := deathToCritical(ctx, cli, bin, dir, etcd.Endpoint(), i, interval, fall)
		if err != nil {
			return err
		}
		samples = append(samples, d)
		fmt.Printf("- run %d: %s\n", i+1, d.Round(time.Millisecond))
	}
	sort.Slice(samples, func(i, j int) bool { return samples[i] < samples[j] })
	fmt.Printf("- min %s, median %s, max %s\n", samples[0].Round(time.Millisecond),
		samples[len(samples)/2].Round(time.Millisecond), samples[len(samples)-1].Round(time.Millisecond))
	return nil
}

func deathToCritical(ctx context.Context, cli *clientv3.Client, bin, dir, endpoint string, i int, interval time.Duration, fall int) (time.Duration, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	app := &http.Server{Handler: http.HandlerFunc(func(http.ResponseWriter, *http.Request) {})}
	go app.Serve(l)
	key := fmt.Sprintf("/death/services/app/app-%d", i)
	cfg := filepath.Join(dir, fmt.Sprintf("death%d.yaml", i))
	os.WriteFile(cfg, fmt.Appendf(nil, `etcd: {endpoints: [%q], prefix: /death}
node: bench
listen: 127.0.0.1:0
services:
  - {name: app, id: app-%d, address: 127.0.0.1, port: 1, checks: [{name: http, http: "http://%s/", interval: %s, timeout: 500ms, fall: %d}]}
`, endpoint, i, l.Addr(), interval, fall), 0o644)
	cmd := exec.Command(bin, "run", "-c", cfg, "--log-level", "warn")
	if err := cmd.Start(); err != nil {
		return 0, err
	}
	defer func() { cmd.Process.Signal(os.Interrupt); cmd.Wait() }()
	if err := waitValue(ctx, cli, key, `"shallow":"passing"`, 10*time.Second); err != nil {
		return 0, err
	}
	// Die at a random point of the check interval.
	time.Sleep(time.Duration(i) * interval / 5)
	t0 := time.Now()
	app.Close()
	if err := waitValue(ctx, cli, key, `"shallow":"critical"`, 30*time.Second); err != nil {
		return 0, err
	}
	return time.Since(t0), nil
}

func waitValue(ctx context.Context, cli *clientv3.Client, key, substr string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		resp, err := cli.Get(ctx, key)
		if err == nil && len(resp.Kvs) > 0 && strings.Contains(string(resp.Kvs[0].Value), substr) {
			return nil
		}
		time.Sleep(5 * time.Millisecond)
	}
	return fmt.Errorf("%s never contained %s", key, substr)
}

func revision(ctx context.Context, cli *clientv3.Client) int64 {
	resp, _ := cli.Get(ctx, "x")
	return resp.Header.Revision
}

// cpuSeconds reads utime+stime of pid from /proc (clock ticks of 1/100 s).
func cpuSeconds(pid int) float64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+2:]))
	ut, _ := strconv.ParseFloat(f[11], 64)
	st, _ := strconv.ParseFloat(f[12], 64)
	return (ut + st) / 100
}

func rssKB(pid int) int {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			v, _ := strconv.Atoi(strings.Fields(rest)[0])
			return v
		}
	}
	return 0
}
