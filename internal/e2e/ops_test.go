package e2e

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/rewire/rewire/internal/etcdtest"
	"github.com/rewire/rewire/internal/testutil"
)

func drainConfig(endpoint, listen, healthURL string, drain time.Duration) string {
	return fmt.Sprintf(`etcd: {endpoints: [%q], prefix: /rw}
node: vm1
lease_ttl: 10s
listen: %s
services:
  - name: web
    id: web-1
    address: 127.0.0.1
    port: 8080
    drain: %s
    checks:
      - {name: alive, http: %q, interval: 100ms}
`, endpoint, listen, drain, healthURL)
}

func draining(rec map[string]any) bool { d, _ := rec["draining"].(bool); return d }

func TestDrainOnSIGTERM(t *testing.T) {
	skipShort(t)
	e := etcdtest.Start(t)
	cli := e.Client(t)
	app := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
	defer app.Close()
	const key = "/rw/services/web/web-1"

	t.Run("waits the drain period", func(t *testing.T) {
		const drain = 1500 * time.Millisecond
		cfg := writeFile(t, filepath.Join(t.TempDir(), "r.yaml"), drainConfig(e.Endpoints[0], freeAddr(t), app.URL, drain))
		p := start(t, bins.registrar, "run", "-c", cfg)
		waitFor(t, 10*time.Second, "registered", func() bool { return shallow(record(t, cli, key)) == "passing" })
		t0 := time.Now()
		p.signal(t, syscall.SIGTERM)
		waitFor(t, 2*time.Second, "draining: true", func() bool { return draining(record(t, cli, key)) })
		markedAfter := time.Since(t0)
		waitFor(t, drain+3*time.Second, "deregistered", func() bool { return record(t, cli, key) == nil })
		gone := time.Since(t0)
		if gone < drain {
			t.Errorf("deregistered %v after SIGTERM, before the %v drain period", gone, drain)
		}
		if code := p.wait(t, 5*time.Second); code != 0 {
			t.Errorf("exit code %d, want 0", code)
		}
		t.Logf("draining visible after %v, deregistered after %v (drain %v)", markedAfter.Round(time.Millisecond), gone.Round(time.Millisecond), drain)
	})

	t.Run("second signal skips the wait", func(t *testing.T) {
		cfg := writeFile(t, filepath.Join(t.TempDir(), "r.yaml"), drainConfig(e.Endpoints[0], freeAddr(t), app.URL, time.Hour))
		p := start(t, bins.registrar, "run", "-c", cfg)
		waitFor(t, 10*time.Second, "registered", func() bool { return shallow(record(t, cli, key)) == "passing" })
		p.signal(t, syscall.SIGTERM)
		waitFor(t, 2*time.Second, "draining: true", func() bool { return draining(record(t, cli, key)) })
		p.signal(t, syscall.SIGINT)
		if code := p.wait(t, 5*time.Second); code != 0 {
			t.Errorf("exit code %d, want 0", code)
		}
		if record(t, cli, key) != nil {
			t.Error("record still registered after the second signal and exit")
		}
	})
}

func registrarCmd(t *testing.T, e *etcdtest.Etcd, args ...string) (string, error) {
	t.Helper()
	cmd := exec.Command(bins.registrar, append(args, "--etcd", e.Endpoints[0], "--prefix", "/rw")...)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return string(out) + stderr.String(), err
	}
	return string(out), nil
}

