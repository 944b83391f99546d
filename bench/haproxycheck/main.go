// Command haproxycheck times `haproxy -c` on configs shaped like the
// example's output, to show what the size of one backend costs the check
// that every change of a large service waits for (results in
// docs/PERFORMANCE.md):
//
//	go run ./bench/haproxycheck
//
// For each -sizes N it writes three configs to a temporary directory: N
// servers in one backend as the example renders them (no `id`, so
// haproxy numbers the servers itself), the same with an explicit `id` on
// every server, and N servers spread over 50 backends. Each is checked
// -runs times; the table shows the median wall time. It only reads and
// writes its temporary directory and runs `haproxy -c`, which binds
// nothing.
package main

import (
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"
)

func main() {
	sizes := flag.String("sizes", "2500,5000,10000,20000", "server counts")
	runs := flag.Int("runs", 3, "checks of each config (the median is shown)")
	bin := flag.String("haproxy", "haproxy", "haproxy binary")
	flag.Parse()
	if err := run(*sizes, *runs, *bin); err != nil {
		fmt.Fprintln(os.Stderr, "haproxycheck:", err)
		os.Exit(1)
	}
}

func run(sizes string, runs int, bin string) error {
	if runs < 1 || runs > 50 {
		return fmt.Errorf("-runs %d: want 1-50", runs)
	}
	dir, err := os.MkdirTemp("", "haproxycheck-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	v, _ := exec.Command(bin, "-v").Output()
	first, _, _ := strings.Cut(string(v), "\n")
	fmt.Printf("# haproxy -c, median of %d; %s\n\n", runs, first)
	fmt.Println("| servers | one backend, no `id` (as the example) | one backend, `id` on every server | 50 backends, no `id` |")
	fmt.Println("|---:|---:|---:|---:|")
	for f := range strings.SplitSeq(sizes, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 50 || n > 100000 {
			return fmt.Errorf("-sizes: %q: want 50-100000", f)
		}
		row := []string{strconv.Itoa(n)}
		for _, shape := range []struct {
			backends int
			ids      bool
		}{{1, false}, {1, true}, {50, false}} {
			path := filepath.Join(dir, fmt.Sprintf("%d-%d-%t.cfg", n, shape.backends, shape.ids))
			if err := os.WriteFile(path, config(n, shape.backends, shape.ids), 0o644); err != nil {
				return err
			}
			d, err := median(runs, bin, path)
			if err != nil {
				return err
			}
			row = append(row, fmt.Sprintf("%.2f s", d.Seconds()))
		}
		fmt.Printf("| %s |\n", strings.Join(row, " | "))
	}
	return nil
}

// config renders n servers, spread round-robin over backends, in the
// example's style.
func config(n, backends int, ids bool) []byte {
	var b strings.Builder
	b.WriteString("global\n    maxconn 1000\n\ndefaults\n    mode http\n    timeout connect 5s\n    timeout client 30s\n    timeout server 30s\n\n")
	b.WriteString("frontend fe\n    bind 127.0.0.1:18080\n    default_backend be0\n")
	for i := range backends {
		fmt.Fprintf(&b, "\nbackend be%d\n    balance roundrobin\n    default-server init-addr last,libc,none pool-purge-delay 200ms\n", i)
		for id, k := 1, i; k < n; id, k = id+1, k+backends {
			fmt.Fprintf(&b, "    server i%06d 10.%d.%d.%d:8080 weight 100", k, k>>16&255, k>>8&255, k&255)
			if ids {
				fmt.Fprintf(&b, " id %d", id)
			}
			b.WriteString("  # passing\n")
		}
	}
	return []byte(b.String())
}

func median(runs int, bin, path string) (time.Duration, error) {
	var ds []time.Duration
	for range runs {
		t0 := time.Now()
		if out, err := exec.Command(bin, "-c", "-q", "-f", path).CombinedOutput(); err != nil {
			return 0, fmt.Errorf("haproxy -c -f %s: %v: %s", path, err, out)
		}
		ds = append(ds, time.Since(t0))
	}
	slices.Sort(ds)
	return ds[len(ds)/2], nil
}
