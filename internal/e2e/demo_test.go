package e2e

import (
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/rewire/rewire/internal/testutil"
)

// TestDemo runs what `make demo` runs, for a few flips of web-2, and sends
// a request through haproxy when it is installed.
func TestDemo(t *testing.T) {
	skipShort(t)
	example, err := filepath.Abs("../../examples/haproxy")
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(t.TempDir(), "demo-run")
	p := start(t, bins.demo, "--dir", dir, "--bin", bins.dir,
		"--example", example, "--flap", "1500ms", "--duration", "9s")
	waitFor(t, 30*time.Second, "demo started", func() bool { return strings.Contains(p.out.String(), "Ctrl-C stops everything") })
	out := p.out.String()
	// The banner's commands work: status finds the templater from its
	// config file.
	if !strings.Contains(out, "bin/templater status -c "+filepath.Join(dir, "templater.yaml")) {
		t.Errorf("the banner does not show how to ask the templater for its status:\n%s", out)
	}
	status, err := exec.Command(bins.templater, "status", "-c", filepath.Join(dir, "templater.yaml")).CombinedOutput()
	if err != nil || !strings.Contains(string(status), "haproxy") {
		t.Errorf("templater status -c demo-run/templater.yaml: %v\n%s", err, status)
	}
	if _, err := exec.LookPath("haproxy"); err == nil {
		m := regexp.MustCompile(`curl (http://\S+/web/)`).FindStringSubmatch(out)
		if m == nil {
			t.Fatalf("demo did not start haproxy:\n%s", out)
		}
		resp, err := http.Get(m[1])
		if err != nil {
			t.Fatalf("GET %s through haproxy: %v", m[1], err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || !strings.Contains(string(body), "hello from web-") {
			t.Errorf("GET %s = %d %q, want 200 from a web instance", m[1], resp.StatusCode, body)
		}
	}
	if code := p.wait(t, 30*time.Second); code != 0 {
		t.Fatalf("demo exit code %d\n%s", code, p.out)
	}
	out = p.out.String()
	flips := regexp.MustCompile(`web-2 (healthy|failing) → haproxy.cfg updated in (\d+) ms`).FindAllStringSubmatch(out, -1)
	if len(flips) < 2 || strings.Contains(out, "NOT reflected") {
		t.Errorf("want at least 2 flips reflected in haproxy.cfg, got %d:\n%s", len(flips), out)
	}
	for _, f := range flips {
		t.Logf("flip to %s reached haproxy.cfg in %s ms", f[1], f[2])
	}
	if !strings.Contains(out, "stopped registrar") {
		t.Errorf("demo did not stop cleanly:\n%s", out)
	}
	// It announces the order it then stops the daemons in.
	announced := regexp.MustCompile(`stopping: (.*), sample services, etcd`).FindStringSubmatch(out)
	var stopped []string
	for _, m := range regexp.MustCompile(`(?m)^  stopped (\S+)$`).FindAllStringSubmatch(out, -1) {
		stopped = append(stopped, m[1])
	}
	if announced == nil || announced[1] != strings.Join(stopped, ", ") {
		t.Errorf("demo announced %q, then stopped %q:\n%s", announced, stopped, out)
	}
}

// TestDemoDaemonsDieWithIt checks that no daemon the demo started outlives
// it, however it ends: when nobody reads its output any more (`bin/demo |
// head -n 3`: it stops by itself, running its cleanup) and when it is
// killed with SIGKILL (no cleanup runs; the kernel's parent-death signal
// stops them).
func TestDemoDaemonsDieWithIt(t *testing.T) {
	skipShort(t)
	if runtime.GOOS != "linux" {
		t.Skip("parent-death signals and /proc are Linux only")
	}
	example, err := filepath.Abs("../../examples/haproxy")
	if err != nil {
		t.Fatal(err)
	}
	daemons := 2 // registrar, templater
	if _, err := exec.LookPath("haproxy"); err == nil {
		daemons = 3 // haproxy's master and at least one worker
	}
	for _, tc := range []struct {
		name   string
		closed bool // stdout is a pipe nobody reads
	}{
		{"stdout closed", true},
		{"SIGKILL", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "demo-run")
			cmd := exec.Command(bins.demo, "--dir", dir, "--bin", bins.dir, "--example", example, "--flap", "1h")
			stdout := &testutil.Buffer{}
			cmd.Stdout, cmd.Stderr = stdout, stdout
			if tc.closed {
				r, w, err := os.Pipe()
				if err != nil {
					t.Fatal(err)
				}
				r.Close()
				defer w.Close()
				cmd.Stdout = w
			}
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			done := make(chan struct{})
			go func() { cmd.Wait(); close(done) }()
			var seen []int
			t.Cleanup(func() {
				cmd.Process.Kill()
				<-done
				for _, pid := range seen { // leave nothing behind, even on failure
					syscall.Kill(pid, syscall.SIGKILL)
				}
			})
			running := func() []int {
				pids := processesMentioning(t, dir, cmd.Process.Pid)
				for _, p := range pids {
					if !slices.Contains(seen, p) {
						seen = append(seen, p)
					}
				}
				return pids
			}
			if tc.closed {
				select {
				case <-done:
				case <-time.After(60 * time.Second):
					t.Fatal("the demo did not stop when its output pipe was closed")
				}
				if code := cmd.ProcessState.ExitCode(); code != 0 {
					t.Errorf("demo exit code %d, want 0 (stopped as if interrupted); output:\n%s", code, stdout)
				}
				if _, err := os.Stat(filepath.Join(dir, "templater.log")); err != nil {
					t.Fatalf("the demo never started its daemons: %v\n%s", err, stdout)
				}
			} else {
				waitFor(t, 60*time.Second, "the demo's daemons running", func() bool { return len(running()) >= daemons })
				cmd.Process.Kill()
				<-done
			}
			// The registrar may spend its revoke timeout on the etcd that
			// died with the demo.
			waitFor(t, 30*time.Second, "no process of the demo left", func() bool { return len(running()) == 0 })
			t.Logf("%d daemon processes seen, none left", len(seen))
		})
	}
}

// processesMentioning returns the processes other than except whose
// command line mentions s.
func processesMentioning(t *testing.T, s string, except int) []int {
	t.Helper()
	entries, err := os.ReadDir("/proc")
	if err != nil {
		t.Fatal(err)
	}
	var pids []int
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == except {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err == nil && strings.Contains(string(b), s) {
			pids = append(pids, pid)
		}
	}
	return pids
}
