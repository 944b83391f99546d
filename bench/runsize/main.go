// Command runsize measures what a `registrar run` process costs at start:
// the time from exec to every configured record being in etcd, and its
// resident memory once registered (VmRSS after a settle period, and the
// peak VmHWM). It runs the same config several times against one embedded
// etcd, so two binaries (say, before and after a change that embeds more
// assets) can be compared:
//
//	go run ./bench/runsize -registrar /tmp/registrar-before -runs 7
//	go run ./bench/runsize -registrar bin/registrar -runs 7
//
// Everything runs on loopback. Results go in docs/PERFORMANCE.md.
package main

import (
	"context"
	"flag"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/rewire/rewire/internal/embedetcd"
)

func main() {
	bin := flag.String("registrar", "bin/registrar", "registrar binary")
	runs := flag.Int("runs", 5, "runs of the same config")
	n := flag.Int("instances", 10, "instances in the config")
	settle := flag.Duration("settle", 3*time.Second, "wait after registration before reading RSS")
	flag.Parse()
	if err := run(*bin, *runs, *n, *settle); err != nil {
		fmt.Fprintln(os.Stderr, "runsize:", err)
		os.Exit(1)
	}
}

func run(bin string, runs, n int, settle time.Duration) error {
	ctx := context.Background()
	etcd, err := embedetcd.StartScratch(ctx, "rewire-runsize")
	if err != nil {
		return err
	}
	defer etcd.Close()
	// Every instance checks a TCP port that accepts: the etcd-free listener
	// below, so checks pass without an HTTP server in this process.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	defer l.Close()
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	var b strings.Builder
	fmt.Fprintf(&b, "etcd: {endpoints: [%q], prefix: /size}\nnode: bench\nlease_ttl: 10s\nlisten: 127.0.0.1:0\nservices:\n", etcd.Endpoint())
	for i := range n {
		fmt.Fprintf(&b, "  - {name: svc%d, id: i%d, address: 127.0.0.1, port: %d, checks: [{name: tcp, tcp: %q, interval: 1s}]}\n", i%5, i, 10000+i, l.Addr())
	}
	cfg := filepath.Join(etcd.Dir, "registrar.yaml")
	if err := os.WriteFile(cfg, []byte(b.String()), 0o644); err != nil {
		return err
	}
	var starts []time.Duration
	var rss, hwm []int
	for i := range runs {
		start, r, h, err := once(ctx, etcd, bin, cfg, n, settle)
		if err != nil {
			return fmt.Errorf("run %d: %w", i+1, err)
		}
		fmt.Printf("run %d: registered in %s, VmRSS %.1f MiB, VmHWM %.1f MiB\n", i+1, start.Round(time.Millisecond), mib(r), mib(h))
		starts, rss, hwm = append(starts, start), append(rss, r), append(hwm, h)
	}
	slices.Sort(starts)
	slices.Sort(rss)
	slices.Sort(hwm)
	fmt.Printf("%s: start-up median %s (min %s, max %s); VmRSS median %.1f MiB (%.1f–%.1f); VmHWM median %.1f MiB\n",
		bin, starts[len(starts)/2].Round(time.Millisecond), starts[0].Round(time.Millisecond), starts[len(starts)-1].Round(time.Millisecond),
		mib(rss[len(rss)/2]), mib(rss[0]), mib(rss[len(rss)-1]), mib(hwm[len(hwm)/2]))
	return nil
}

func once(ctx context.Context, etcd *embedetcd.Scratch, bin, cfg string, n int, settle time.Duration) (time.Duration, int, int, error) {
	cmd := exec.Command(bin, "run", "-c", cfg, "--log-level", "warn")
	cmd.Stderr = os.Stderr
	t0 := time.Now()
	if err := cmd.Start(); err != nil {
		return 0, 0, 0, err
	}
	defer func() { cmd.Process.Signal(os.Interrupt); cmd.Wait() }()
	for etcd.Count(ctx, "/size/services/") < n {
		if time.Since(t0) > 30*time.Second {
			return 0, 0, 0, fmt.Errorf("only %d of %d registered after 30s", etcd.Count(ctx, "/size/services/"), n)
		}
		time.Sleep(2 * time.Millisecond)
	}
	start := time.Since(t0)
	time.Sleep(settle) // a measurement tool, not a test: let the first check rounds run
	rss, hwm := status(cmd.Process.Pid, "VmRSS:"), status(cmd.Process.Pid, "VmHWM:")
	cmd.Process.Signal(os.Interrupt)
	if err := cmd.Wait(); err != nil {
		return 0, 0, 0, fmt.Errorf("registrar exited: %w", err)
	}
	// Deregistered: the next run starts from an empty registry.
	for etcd.Count(ctx, "/size/services/") > 0 {
		time.Sleep(10 * time.Millisecond)
	}
	return start, rss, hwm, nil
}

// status reads one kB field of /proc/PID/status.
func status(pid int, field string) int {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, field); ok {
			v, _ := strconv.Atoi(strings.TrimSuffix(strings.TrimSpace(rest), " kB"))
			return v
		}
	}
	return 0
}

func mib(kb int) float64 { return float64(kb) / 1024 }