func TestMaintenanceExpectAndLs(t *testing.T) {
	skipShort(t)
	e := etcdtest.Start(t)
	cli := e.Client(t)
	app := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
	defer app.Close()
	cfgPath := writeFile(t, filepath.Join(t.TempDir(), "r.yaml"), registrarConfig(e.Endpoints[0], freeAddr(t), app.URL))
	p := start(t, bins.registrar, "run", "-c", cfgPath)
	waitFor(t, 10*time.Second, "registered", func() bool { return shallow(record(t, cli, "/rw/services/web/web-1")) == "passing" })

	if out, err := registrarCmd(t, e, "maint", "enable", "web/web-1", "--reason", "kernel upgrade", "--force"); err != nil || !strings.Contains(out, "maintenance on") {
		t.Fatalf("maint enable: %v\n%s", err, out)
	}
	if out, err := registrarCmd(t, e, "expect", "web", "3"); err != nil {
		t.Fatalf("expect: %v\n%s", err, out)
	}
	out, err := registrarCmd(t, e, "ls", "web")
	if err != nil {
		t.Fatalf("ls: %v\n%s", err, out)
	}
	if !strings.Contains(out, "maintenance by ") || !strings.Contains(out, ": kernel upgrade") || !strings.Contains(out, "1 of 3 reporting") {
		t.Errorf("ls web should show maintenance and 1 of 3 reporting:\n%s", out)
	}

	// The maintenance key has no lease: it survives a registrar restart.
	p.signal(t, syscall.SIGTERM)
	p.wait(t, 10*time.Second)
	if n := get(t, cli, "/rw/maintenance/web/web-1").Count; n != 1 {
		t.Fatalf("maintenance key gone after registrar exit")
	}
	start(t, bins.registrar, "run", "-c", cfgPath)
	waitFor(t, 10*time.Second, "registered again", func() bool { return record(t, cli, "/rw/services/web/web-1") != nil })
	if out, _ := registrarCmd(t, e, "ls", "--json"); !strings.Contains(out, `"maintenance": true`) {
		t.Errorf("ls --json after restart should still show maintenance:\n%s", out)
	}
	if out, err := registrarCmd(t, e, "maint", "disable", "web/web-1"); err != nil || !strings.Contains(out, "maintenance off") {
		t.Errorf("maint disable: %v\n%s", err, out)
	}
	if out, _ := registrarCmd(t, e, "ls", "web"); strings.Contains(out, "maintenance") {
		t.Errorf("ls still shows maintenance after disable:\n%s", out)
	}
	if out, err := registrarCmd(t, e, "maint", "enable", "Bad Name"); err == nil || !strings.Contains(out, "invalid name") {
		t.Errorf("maint enable with a bad name: err %v\n%s", err, out)
	}
}

func TestWait(t *testing.T) {
	skipShort(t)
	e := etcdtest.Start(t)
	cli := e.Client(t)

	out, err := registrarCmd(t, e, "wait", "web", "db", "--timeout", "500ms")
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 3 {
		t.Fatalf("wait with nothing registered: err %v, want exit code 3\n%s", err, out)
	}
	if !strings.Contains(out, "timed out after 500ms waiting for: web (not registered); db (not registered)") {
		t.Errorf("wait timeout message: %s", out)
	}

	cmd := exec.Command(bins.registrar, "wait", "web", "--timeout", "20s", "--etcd", e.Endpoints[0], "--prefix", "/rw")
	var buf testutil.Buffer
	cmd.Stdout, cmd.Stderr = &buf, &buf
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	put(t, cli, "/rw/services/web/web-1", `{"v":1,"service":"web","id":"web-1","address":"10.0.0.1","port":80,"health":{"shallow":"critical"}}`)
	select {
	case err := <-done:
		t.Fatalf("wait returned while web was critical: %v\n%s", err, buf.String())
	case <-time.After(300 * time.Millisecond): // a bounded window in which wait must not return
	}
	put(t, cli, "/rw/services/web/web-1", `{"v":1,"service":"web","id":"web-1","address":"10.0.0.1","port":80,"health":{"shallow":"passing"}}`)
	select {
	case err := <-done:
		if err != nil || !strings.Contains(buf.String(), "ready: web") {
			t.Errorf("wait: %v\n%s", err, buf.String())
		}
	case <-time.After(10 * time.Second):
		cmd.Process.Kill()
		t.Fatalf("wait did not return after web became routable\n%s", buf.String())
	}
}
